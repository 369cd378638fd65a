"""Answers do not step on each other: threads, the shared client's pool, cookies.

- `ask`, `stop`, `retry` and `close` from several threads at once leave no turn
  "streaming" for ever.
- More than 100 answers at once through the widgets' shared client all complete
  (httpx's default pool of 100 made the 101st fail as a timeout).
- A cookie set by one endpoint is never sent to another (or back).
"""

from __future__ import annotations

import asyncio
import threading

from streamchat import _driver
from streamchat.deltas import Done
from streamchat.providers import build_request
from streamchat.transport import Limits, Retries, Timeouts, new_client, stream_deltas
from streamchat.widget import StreamChat

from loopback import LoopbackServer, Script, sse

PATH = "/v1/chat/completions"


def answer(text: str) -> list[bytes]:
    return sse(
        {"choices": [{"index": 0, "delta": {"content": text}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )


def at_once(count: int, action) -> None:
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        action(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def test_ask_from_many_threads_orphans_no_turn(server: LoopbackServer, chats) -> None:
    url = server.route(PATH, Script(answer("Slow answer. " * 20), pause=0.01))
    chat = StreamChat(url, speed=0)
    chats.append(chat)
    for _ in range(3):
        at_once(8, lambda i: chat.ask(f"prompt {i}"))
        assert chat.wait(30)
        statuses = [turn["status"] for turn in chat.turns if turn["role"] == "assistant"]
        assert "streaming" not in statuses
        assert set(statuses) <= {"done", "stopped"}
        assert statuses[-1] == "done"
        assert chat.status == "done"
    assert len(chat.turns) == 3 * 8 * 2
    roles = [message["role"] for message in chat.messages]
    assert "user" in roles and roles[-1] == "assistant"


def test_ask_stop_retry_close_from_threads(server: LoopbackServer, chats) -> None:
    url = server.route(PATH, Script(answer("Answer. " * 20), pause=0.01))
    chat = StreamChat(url, speed=0)
    chats.append(chat)
    actions = [
        lambda: chat.ask("a"),
        chat.stop,
        chat.retry,
        lambda: chat.ask("b"),
        chat.stop,
        chat.retry,
    ]
    for _ in range(5):
        at_once(len(actions), lambda i: actions[i]())
        assert chat.wait(30)
        assert all(turn.get("status") != "streaming" for turn in chat.turns)
    at_once(3, lambda i: chat.close() if i == 0 else chat.stop())
    assert chat.status in ("done", "stopped", "idle")
    assert all(turn.get("status") != "streaming" for turn in chat.turns)


def test_more_than_a_hundred_answers_at_once_share_one_client(server: LoopbackServer) -> None:
    # Each answer holds its connection longer than the pool timeout (connect=1 s).
    url = server.route(PATH, Script(answer("ok"), pause=[2.0, 0, 0]))
    request = build_request(url, [{"role": "user", "content": "hi"}])
    count = 110

    async def one(client) -> object:
        deltas = [
            d
            async for d in stream_deltas(
                request, timeouts=Timeouts(connect=1), retries=Retries(attempts=0), client=client
            )
        ]
        return deltas[-1]

    async def run() -> list[object]:
        async with new_client() as client:
            return await asyncio.gather(*(one(client) for _ in range(count)))

    ends = asyncio.run(run())
    assert [end for end in ends if not isinstance(end, Done)] == []


def test_cookies_are_not_shared_between_widgets_or_endpoints(server: LoopbackServer, chats):
    other = LoopbackServer().start()
    try:
        setter = Script(answer("set"), headers={"Content-Type": "text/event-stream"})
        setter.headers["Set-Cookie"] = "session=from-endpoint-a; Path=/"
        first = StreamChat(server.route(PATH, setter), speed=0)
        second = StreamChat(other.route(PATH, Script(answer("other"))), speed=0)
        chats.extend([first, second])
        assert _driver._client() is _driver._client()  # one shared client
        for chat in (first, second, first):
            chat.ask("hi")
            assert chat.wait(20) and chat.status == "done"
        sent = [r.headers for r in server.received[-2:]] + [other.received[-1].headers]
        assert not any("Cookie" in headers for headers in sent)
    finally:
        other.close()


def test_a_python_source_that_never_ends_is_capped_and_closed(chats) -> None:
    closed = threading.Event()

    def endless(messages):
        try:
            while True:
                yield "word " * 20
        finally:
            closed.set()

    chat = StreamChat(endless, speed=0, limits=Limits(answer=50_000))
    chats.append(chat)
    chat.ask("go on for ever")
    assert chat.wait(30)
    assert chat.status == "error"
    assert "passed 50,000 characters" in chat.turns[-1]["error"]
    assert 49_000 < len(chat.messages[-1]["content"]) <= 50_000
    assert closed.wait(10)
