"""StreamChat at the Python level, streaming from real HTTP servers on 127.0.0.1.

Every message the widget would put on the comm is captured (state updates and
custom messages, at `Widget._send`), so the tests check what the browser would
receive: patches only, at a bounded rate, and never a secret.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from patch_view import applied
from streamchat import _frames, _runner
from streamchat._budget import min_interval
from streamchat._messages import decode_patch
from streamchat._messages import patch as encode_patch
from streamchat.render import Patch, render_markdown
from streamchat.transport import Timeouts
from streamchat.widget import StreamChat

from conftest import wake_ups
from loopback import Script, free_port, sse, wait_until

ANSWER = """\
## Plan

First a paragraph with **bold** text and `code`.

- one
- two

| a | b |
|---|---|
| 1 | 2 |

```python
print("hi")
```

Done. 你好 👋
"""

API_KEY = "sk-test-0123456789abcdef-secret"
HEADER_SECRET = "hdr-0123456789-topsecret"


def pieces(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def openai_chunks(text: str, size: int = 4, usage: bool = True) -> list[bytes]:
    events: list[str | dict] = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces(text, size)]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        events.append({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 42}})
    events.append("[DONE]")
    return sse(*events)


class Capture:
    """Every comm message the widget sends, with the time it was sent."""

    def __init__(self, chat: StreamChat) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        original = chat._send

        def capture(msg: dict[str, Any], buffers: Any = None) -> None:
            with self._lock:
                self.sent.append((time.monotonic(), json.loads(json.dumps(msg))))
            original(msg, buffers=buffers)

        chat._send = capture  # type: ignore[method-assign]

    def custom(self) -> list[tuple[float, dict[str, Any]]]:
        """Custom messages; patches decoded from their compact wire form."""
        return [
            (t, decode_patch(m["content"]) if isinstance(m["content"], list) else m["content"])
            for t, m in self.sent
            if m["method"] == "custom"
        ]

    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for _, m in self.sent if m["method"] == "update"]

    def raw(self) -> str:
        return json.dumps([m for _, m in self.sent], ensure_ascii=False)


def most_in_a_window(times: list[float], width: float) -> int:
    """The most of `times` that fall in any window `width` seconds long.

    Rates are bounded over windows, never by the gap between two messages: frames are
    on a grid, and after a late one the next comes early (an 8 ms gap on a loaded
    machine is no burst)."""
    ordered = sorted(times)
    counts = (bisect.bisect_right(ordered, t + width) - i for i, t in enumerate(ordered))
    return max(counts, default=0)


def make(chats: list[StreamChat], url: str, **kwargs: Any) -> tuple[StreamChat, Capture]:
    chat = StreamChat(url, **kwargs)
    chats.append(chat)
    return chat, Capture(chat)


def statuses(chat: StreamChat) -> list[str]:
    seen: list[str] = []
    chat.observe(lambda change: seen.append(change["new"]), names="status")
    return seen


def tcp_established_to(port: int) -> int:
    """Client-side connections to 127.0.0.1:`port` still open (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if int(remote.split(":")[1], 16) == port and state == "01":
            count += 1
    return count


def test_send_returns_at_once_and_the_answer_streams_in_the_background(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER), pause=0.01))
    chat, _ = make(chats, url, speed=0)
    seen = statuses(chat)
    started = time.monotonic()
    chat.ask("Make a plan")
    assert time.monotonic() - started < 0.2
    assert chat.status == "waiting"
    assert chat.turns[-1]["status"] == "streaming"
    assert chat.wait(10)
    assert seen == ["waiting", "streaming", "done"]
    assert chat.turns[-1]["html"] == render_markdown(ANSWER)


def test_messages_transcript_and_stats(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER), pause=0.005))
    chat, _ = make(chats, url, speed=0, system="Be brief.", model="m1")
    chat.ask("Make a plan")
    assert chat.wait(10)
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Make a plan"},
        {"role": "assistant", "content": ANSWER},
    ]
    assert "**You:**\n\nMake a plan" in chat.transcript
    assert "**Assistant:**\n\n" + ANSWER in chat.transcript
    stats = chat.stats
    assert 0 < stats["ttft"] < 5
    assert stats["chars"] == len(ANSWER)
    assert stats["chars_per_second"] > 0
    assert (stats["input_tokens"], stats["output_tokens"]) == (7, 42)
    assert stats["finish_reason"] == "stop"


def test_the_history_goes_with_the_next_prompt(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks("Hello!"), pause=0.0))
    chat, _ = make(chats, url, speed=0, model="m1", options={"temperature": 0.2})
    chat.ask("first")
    assert chat.wait(10)
    chat.ask("second")
    assert chat.wait(10)
    body = server.received[-1].json()
    assert (body["model"], body["temperature"], body["stream"]) == ("m1", 0.2, True)
    assert [m["content"] for m in body["messages"]] == ["first", "Hello!", "second"]
    assert [t["role"] for t in chat.turns] == ["user", "assistant", "user", "assistant"]


def test_a_turn_boundary_sends_that_turn_only(server, chats) -> None:
    first, second = ANSWER * 20, "Short second answer."
    url = server.route(
        "/v1/chat/completions",
        Script(openai_chunks(first), pause=0.0),
        Script(openai_chunks(second), pause=0.0),
    )
    chat, capture = make(chats, url, speed=0)
    chat.ask("long")
    assert chat.wait(10)
    first_html = chat.turns[1]["html"]
    sent_before = len(capture.sent)
    chat.ask("short")
    assert chat.wait(10)
    later = json.dumps([m for _, m in capture.sent[sent_before:]], ensure_ascii=False)
    assert json.dumps(first_html, ensure_ascii=False)[1:-1] not in later
    assert len(later) < len(first_html) / 3, "the second turn re-sent the first"
    # The answers' HTML is in the state a view made later asks for, in one trait.
    state = chat.get_state()
    assert all("html" not in turn for turn in state["turns"])
    ids = [turn["id"] for turn in chat.turns if turn["role"] == "assistant"]
    finished = state["finished"]
    assert [finished[str(i)]["html"] for i in ids] == [first_html, render_markdown(second)]


def test_a_finished_answer_is_not_sent_again(server, chats) -> None:
    """The views built the answer's HTML from the patches: the turn end sends only its
    source and the sizes to check against, and the kernel keeps the HTML for new pages."""
    answer = "## Plan\n\n" + ANSWER * 8 + "\n\n```python\nprint('🚀')\n```\n"
    url = server.route("/v1/chat/completions", Script(openai_chunks(answer), pause=0.0))
    chat, capture = make(chats, url, speed=0)
    chat.ask("go")
    assert chat.wait(10)
    turn = chat.turns[-1]
    html = turn["html"]
    ended = [m for _, m in capture.custom() if m["type"] == "ended"]
    assert ended == [
        {
            "type": "ended",
            "turn": turn["id"],
            "source": answer,
            "html_size": len(html.encode("utf-16-le")) // 2,
            "reasoning_size": 0,
            "fields": {
                key: turn[key] for key in ("tool_calls", "status", "error", "note", "stats")
            },
        }
    ]
    # The turns list is not re-sent at the turn end: "ended" carries the turn's fields.
    assert not [state for state in capture.states() if "turns" in state][1:]
    assert json.dumps(html)[1:-1] not in json.dumps([state for state in capture.states()])
    assert chat.get_state()["finished"][str(turn["id"])]["html"] == html
    # What the patches built is that HTML, and the patches carried each block once.
    patches = [m for _, m in capture.custom() if m["type"] == "patch" and m["part"] == "body"]
    shown = ("", "")
    for message in patches:
        shown = applied(shown, message["ops"])
    assert shown[0] + shown[1] == html
    sent = sum(len(op.html) for m in patches for op in m["ops"])
    assert sent < 1.3 * len(html), (sent, len(html))
    # A view that could not check its copy asks for it again: one message, that answer's.
    before = len(capture.sent)
    chat._on_frontend_msg(chat, {"type": "resend", "turn": turn["id"]}, None)
    assert len(capture.sent) == before + 1
    assert capture.custom()[-1][1] == {
        "type": "finished",
        "turn": turn["id"],
        "html": html,
        "reasoning_html": "",
        "source": answer,
    }


def test_stop_closes_the_connection_and_keeps_the_partial(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 5), pause=0.02))
    chat, capture = make(chats, url, speed=0)
    chat.ask("long please")
    wait_until(lambda: len(capture.custom()) >= 3)
    assert tcp_established_to(server.port) == 1
    chat.stop()
    assert chat.status == "stopped"
    assert tcp_established_to(server.port) == 0  # closed by the time stop() returned
    partial = chat.messages[-1]
    assert partial["role"] == "assistant"
    assert 0 < len(partial["content"]) < len(ANSWER * 5)
    turn = chat.turns[-1]
    assert turn["status"] == "stopped"
    assert turn["html"] == render_markdown(partial["content"])
    count = len(capture.custom())
    time.sleep(0.2)  # nothing may arrive after Stop: a quiet period, not synchronisation
    assert len(capture.custom()) == count


def test_a_broken_stream_keeps_the_partial_and_shows_the_error(server, chats) -> None:
    chunks = openai_chunks(ANSWER)
    url = server.route("/v1/chat/completions", Script(chunks, pause=0.002, cut_after=12))
    chat, _ = make(chats, url, speed=0)
    chat.ask("go")
    assert chat.wait(10)
    assert chat.status == "error"
    turn = chat.turns[-1]
    assert turn["status"] == "error"
    assert "closed before the stream ended" in turn["error"]
    # 12 chunks reached the client: the role chunk and 11 pieces of 4 characters.
    assert chat.messages[-1]["content"] == ANSWER[:44]
    assert turn["html"] == render_markdown(chat.messages[-1]["content"])


def test_an_http_error_shows_the_servers_message(server, chats) -> None:
    body = json.dumps({"error": {"message": "Rate limit reached, slow down"}}).encode()
    url = server.route(
        "/v1/chat/completions",
        Script([body], status=429, headers={"Content-Type": "application/json"}),
    )
    chat, _ = make(chats, url)
    chat.ask("hi")
    assert chat.wait(10)
    assert chat.status == "error"
    assert "429" in chat.turns[-1]["error"]
    assert "Rate limit reached" in chat.turns[-1]["error"]
    assert chat.messages == [{"role": "user", "content": "hi"}]


def test_retry_replaces_the_failed_answer(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script([b"{}"], status=500))
    chat, _ = make(chats, url, speed=0)
    chat.ask("hi")
    assert chat.wait(10)
    assert chat.status == "error"
    server.route("/v1/chat/completions", Script(openai_chunks("Better now.")))
    # What the Retry button sends: the answer it is under.
    chat._handle_custom_msg({"type": "retry", "turn": chat.turns[-1]["id"]}, [])
    assert chat.wait(10)
    assert chat.status == "done"
    assert [t["role"] for t in chat.turns] == ["user", "assistant"]
    assert chat.messages[-1] == {"role": "assistant", "content": "Better now."}
    assert [m["content"] for m in server.received[-1].json()["messages"]] == ["hi"]


def test_patches_only_at_a_bounded_rate(server, chats) -> None:
    text = ANSWER * 4
    # Fast, but spread over ~0.6 s: all of it arriving inside one 25 ms send interval
    # would rightly travel as one append holding the whole answer.
    url = server.route("/v1/chat/completions", Script(openai_chunks(text, size=2), pause=0.002))
    chat, capture = make(chats, url, speed=0)
    chat.ask("fast")
    assert chat.wait(20)
    final = chat.turns[-1]["html"]
    escaped = json.dumps(final, ensure_ascii=False)[1:-1]  # as it appears inside a message
    assert len(final) > 1000
    *custom, (_, ended) = capture.custom()
    assert custom, "the answer must travel as patches"
    assert {m["type"] for _, m in custom} == {"patch"}
    assert ended["type"] == "ended"  # once, at the end: no HTML in it
    times = [t for t, _ in custom]
    assert times[-1] - times[0] > 0.25, "the stream lasts long enough to count over windows"
    # One message a frame at most (36 a second): at most 9 frames start in any quarter
    # second, and a message sent late for the frame before may share it.
    most = most_in_a_window(times, 0.25)
    assert most <= 0.25 / _frames.PERIOD + 2, f"{most} messages in a quarter second"
    for _, message in custom:
        assert all(op.op in ("append", "commit", "tail", "extend") for op in message["ops"])
    wire = [m["content"] for _, m in capture.sent if m["method"] == "custom"]
    assert not any(escaped in json.dumps(m, ensure_ascii=False) for m in wire)
    # The HTML travels in the patches only; they add up to about one copy.
    assert not any(escaped in json.dumps(s, ensure_ascii=False) for s in capture.states())
    patches = [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in wire[:-1]]
    framing = 20 * len(patches)  # [turn,"b","e",drop,keep,"..."] around each change
    assert sum(map(len, patches)) - framing < 2 * len(escaped), "the answer went twice"


def test_typing_is_paced_and_a_speed_change_applies_mid_answer(server, chats) -> None:
    text = "word " * 60  # 300 characters
    url = server.route("/v1/chat/completions", Script(openai_chunks(text, size=50)))
    chat, _ = make(chats, url, speed=100)
    chat.ask("slow")
    wait_until(lambda: chat.status == "streaming")
    started = time.monotonic()
    time.sleep(0.5)  # let it type at 100 chars/s for a while (measured, not synchronised)
    assert chat.status == "streaming", "at 100 chars/s, 300 chars take about 3 s"
    chat.speed = 0
    assert chat.wait(10)
    assert time.monotonic() - started < 1.5


def test_a_view_that_joins_late_gets_a_snapshot(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.01))
    chat, capture = make(chats, url, speed=0)
    chat.ask("go")
    wait_until(lambda: len(capture.custom()) >= 5)
    chat._handle_custom_msg({"type": "hello"}, [])
    wait_until(lambda: any(m["type"] == "snapshot" for _, m in capture.custom()))
    assert chat.wait(10)
    messages = [m for _, m in capture.custom()]
    at = next(i for i, m in enumerate(messages) if m["type"] == "snapshot")
    snapshot = messages[at]
    assert snapshot["turn"] == chat.turns[1]["id"], "turns are addressed by id"
    tail = snapshot["body_tail"]
    assert snapshot["body"].endswith(tail)
    shown = (snapshot["body"][: len(snapshot["body"]) - len(tail)], tail)
    for message in messages[at + 1 :]:
        if message["type"] == "patch" and message["part"] == "body":
            shown = applied(shown, message["ops"])
    assert "".join(shown) == chat.turns[-1]["html"]


def test_secrets_never_leave_python(server, chats) -> None:
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {API_KEY}"}}).encode()
    url = server.route(
        "/v1/chat/completions",
        Script([echo], status=401, headers={"Content-Type": "application/json"}),
    )
    chat, capture = make(
        chats, url, api_key=API_KEY, headers={"X-Custom-Auth": HEADER_SECRET}, model="m"
    )
    chat.ask("hi")
    assert chat.wait(10)
    assert chat.status == "error"
    received = server.received[-1].headers
    assert received["Authorization"] == f"Bearer {API_KEY}"
    assert received["X-Custom-Auth"] == HEADER_SECRET
    views = [
        json.dumps(chat.get_state(), default=str),
        capture.raw(),
        repr(chat),
        chat.transcript,
        json.dumps(chat.messages),
        json.dumps(chat.turns),
    ]
    for text in views:
        assert API_KEY not in text
        assert HEADER_SECRET not in text
    assert "401" in chat.turns[-1]["error"]
    assert not {"api_key", "headers", "url"} & set(chat.keys)


def test_close_cancels_the_stream(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 5), pause=0.02))
    chat, capture = make(chats, url, speed=0)
    chat.ask("go")
    wait_until(lambda: len(capture.custom()) >= 2)
    chat.close()
    assert chat.comm is None
    assert chat.status == "stopped"
    assert tcp_established_to(server.port) == 0


def test_stop_right_after_send_still_ends_the_turn(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER), pause=0.05))
    chat, _ = make(chats, url)
    for _ in range(5):
        chat.ask("go")
        chat.stop()
        assert chat.status == "stopped"
        assert chat.turns[-1]["status"] == "stopped"
    assert chat.wait(0)


def test_a_new_prompt_stops_the_answer_being_typed(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.02))
    chat, capture = make(chats, url, speed=0)
    chat.ask("first")
    wait_until(lambda: len(capture.custom()) >= 2)
    server.route("/v1/chat/completions", Script(openai_chunks("Second answer.")))
    chat._handle_custom_msg({"type": "send", "prompt": "second"}, [])
    assert chat.wait(10)
    assert [t.get("status") for t in chat.turns] == [None, "stopped", None, "done"]
    assert chat.messages[-1]["content"] == "Second answer."


def test_demo_server_works_without_an_api_key(chats) -> None:
    from streamchat.server import DemoServer

    with DemoServer(rate=0) as demo:
        chat, capture = make(chats, demo.url, speed=0)
        chat.ask("Show me")
        assert chat.wait(30)
    assert chat.status == "done"
    html = chat.turns[-1]["html"]
    for fragment in ("<h2", "<table", "<pre", "<blockquote", "你好", "🚀"):
        assert fragment in html
    assert chat.stats["output_tokens"] > 10
    assert {m["type"] for _, m in capture.custom()} == {"patch", "ended"}


def test_with_no_url_the_embedded_demo_server_is_used(chats) -> None:
    from streamchat.server import demo_server

    chat = StreamChat()
    chats.append(chat)
    assert chat._driver.endpoint.url == demo_server().url


def test_display_is_the_widget_alone_with_a_static_copy(chats) -> None:
    """The pace sliders are inside the widget's own front end: no ipywidgets box."""
    chat = StreamChat("http://127.0.0.1:9/v1/chat/completions", speed=80, step=2)
    chats.append(chat)
    data, _metadata = chat._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == chat.model_id
    assert "no conversation yet" in data["text/html"]
    assert "no conversation yet" in data["text/plain"]
    # Ranked first by streamchat's JupyterLab extension (labextension/), which shows
    # the static copy when the widget's model is gone.
    assert data["application/vnd.streamchat.chat+json"] == {}


def test_the_jupyterlab_extension_is_packaged() -> None:
    """pyproject's shared-data installs labextension/ where JupyterLab looks for
    prebuilt extensions; its package.json names the script that defines it."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert '"src/streamchat/labextension" = "share/jupyter/labextensions/streamchat"' in pyproject
    source = root / "src" / "streamchat" / "labextension"
    package = json.loads((source / "package.json").read_text(encoding="utf-8"))
    assert package["name"] == "streamchat"
    script = (source / package["jupyterlab"]["_build"]["load"]).read_text(encoding="utf-8")
    assert "application/vnd.streamchat.chat+json" in script
    assert "window._JUPYTERLAB.streamchat" in script


def test_pace_traits_are_validated(chats) -> None:
    chat = StreamChat("http://127.0.0.1:9/v1/chat/completions")
    chats.append(chat)
    with pytest.raises(Exception, match="negative"):
        chat.speed = -1
    with pytest.raises(Exception, match="at least 1"):
        chat.step = 0
    with pytest.raises(ValueError, match="empty"):
        chat.ask("   ")


def test_a_connection_error_is_shown_in_the_turn(chats) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    chat, _ = make(chats, url, timeouts=Timeouts(connect=2))
    chat.ask("hi")
    assert chat.wait(10)
    assert chat.status == "error"
    assert "could not connect" in chat.turns[-1]["error"]


def test_the_kernel_budget_is_shared_by_live_answers() -> None:
    # One answer's own rate is one message a frame (the outbox's rule).
    assert min_interval(0) == min_interval(1) == pytest.approx(1 / 500)
    assert min_interval(8) == pytest.approx(8 / 500)
    assert min_interval(50) == pytest.approx(0.1)
    assert min_interval(50, messages=2) == pytest.approx(0.2)
    # 10 kB of new HTML: 25 messages a second for one answer, 12.5 each for two.
    assert min_interval(1, size=10_000) == pytest.approx(0.04)
    assert min_interval(2, size=10_000) == pytest.approx(0.08)


def answer_wake_ups(chat: StreamChat) -> tuple[int, float]:
    """Ask `chat` and wait for its answer: how many times the shared loop's thread woke
    up meanwhile, and in how many seconds."""
    _runner.loop()  # started before counting
    thread = _runner._thread
    assert thread is not None and thread.native_id is not None
    before, started = wake_ups(thread.native_id), time.monotonic()
    chat.ask("go")
    assert chat.wait(30)
    return wake_ups(thread.native_id) - before, time.monotonic() - started


def frame_bound(seconds: float) -> float:
    """Wake-ups allowed in `seconds`: one a frame, a quarter more for other work the
    shared loop does meanwhile, and 20 for connecting and ending (~185 a second
    without frames)."""
    return 1.25 * seconds / _frames.PERIOD + 20


def test_the_loop_thread_wakes_once_a_frame_while_an_answer_types(server, chats) -> None:
    # 200 one-character events a second, typed at 200 chars/s: each event and each
    # typing step could wake the thread (400 a second); frames keep it near 36.
    url = server.route(
        "/v1/chat/completions", Script(openai_chunks("word " * 100, size=1), pause=0.005)
    )
    chat, capture = make(chats, url, speed=200)
    woken, seconds = answer_wake_ups(chat)
    assert chat.status == "done"
    assert chat.messages[-1]["content"] == "word " * 100
    assert seconds > 2.0  # typed at its pace
    assert woken <= frame_bound(seconds), f"{woken} wake-ups in {seconds:.2f} s"
    patches = [t for t, message in capture.custom() if message.get("type") == "patch"]
    assert len(patches) / seconds >= 20  # and still typing smoothly


def test_a_generator_source_wakes_the_loop_thread_once_a_frame_too(chats) -> None:
    # A sync generator (an SDK stream) read on its own thread, 200 items a second.
    def source(messages: list[dict[str, str]]) -> Iterator[str]:
        for _ in range(500):
            time.sleep(0.005)
            yield "w"

    chat = StreamChat(source, speed=200)
    chats.append(chat)
    woken, seconds = answer_wake_ups(chat)
    assert chat.status == "done"
    assert chat.messages[-1]["content"] == "w" * 500
    assert woken <= frame_bound(seconds), f"{woken} wake-ups in {seconds:.2f} s"


def test_many_answers_at_once_stay_within_the_kernel_budget(server, chats) -> None:
    url = server.route(
        "/v1/chat/completions", Script(openai_chunks(ANSWER * 6, size=2), pause=0.01)
    )
    pairs = [make(chats, url, speed=0) for _ in range(30)]
    for chat, _ in pairs:
        # One connection at a time: the loopback server's listen backlog is 5.
        chat.ask("go")
        wait_until(lambda chat=chat: chat.status != "waiting")
    for chat, _ in pairs:
        assert chat.wait(60)
        assert chat.status == "done"
    first_of_last = pairs[-1][1].custom()[0][0]
    assert first_of_last < pairs[0][1].custom()[-1][0], "the 30 answers must overlap"
    times = sorted(t for _, capture in pairs for t, _ in capture.custom())
    busiest = max(sum(1 for t in times[i:] if t - start <= 1.0) for i, start in enumerate(times))
    assert busiest <= 500, f"{busiest} messages in one second from 30 answers"


def test_a_long_open_block_is_sent_within_the_byte_budget(server, chats) -> None:
    code = "```python\n" + "".join(f"value_{i} = compute({i})  # step {i}\n" for i in range(300))
    url = server.route("/v1/chat/completions", Script(openai_chunks(code, size=40), pause=0.004))
    chat, capture = make(chats, url, speed=0)
    chat.ask("a long code block")
    assert chat.wait(30)
    sent = [(t, len(json.dumps(m["content"]))) for t, m in capture.sent if m["method"] == "custom"]
    assert len(chat.turns[-1]["html"]) > 30_000
    for i, (start, _) in enumerate(sent):
        window = sum(size for t, size in sent[i:] if t - start < 1.0)
        assert window <= 250_000 + 60_000, "over the byte budget (plus one message)"


def test_a_patch_travels_as_a_compact_array() -> None:
    ops = [Patch("commit", size=12), Patch("append", "<p>a</p>"), Patch("extend", "b", 0, 4)]
    wire = encode_patch(7, "reasoning", ops)
    assert wire == [7, "r", "c", 12, "a", "<p>a</p>", "e", 0, 4, "b"]
    assert decode_patch(wire) == {"type": "patch", "turn": 7, "part": "reasoning", "ops": ops}
    compact_json = json.dumps(encode_patch(12, "body", [ops[2]]), separators=(",", ":"))
    assert len(compact_json) <= 20  # "b" + 19 of framing, as the kernel sends it (no spaces)


def test_patch_counts_are_utf16_code_units_as_in_the_browser() -> None:
    shown = applied(("", "<p>🚀</p>"), [Patch("extend", "ok", drop=2, keep=4)])
    assert shown == ("", "<p>ok</p>")
    assert applied(("", "<p>🚀</p>\n<p>a"), [Patch("commit", size=9)]) == ("<p>🚀</p>", "\n<p>a")


def test_reasoning_and_tool_calls_travel_as_their_own_parts(server, chats) -> None:
    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields}]}

    events = [
        delta(reasoning_content="Think **hard**. "),
        delta(reasoning_content="Then call."),
        delta(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "lookup"}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"x"}'}}]),
        delta(content="Answer."),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]
    url = server.route("/v1/chat/completions", Script(sse(*events), pause=0.03))
    chat, capture = make(chats, url, speed=0)
    chat.ask("go")
    assert chat.wait(10)
    turn = chat.turns[-1]
    assert turn["reasoning_html"] == render_markdown("Think **hard**. Then call.")
    assert turn["tool_calls"] == [{"name": "lookup", "arguments": '{"q": "x"}', "after": 0}]
    assert turn["html"] == "<p>Answer.</p>\n"
    assert chat.stats["finish_reason"] == "tool_calls"
    custom = [m for _, m in capture.custom()]
    assert {m["part"] for m in custom if m["type"] == "patch"} == {"body", "reasoning"}
    tools = [m["tool_calls"] for m in custom if m["type"] == "tools"]
    assert tools[-1] == [{"name": "lookup", "arguments": '{"q": "x"}', "after": 0}]
    # The history carries the visible answer only: reasoning is not sent back.
    assert chat.messages[-1] == {"role": "assistant", "content": "Answer."}


def test_secrets_stay_out_of_messages_state_and_logs_while_streaming(server, chats, caplog) -> None:
    import logging

    import ipywidgets

    caplog.set_level(logging.DEBUG)
    # Half a second of stream: a dozen frames at least, however loaded the machine.
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.004))
    chat, capture = make(
        chats, url, api_key=API_KEY, headers={"X-Custom-Auth": HEADER_SECRET}, speed=0
    )
    chat.ask("hi")
    assert chat.wait(10)
    assert chat.status == "done"
    assert server.received[-1].headers["Authorization"] == f"Bearer {API_KEY}"
    manager_state = json.dumps(ipywidgets.Widget.get_manager_state(), default=str)
    assert chat.model_id in manager_state
    saved = json.dumps(chat._repr_mimebundle_())  # what a saved notebook holds
    assert "Done. 你好" in json.loads(saved)[0]["text/html"]
    texts = (manager_state, capture.raw(), caplog.text, repr(chat), chat.transcript, saved)
    for text in texts:
        assert API_KEY not in text
        assert HEADER_SECRET not in text
    assert len(capture.custom()) > 3  # the answer really streamed as messages


def test_doctor_diagnoses_the_chats_endpoint(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER), cut_after=8))
    chat, _ = make(chats, url, api_key=API_KEY, speed=0)
    chat.ask("why did it break?")
    assert chat.wait(10)
    assert chat.status == "error"
    diagnosis = chat.doctor(timeout=10)
    assert diagnosis.verdict == "incomplete"
    assert "incomplete-chunked" in diagnosis.ids
    assert server.received[-1].json()["messages"][-1]["content"] == "why did it break?"
    assert server.received[-1].headers["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in diagnosis._repr_html_()


# --- what the bubble shows: tool-call order, reasoning time, copy source, errors, math ---


def test_tool_calls_remember_how_much_text_came_before_them(server, chats) -> None:
    def delta(**fields: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": fields}]}

    events = [
        delta(reasoning_content="Think."),
        delta(tool_calls=[{"index": 0, "id": "a", "function": {"name": "first"}}]),
        delta(content="Let me check."),
        delta(tool_calls=[{"index": 1, "id": "b", "function": {"name": "second"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    ]
    url = server.route("/v1/chat/completions", Script(sse(*events), pause=[0.3, 0, 0, 0, 0, 0]))
    chat, _ = make(chats, url, speed=0)
    chat.ask("go")
    assert chat.wait(10)
    turn = chat.turns[-1]
    assert [(c["name"], c["after"]) for c in turn["tool_calls"]] == [
        ("first", 0),
        ("second", len("Let me check.")),
    ]
    # Reasoning lasted from the request until the first tool call (the first byte
    # waited 0.3 s): the fold label's figure.
    assert 0.3 <= turn["stats"]["reasoning_seconds"] < 5


def test_the_turn_keeps_the_markdown_source_and_latex(server, chats) -> None:
    answer = "Euler: $e^{i\\pi}+1=0$ and \\(a^2+b^2=c^2\\), costs $5."
    url = server.route("/v1/chat/completions", Script(openai_chunks(answer)))
    chat, _ = make(chats, url, speed=0)
    chat.ask("math")
    assert chat.wait(10)
    turn = chat.turns[-1]
    assert turn["source"] == answer
    assert turn["html"].count("<math") == 2
    # The source is kept with the HTML in `finished`, not in every turns sync.
    assert chat.finished[str(turn["id"])]["source"] == answer
    assert "source" not in chat.get_state("turns")["turns"][-1]
    assert chat.messages[-1] == {"role": "assistant", "content": answer}
    assert answer in chat.transcript


def test_an_error_says_what_happened_then_the_fix(server, chats) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script(
            [b'{"error": {"message": "Incorrect API key provided"}}'],
            status=401,
            headers={"Content-Type": "application/json"},
        ),
    )
    chat, _ = make(chats, url, provider="openai")
    chat.ask("hi")
    assert chat.wait(10)
    what, fix, detail = chat.turns[-1]["error"].split("\n")
    assert what == "The server refused the API key."
    assert "OPENAI_API_KEY" in fix and "api_key=" in fix
    assert detail.startswith("HTTP 401") and "Incorrect API key provided" in detail
    assert "\n" not in chat.transcript.split("*(error: ")[1].split(")*")[0]


@pytest.mark.parametrize("degenerate", ["[" * 50_000, "- " * 1_000 + "x\n" + "> " * 20_000])
def test_a_degenerate_answer_leaves_other_chats_typing_and_stops_at_once(
    server, chats, degenerate: str
) -> None:
    """A model stuck repeating "[" once froze every chat in the kernel for minutes."""
    stuck_url = server.route("/stuck", Script(openai_chunks(degenerate, size=20), pause=0.002))
    calm_url = server.route("/calm", Script(openai_chunks(ANSWER * 6), pause=0.01))
    stuck, stuck_capture = make(chats, stuck_url, speed=0)
    calm, calm_capture = make(chats, calm_url, speed=150)
    stuck.ask("repeat yourself")
    wait_until(lambda: len(stuck_capture.custom()) >= 20)
    calm.ask("a normal question")
    wait_until(lambda: len(calm_capture.custom()) >= 10)
    assert stuck.status == "streaming", "the degenerate answer is still being typed"
    times = [t for t, _ in calm_capture.custom()]
    # The other chat keeps typing smoothly: no pause a reader would notice. One pause
    # may be the loaded machine's; a renderer stalling the loop makes them all long.
    gaps = sorted(b - a for a, b in pairwise(times))
    assert gaps[-2] < 0.25 and gaps[-1] < 1.0, gaps[-3:]
    began = time.monotonic()
    stuck.stop()
    assert time.monotonic() - began < 0.5, "Stop must end the answer within 0.5 s"
    assert stuck.status == "stopped"
    assert stuck.turns[-1]["status"] == "stopped"
    assert "streamchat-raw" in stuck.turns[-1]["html"]  # shown as text, not formatted
    assert calm.wait(30)
    assert calm.turns[-1]["html"] == render_markdown(ANSWER * 6)
