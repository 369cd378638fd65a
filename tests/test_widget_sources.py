"""StreamChat with a Python source: the chat, pacing, Stop, errors, Retry and stats of a URL."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from streamchat.render import render_markdown
from streamchat.server import DemoServer, answer_for
from streamchat.widget import StreamChat

from conftest import require
from loopback import wait_until


def make(chats: list[StreamChat], source: object, **kwargs: Any) -> StreamChat:
    chat = StreamChat(source, **kwargs)
    chats.append(chat)
    return chat


def test_a_generator_function_answers_every_turn(chats) -> None:
    seen: list[list[dict[str, str]]] = []

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        seen.append(messages)
        yield from ["**Turn** ", str(len(messages)), "\n\n", "- a", "\n", "- b"]

    chat = make(chats, answer, speed=0, system="Be brief.")
    chat.ask("first")
    assert chat.wait(10)
    chat.ask("second")
    assert chat.wait(10)
    assert seen[1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "**Turn** 2\n\n- a\n- b"},
        {"role": "user", "content": "second"},
    ]
    turn = chat.turns[-1]
    assert turn["status"] == "done"
    assert turn["html"] == render_markdown("**Turn** 4\n\n- a\n- b")
    assert chat.stats["chars"] == len("**Turn** 4\n\n- a\n- b")
    assert "ttft" in chat.stats


def test_an_async_generator_is_paced_by_the_typewriter(chats) -> None:
    async def answer(messages: list[dict[str, str]]) -> AsyncIterator[str]:
        yield "x" * 30

    chat = make(chats, answer, speed=100)
    started = time.monotonic()
    chat.ask("go")
    assert chat.wait(10)
    assert time.monotonic() - started > 0.2  # 30 characters at 100/s, not at once
    assert chat.messages[-1]["content"] == "x" * 30


def test_stop_closes_the_generator_and_keeps_the_partial(chats) -> None:
    closed = threading.Event()

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        try:
            for n in range(100_000):
                time.sleep(0.01)
                yield f"word{n} "
        finally:
            closed.set()

    chat = make(chats, answer, speed=0)
    chat.ask("long")
    wait_until(lambda: chat.status == "streaming")
    wait_until(lambda: chat._core.live is not None and chat._core.live.received > 30)
    started = time.monotonic()
    chat.stop()
    assert time.monotonic() - started < 1.0
    assert chat.status == "stopped"
    assert closed.wait(2)
    partial = chat.messages[-1]["content"]  # what was shown when Stop came
    assert partial.startswith("word0")
    assert chat.turns[-1]["html"] == render_markdown(partial)


def test_an_exception_in_the_generator_shows_in_the_bubble_and_retry_runs_it_again(
    chats,
) -> None:
    calls: list[int] = []

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        calls.append(1)
        yield "Partial "
        if len(calls) == 1:
            raise RuntimeError("GPU out of memory")
        yield "and whole"

    chat = make(chats, answer, speed=0)
    chat.ask("go")
    assert chat.wait(10)
    turn = chat.turns[-1]
    assert turn["status"] == "error"
    # Plain words and the fix first, the exception as it was raised last.
    assert turn["error"].startswith("The Python code that streams the answer failed.")
    assert turn["error"].endswith("\nRuntimeError: GPU out of memory")
    assert turn["html"] == render_markdown("Partial ")
    chat.retry()
    assert chat.wait(10)
    assert chat.turns[-1]["status"] == "done"
    assert chat.messages[-1]["content"] == "Partial and whole"
    assert len(chat.turns) == 2


def test_a_single_stream_is_typed_at_once_and_used_up(chats) -> None:
    chat = make(chats, (piece for piece in ["Hello ", "from ", "a generator"]), speed=0)
    assert chat.wait(10)
    assert [t["role"] for t in chat.turns] == ["assistant"]
    assert chat.messages == [{"role": "assistant", "content": "Hello from a generator"}]
    chat.ask("more?")
    assert chat.wait(10)
    assert chat.turns[-1]["status"] == "error"
    assert "single stream" in chat.turns[-1]["error"]


def test_an_openai_client_pointed_at_the_demo_server(chats) -> None:
    try:
        import openai
    except ImportError:
        require(False, "the openai package is a test dependency")
    with DemoServer(rate=0) as demo:
        client = openai.OpenAI(base_url=demo.base_url, api_key="sk-user-secret-0123456789")

        def answer(messages: list[dict[str, str]]) -> object:
            return client.chat.completions.create(
                model="streamchat-demo", messages=messages, stream=True
            )

        chat = make(chats, answer, speed=0)
        chat.ask("Hi")
        assert chat.wait(20)
    assert chat.messages[-1]["content"] == answer_for("Hi")
    stats = chat.stats
    assert stats["finish_reason"] == "stop"
    assert stats["output_tokens"] > 0
    assert "sk-user-secret" not in repr(chat.get_state())


def test_the_doctor_is_for_urls(chats) -> None:
    chat = make(chats, lambda messages: "hi")
    with pytest.raises(ValueError, match="HTTP endpoints"):
        chat.doctor()


def test_a_mixed_stream_ends_with_an_error_about_the_source(chats) -> None:
    """Text, then an item it cannot type: the bubble names the item, not a connection."""
    chat = make(chats, lambda messages: iter(["Partial ", b"bytes, ", None, ["a", "list"]]))
    chat.ask("go")
    assert chat.wait(10)
    turn = chat.turns[-1]
    assert turn["status"] == "error"
    assert chat.messages[-1]["content"] == "Partial bytes, "
    assert "TypeError: the Python source gave an item of type list (['a', 'list'])" in turn["error"]
    assert "connection" not in turn["error"] and "doctor" not in turn["error"]
