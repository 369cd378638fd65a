"""Who owns a chat's state: the loop thread changes the conversation, the kernel thread
posts commands and reads snapshots (`streamchat._conversation`).

The test suite runs with the owner check on (conftest sets STREAMCHAT_CHECK_OWNER=1):
every change of a conversation, and every write of the traits that mirror it, checks
that it happens on the loop thread. These tests drive chats hard from the kernel
thread and from a second thread (the shell thread's browser messages) while answers
stream from a loopback server, and check that nothing was changed from the wrong
thread; and that the check does fire when something is.
"""

from __future__ import annotations

import gc
import json
import random
import threading
import time
import warnings
from typing import Any

import anywidget
import pytest

from streamchat import _conversation, _runner
from streamchat._conversation import Conversation, OwnerError
from streamchat.widget import StreamChat
from test_widget import ANSWER, make, openai_chunks, tcp_established_to

from loopback import Script, wait_until


@pytest.fixture
def no_violations() -> Any:
    """Fails the test if any change was made off its owner thread meanwhile, even one
    whose error was swallowed on the way."""
    assert _conversation.CHECK, "the owner check must be on in the tests"
    before = len(_conversation.violations)
    yield
    assert _conversation.violations[before:] == []


@pytest.fixture
def pipeline_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes to a live answer's objects (the `Answer`, its typewriter, Markdown streams
    and outbox) off the loop thread are recorded as violations too: those classes are
    other modules' and carry no check of their own, so the test adds one."""
    from streamchat._answer import Answer, Outbox
    from streamchat.render import MarkdownStream
    from streamchat.typewriter import Typewriter

    for cls in (Answer, Outbox, Typewriter, MarkdownStream):

        def checked(self: object, name: str, value: object, _set: Any = cls.__setattr__) -> None:
            if not _runner.in_loop_thread():
                thread = threading.current_thread().name
                _conversation.violations.append(f"{type(self).__name__}.{name} on {thread}")
            _set(self, name, value)

        monkeypatch.setattr(cls, "__setattr__", checked)


def browser(chat: StreamChat, **message: object) -> None:
    """A message as the front end sends it (run on the kernel's shell thread)."""
    chat._handle_custom_msg(message, [])


def assert_consistent(chat: StreamChat) -> None:
    """The conversation is whole: turns alternate question and answer, none is left
    live, the history and the status agree with the turns."""
    turns = chat.turns
    view = chat._core.view
    assert list(view.turns) == turns
    assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
    answers = [t for t in turns if t["role"] == "assistant"]
    assert all(t["status"] in ("done", "error", "stopped") for t in answers)
    assert view.live is None and chat._core.live is None
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == [
        t["text"] for t in turns if t["role"] == "user"
    ]
    said = [m["content"] for m in chat.messages if m["role"] == "assistant"]
    assert said == [
        source
        for source, t in zip(view.sources, turns, strict=True)
        if source and t["role"] == "assistant"
    ]
    if answers:
        assert chat.status == answers[-1]["status"]
    assert chat.wait(0)


def test_a_chat_driven_hard_from_two_threads_is_changed_on_the_loop_thread_only(
    server, chats, no_violations, pipeline_checked
) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 4), pause=0.004))
    chat, capture = make(chats, url, speed=400)
    rng = random.Random(21)
    stop = threading.Event()
    errors: list[BaseException] = []

    def shell() -> None:
        """The browser's messages, as the shell thread runs them, meanwhile."""
        try:
            while not stop.is_set():
                live = chat._core.view.live
                choice = rng.choice(["stop", "retry", "hello", "speed", "send"])
                if choice == "stop":
                    browser(chat, type="stop", turn=live)
                elif choice == "retry" and chat.turns:
                    browser(chat, type="retry", turn=chat.turns[-1]["id"])
                elif choice == "hello":
                    browser(chat, type="hello")
                elif choice == "speed":
                    chat.set_state({"speed": rng.choice([0.0, 50.0, 800.0])})
                else:
                    browser(chat, type="send", prompt="from the browser")
                time.sleep(rng.uniform(0, 0.03))
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    other = threading.Thread(target=shell, name="shell")
    other.start()
    try:
        for n in range(40):
            action = n % 5
            if action == 0:
                chat.ask(f"question {n}")
            elif action == 1:
                chat.speed = rng.choice([0, 30, 200, 1000])
                chat.step = rng.choice([1, 3])
            elif action == 2:
                chat.stop()
            elif action == 3:
                chat.retry()
            else:
                chat.ask(f"and another {n}")
                # Some answers get to stream a while (unless the other thread stops them).
                wait_until(lambda: chat.status != "waiting")
                time.sleep(rng.uniform(0, 0.05))
            _ = (chat.messages, chat.transcript, chat.stats, chat._repr_mimebundle_())
    finally:
        stop.set()
        other.join(30)
    assert errors == []
    assert chat.wait(30)
    assert_consistent(chat)
    answered = [t for t in chat.turns if t["role"] == "assistant"]
    assert len(answered) >= 16
    assert {"stopped"} <= {t["status"] for t in answered}
    assert [m for _, m in capture.custom() if m["type"] == "patch"], "answers streamed"
    # Close while an answer streams: its connection is closed by the time close returns.
    # (A Stop that lands while a connection is being made can leave that socket open
    # until the garbage collector finds it, before and after this change: the
    # transport's matter, reported apart. Those are counted before, not blamed on close.)
    gc.collect()
    chat.speed = 0
    chat.ask("last one")
    wait_until(lambda: chat.status == "streaming")
    streaming = tcp_established_to(server.port)
    assert streaming >= 1
    chat.close()
    assert chat.status == "stopped"
    assert tcp_established_to(server.port) <= streaming - 1
    with pytest.raises(RuntimeError, match="closed"):
        chat.ask("after close")


def test_the_owner_check_fires_when_state_is_changed_from_another_thread(chats) -> None:
    chat = StreamChat(lambda messages: "Hi.", speed=0)
    chats.append(chat)
    before = len(_conversation.violations)
    # The kernel thread writing what the loop thread owns: the trait mirrors...
    with pytest.raises(OwnerError, match=r"StreamChat\.status written on thread 'MainThread'"):
        chat.status = "done"
    with pytest.raises(OwnerError, match=r"StreamChat\.turns written"):
        chat.turns = [*chat.turns, {"role": "user", "text": "forged"}]
    # ... and the conversation itself, each of its changes checked first.
    core = chat._core
    changes = [
        lambda: core.begin("forged"),
        lambda: core.started(None),  # type: ignore[arg-type]
        core.streaming,
        lambda: core.end(None, {}, ""),  # type: ignore[arg-type]
        core.drop_last,
        core.close,
    ]
    for change in changes:
        with pytest.raises(OwnerError, match="Conversation"):
            change()
    assert len(_conversation.violations) == before + 2 + len(changes)
    assert core.view.turns == () and core.status == "idle", "nothing was changed"
    del _conversation.violations[before:]  # the fixtures of other tests count from here
    # Made on the loop thread, the same changes pass.
    chat.ask("hi")
    assert chat.wait(10) and chat.status == "done"
    assert len(_conversation.violations) == before


def test_a_conversation_core_checks_its_owner_and_its_state_machine() -> None:
    owner = threading.current_thread()
    core = Conversation(lambda: threading.current_thread() is owner)
    index = core.begin("hi")
    assert (core.status, index, [t["role"] for t in core.turns]) == (
        "waiting",
        1,
        ["user", "assistant"],
    )
    with pytest.raises(RuntimeError, match="still live"):
        core.live = object()  # type: ignore[assignment]
        core.begin("again")
    core.live = None
    with pytest.raises(ValueError, match="cannot go from 'waiting' to 'idle'"):
        core._set_status("idle")
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            core.streaming()
        except OwnerError as exc:
            errors.append(exc)

    thread = threading.Thread(target=elsewhere, name="intruder")
    thread.start()
    thread.join()
    assert [str(e) for e in errors] == [
        "Conversation.streaming on thread 'intruder', not the owner"
    ]
    _conversation.violations.remove(str(errors[0]))
    # A view is a snapshot: the kernel thread's copy does not change under it.
    view = core.view
    assert core.streaming() and core.view.status == "streaming" and view.status == "waiting"


def test_focus_and_blur_are_ipywidgets_messages_not_prompts(chats, no_violations) -> None:
    """ipywidgets' DOMWidget.focus()/blur() call `self.send({"do": ...})`."""
    chat, capture = make(chats, "http://127.0.0.1:9/v1/chat/completions")
    chat.focus()
    chat.blur()
    assert [m for _, m in capture.custom()] == [{"do": "focus"}, {"do": "blur"}]
    assert chat.turns == [] and chat.status == "idle"


def test_anywidget_commands_answer_through_send(chats, no_violations) -> None:
    """anywidget's commands send their responses with `self.send(msg, buffers)`."""
    from anywidget.experimental import command

    class WithCommand(StreamChat):
        @command
        def ping(self, msg: Any, buffers: list[bytes]) -> tuple[Any, list[bytes]]:
            return {"pong": msg}, []

    chat = WithCommand("http://127.0.0.1:9/v1/chat/completions")
    chats.append(chat)
    assert isinstance(chat, anywidget.AnyWidget)
    sent: list[Any] = []
    original = chat._send
    chat._send = lambda msg, buffers=None: (sent.append(msg), original(msg, buffers))  # type: ignore[method-assign]
    request = {"id": "1", "kind": "anywidget-command", "name": "ping", "msg": 7}
    chat._handle_custom_msg(request, [])
    assert [m["content"] for m in sent] == [
        {"id": "1", "kind": "anywidget-command-response", "response": {"pong": 7}}
    ]
    assert chat.turns == []


def test_send_with_a_prompt_still_asks_it_with_a_deprecation_warning(chats, no_violations) -> None:
    chat = StreamChat(lambda messages: "Still here.", speed=0)
    chats.append(chat)
    with pytest.warns(DeprecationWarning, match=r"use StreamChat.ask\(prompt\)") as caught:
        chat.send("hi")
    assert caught[0].filename == __file__, "the warning points at the caller"
    assert chat.wait(10)
    assert chat.messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Still here."},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat.ask("no warning")  # the new name warns of nothing
        assert chat.wait(10)
    with pytest.raises(ValueError, match="empty"), pytest.warns(DeprecationWarning):
        chat.send("  ")


def test_a_status_observer_may_ask_the_next_prompt(chats, no_violations) -> None:
    """Observers of `status` run on the loop thread: a command posted from there is
    queued, not waited for (which would deadlock)."""
    chat = StreamChat(lambda messages: f"answer {len(messages)}", speed=0)
    chats.append(chat)
    asked: list[str] = []

    def follow_up(change: dict[str, Any]) -> None:
        if change["new"] == "done" and not asked:
            assert _runner.in_loop_thread()
            asked.append("follow-up")
            chat.ask("follow-up")

    chat.observe(follow_up, names="status")
    chat.ask("first")
    wait_until(lambda: len(chat.turns) == 4 and chat.status == "done")
    assert [m["content"] for m in chat.messages] == ["first", "answer 1", "follow-up", "answer 3"]


def test_a_browser_cannot_write_what_the_loop_thread_owns(chats, no_violations) -> None:
    chat = StreamChat("http://127.0.0.1:9/v1/chat/completions")
    chats.append(chat)
    forged = [{"id": 1, "role": "user", "text": "forged"}]
    chat.set_state({"status": "done", "turns": forged, "finished": {"1": {}}, "speed": 40.0})
    assert (chat.status, chat.turns, chat.finished, chat.speed) == ("idle", [], {}, 40.0)
    assert json.dumps(chat.get_state()["turns"]) == "[]"


def test_a_failed_command_raises_for_its_poster_or_is_logged(chats, caplog) -> None:
    chat = StreamChat(lambda messages: "Hi.", speed=0)
    chats.append(chat)

    async def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        chat._driver.post(broken)
    chat._driver.post(broken, wait=False)  # nobody waits: asyncio's logger says it
    wait_until(lambda: "a streamchat command failed" in caplog.text)
    assert "ValueError: boom" in caplog.text
    chat.ask("still works")
    assert chat.wait(10) and chat.status == "done"


def test_the_conversation_core_does_no_io() -> None:
    """The core is plain Python: importing it loads no event loop, network, notebook or
    renderer (the sans-I/O rule the pipeline's stages follow)."""
    import subprocess
    import sys

    probe = "import sys, streamchat._conversation; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    io = ("asyncio", "socket", "ssl", "httpx", "anywidget", "ipywidgets", "traitlets")
    io += ("IPython", "ipykernel", "rich", "markdown_it", "streamchat._runner")
    io += ("streamchat._answer", "streamchat.widget", "streamchat.render")
    assert [name for name in loaded if name.split(".")[0] in io or name in io] == []
