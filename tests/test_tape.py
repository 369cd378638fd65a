"""Tapes: record a conversation from a real loopback server, save it, replay it offline.

The replay runs in a new process whose sockets refuse to connect, so it can only
succeed without the network; it must give the same final HTML as the live run and
show the text at the same times (within 50 ms at rate 1, scaled at rate 4).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from patch_view import applied
from streamchat import _replay, _tape
from streamchat.deltas import Done, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage
from streamchat.render import MarkdownStream, render_markdown
from streamchat.server import DemoServer
from streamchat.widget import StreamChat
from test_widget import Capture, openai_chunks

from loopback import Script, sse

SRC = str(Path(__file__).parents[1] / "src")
TESTS = str(Path(__file__).parent)
PROMPTS = ("Solve this puzzle, step by step", "Show me a table")
LEVELS = tuple(range(10, 101, 10))
TOLERANCE = 0.05  # s


def visible_length(page: str) -> int:
    return len(html.unescape(re.sub(r"<[^>]*>", "", page)))


def at_levels(points: list[tuple[float, int]], final: int) -> list[float]:
    """The first time at which each level (10%...100%) of `final` characters was reached."""
    return [next(t for t, n in points if n >= final * level / 100) for level in LEVELS]


def recorded_times(turn: _tape.TapeTurn) -> list[float]:
    """When the recording's visible text reached each level: the text that had arrived
    by each delta's time, rendered by the widget's own incremental renderer (which
    shows a half-arrived table or fence as the page does, not as a whole render)."""
    stream, shown, points = MarkdownStream(), ("", ""), []
    for entry in turn.deltas:
        if "text" in entry:
            shown = applied(shown, stream.append(entry["text"]))
            points.append((entry["t"], visible_length("".join(shown))))
    final = visible_length("".join(applied(shown, stream.finish())))
    return at_levels(points, final)


def visible_times(capture: Capture, started: dict[int, float]) -> dict[int, list[float]]:
    """Per answer (by turn id): the seconds after its prompt was sent at which its visible
    text (the body HTML as a view shows it, tags stripped) reached 10%, 20%... 100%."""
    shown: dict[int, tuple[str, str]] = {}
    seen: dict[int, list[tuple[float, int]]] = {}
    for t, message in capture.custom():
        if message.get("type") != "patch" or message["part"] != "body":
            continue
        turn = message["turn"]
        shown[turn] = applied(shown.get(turn, ("", "")), message["ops"])
        seen.setdefault(turn, []).append((t - started[turn], visible_length("".join(shown[turn]))))
    return {turn: at_levels(points, points[-1][1]) for turn, points in seen.items()}


def run(chat: StreamChat, prompts: tuple[str, ...]) -> dict[str, Any]:
    """Send each prompt in turn and wait; the answers' HTML and the visible-text times."""
    capture = Capture(chat)
    started: dict[int, float] = {}
    for prompt in prompts:
        sent = time.monotonic()
        chat.ask(prompt)
        started[chat.turns[-1]["id"]] = sent
        assert chat.wait(60)
    answers = [turn for turn in chat.turns if turn["role"] == "assistant"]
    times = visible_times(capture, started)
    return {
        "html": [turn["html"] for turn in answers],
        "reasoning_html": [turn["reasoning_html"] for turn in answers],
        "status": [turn["status"] for turn in answers],
        "times": [times[turn["id"]] for turn in answers],
        "stats": [turn["stats"] for turn in answers],
    }


# The replay's process: every connection refused, then the same measurement.
CHILD = """
import json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access is blocked in this process")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from streamchat.widget import StreamChat
from test_tape import PROMPTS, run
chat = StreamChat.replay(sys.argv[1], rate=float(sys.argv[2]))
result = run(chat, PROMPTS)
result["prompts"] = chat.prompts
result["disclaimer"] = chat.disclaimer
chat.close()
print(json.dumps(result))
"""


def replay_offline(path: Path, rate: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(rate)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """A two-turn conversation (the first with reasoning) from the demo server at
    300 characters a second, typed as it arrived; saved; the server then stopped."""
    path = tmp_path_factory.mktemp("tape") / "demo.tape.json"
    with DemoServer(rate=300) as server:
        chat = StreamChat(server.url, speed=0, model="demo-model", system="Be brief.")
        live = run(chat, PROMPTS)
        chat.save(path)
        chat.close()
    return live, path


def test_a_recorded_conversation_replays_offline_identically(recorded) -> None:
    live, path = recorded
    tape = _tape.load(path)
    assert [turn.prompt for turn in tape.turns] == list(PROMPTS)
    assert any("reasoning" in entry for entry in tape.turns[0].deltas)
    assert tape.source["model"] == "demo-model" and tape.source["system"] == "Be brief."
    assert all(status == "done" for status in live["status"])

    replayed = replay_offline(path, rate=1)
    assert replayed["prompts"] == list(PROMPTS)
    assert "Replayed from a tape" in replayed["disclaimer"]
    assert replayed["status"] == live["status"]
    # Byte-identical final HTML, answer and reasoning.
    assert replayed["html"] == live["html"]
    assert replayed["reasoning_html"] == live["reasoning_html"]
    assert live["reasoning_html"][0], "the first answer has its reasoning"
    check_pace(tape, live, replayed, rate=1)


def test_a_replay_at_rate_4_is_four_times_as_fast(recorded) -> None:
    live, path = recorded
    replayed = replay_offline(path, rate=4)
    assert replayed["html"] == live["html"]
    check_pace(_tape.load(path), live, replayed, rate=4)


def check_pace(tape: _tape.Tape, live: dict, replayed: dict, rate: float) -> None:
    """Each answer's visible text reached each level within `TOLERANCE` of the recording
    (its deltas' times divided by `rate`, through the same incremental renderer).

    The page shows text at its next frame (36 a second, `_frames`), live or replayed, so
    on an idle machine every level is within 30 ms (the replay delivers each delta half
    a frame early, `_replay`, to centre them). On two loaded cores a wake-up is now and
    then late: the bound is counted over the levels: 4 in 5 within 50 ms and the median
    within 25 ms at rate 1 (at load 9-11, 16-17 of 20 within 50 ms); at rate 4 the median
    within 50 ms (the page's 28 ms frame does not scale with the rate); and at most one
    level beyond two frames more. The table is printed (pytest -s), with the live run's
    own page for comparison."""
    print(f"\nrate {rate:g}: seconds after the prompt at which the visible text reached a level")
    print("answer level  recorded/rate  live/rate  replay  replay-recorded (ms)")
    offsets = []
    for number, turn in enumerate(tape.turns):
        expected = [t / rate for t in recorded_times(turn)]
        rows = zip(LEVELS, expected, live["times"][number], replayed["times"][number], strict=True)
        for level, want, seen, got in rows:
            offsets.append(got - want)
            print(
                f"{number + 1:6} {level:4}%  {want:13.3f} {seen / rate:10.3f} {got:7.3f}"
                f" {1000 * (got - want):10.1f}"
            )
    within = sum(abs(offset) <= TOLERANCE for offset in offsets)
    median = sorted(map(abs, offsets))[len(offsets) // 2]
    if rate == 1:
        assert within >= 0.8 * len(offsets), f"{within} of {len(offsets)} levels within 50 ms"
        assert median <= TOLERANCE / 2, f"median {1000 * median:.0f} ms off the recording"
    else:
        assert median <= TOLERANCE, f"median {1000 * median:.0f} ms off the recording"
    # Beyond two frames more: a level at most (one late wake-up of a loaded machine, not
    # read off one level); a replay paced wrong puts many there.
    far = [round(1000 * offset) for offset in offsets if abs(offset) > TOLERANCE + 2 / 36]
    assert len(far) <= 1, f"levels off the recording by {far} ms"


def test_history_resumes_a_saved_conversation(recorded, server, chats) -> None:
    _, path = recorded
    url = server.route("/v1/chat/completions", Script(openai_chunks("Carrying on.")))
    chat = StreamChat(url, speed=0, history=path)
    chats.append(chat)
    tape = _tape.load(path)
    assert [turn["role"] for turn in chat.turns] == ["user", "assistant"] * 2
    assert chat.turns[1]["status"] == "done" and chat.finished[str(chat.turns[1]["id"])]["html"]
    assert "9 sheep" in chat.transcript
    chat.ask("And then?")
    assert chat.wait(30)
    sent = server.received[-1].json()["messages"]
    assert sent == [
        {"role": "user", "content": PROMPTS[0]},
        {"role": "assistant", "content": tape.turns[0].text},
        {"role": "user", "content": PROMPTS[1]},
        {"role": "assistant", "content": tape.turns[1].text},
        {"role": "user", "content": "And then?"},
    ]
    assert chat.turns[-1]["status"] == "done"
    # Saved again and replayed: the resumed turns (no recording) have their text at once.
    again = chat.save(path.with_name("again.tape.json"))
    replay = StreamChat.replay(again)
    chats.append(replay)
    replay.ask(PROMPTS[0])
    assert replay.wait(30)
    assert replay.messages[-1] == {"role": "assistant", "content": tape.turns[0].text}


def test_history_takes_openai_messages(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks("Yes.")))
    history = [
        {"role": "system", "content": "ignored: the chat has its own"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "**Hello.**"},
    ]
    chat = StreamChat(url, speed=0, history=history)
    chats.append(chat)
    assert chat.finished[str(chat.turns[1]["id"])]["html"] == "<p><strong>Hello.</strong></p>\n"
    chat.ask("Again")
    assert chat.wait(30)
    assert [m["content"] for m in server.received[-1].json()["messages"]] == [
        "Hi",
        "**Hello.**",
        "Again",
    ]
    with pytest.raises(_tape.TapeError, match="history message 1"):
        StreamChat(url, history=[{"role": "user"}])


KEY = "sk-tape-0123456789abcdefSECRET"
ENV_KEY = "sk-envtape-9876543210fedcbaSECRET"
HEADER = "hdr-tape-0123456789-topSECRET"
BEARER = "bearer-tape-0123456789SECRET"
PASSWORD = "pw-tape-0123456789SECRET"
QUERY = "qk-tape-0123456789SECRET"


def test_no_secret_reaches_a_tape(server, chats, tmp_path, monkeypatch) -> None:
    """Keys every way a user can pass them, and a server that echoes them back in the
    answer, the reasoning, a tool call and an error: none of it on the tape."""
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    echoed = f"key {KEY} env {ENV_KEY} header {HEADER} bearer {BEARER} pw {PASSWORD} q {QUERY}"
    events: list[str | dict] = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": echoed}}]},
        {"choices": [{"index": 0, "delta": {"content": echoed}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": echoed}}
                        ]
                    },
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    ]
    failing = Script(sse(json.dumps({"error": {"message": echoed}})), status=401)
    server.route("/v1/chat/completions", Script(sse(*events)), failing)
    url = f"http://user:{PASSWORD}@127.0.0.1:{server.url.rsplit(':', 1)[1]}"
    url += f"/v1/chat/completions?key={QUERY}"
    chat = StreamChat(
        url,
        speed=0,
        api_key=KEY,
        headers={"X-Gateway-Token": HEADER, "Authorization": f"Bearer {BEARER}"},
        system=f"Never say {KEY}.",
        retries=_retries_none(),
    )
    chats.append(chat)
    chat.ask(f"Repeat {KEY} please")
    assert chat.wait(30)
    chat.ask("Once more")
    assert chat.wait(30)
    assert chat.turns[-1]["status"] == "error"
    assert server.received, "the requests reached the server"
    path = chat.save(tmp_path / "secret.tape.json")
    text = path.read_text(encoding="utf-8")
    basic = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    for secret in (KEY, ENV_KEY, HEADER, BEARER, PASSWORD, QUERY, basic):
        assert secret not in text
        assert secret[:12] not in text
    tape = json.loads(text)
    assert "[redacted]" in tape["turns"][0]["answer"]["deltas"][0]["reasoning"]
    assert tape["source"]["url"].startswith("http://")
    assert tape["turns"][1]["answer"]["status"] == "error"


def _retries_none() -> Any:
    from streamchat.transport import Retries

    return Retries(attempts=0)


# -- the format, sans I/O -------------------------------------------------------------------


def test_a_recording_is_bounded_and_keeps_its_end() -> None:
    recording = _tape.Recording(chars=10)
    recording.add(TextDelta("hello"), 0.1)
    recording.add(ReasoningDelta("world!"), 0.2)  # past 10 characters: not kept
    recording.add(TextDelta("x"), 0.3)  # nor anything after it
    recording.add(Done("stop"), 0.4)
    assert recording.truncated and len(recording.deltas) == 2
    assert recording.entries == [
        {"t": 0.1, "text": "hello"},
        {"t": 0.4, "done": {"finish_reason": "stop"}},
    ]


def test_every_delta_round_trips_through_an_entry() -> None:
    deltas = [
        TextDelta("a"),
        ReasoningDelta("b"),
        ToolCallDelta(0, "id", "name", "{}"),
        Usage(1, 2, 3),
        Done("stop"),
        StreamError("http", "boom", 500, 1.5),
    ]
    for delta in deltas:
        assert _tape.entry_delta(_tape.delta_entry(delta, 0.5)) == delta


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ('{"format": "other"}', "is not a tape"),
        ('{"format": "streamchat-tape", "version": 99, "turns": []}', "upgrade streamchat"),
        ('{"format": "streamchat-tape", "version": 1, "turns": [{}]}', "turn 1 needs a"),
        (
            '{"format": "streamchat-tape", "version": 1, "turns": [{"prompt": "q", "answer":'
            ' {"deltas": [{"t": 1, "text": "a"}, {"t": 0.5, "text": "b"}]}}]}',
            "delta 2",
        ),
        (
            '{"format": "streamchat-tape", "version": 1, "turns": [{"prompt": "q", "answer":'
            ' {"deltas": [{"t": 1, "text": "a", "reasoning": "b"}]}}]}',
            "exactly one of",
        ),
    ],
)
def test_a_bad_tape_gets_a_clear_error(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(_tape.TapeError, match=message):
        _tape.load(path)
    with pytest.raises(_tape.TapeError, match="no tape at"):
        _tape.load(tmp_path / "missing.json")


def test_replay_schedules_at_the_recorded_pace_scaled_by_rate() -> None:
    turn = _tape.TapeTurn("q", deltas=({"t": 0.5, "text": "a"}, {"t": 1.0, "done": {}}))
    tape = _tape.Tape((turn,))
    assert [t for t, _ in _replay.Replay(tape, rate=2).schedule(turn)] == [0.25, 0.5]
    assert [t for t, _ in _replay.Replay(tape, pace="typed").schedule(turn)] == [0.0, 0.0]
    with pytest.raises(ValueError, match="rate"):
        _replay.Replay(tape, rate=10)
    with pytest.raises(ValueError, match="pace"):
        _replay.Replay(tape, pace="fast")  # type: ignore[arg-type]


def test_a_stopped_answer_replays_what_it_had_shown() -> None:
    entries = ({"t": 0.1, "text": "Hello "}, {"t": 0.2, "text": "world, more"})
    turn = _tape.TapeTurn("q", status="stopped", text="Hello wor", deltas=entries)
    schedule = _replay.Replay(_tape.Tape((turn,))).schedule(turn)
    assert schedule == [(0.1, TextDelta("Hello ")), (0.2, TextDelta("wor")), (0.2, Done("stopped"))]


def test_a_prompt_not_on_the_tape_says_so(chats) -> None:
    turn = _tape.TapeTurn(
        "Hello", text="Hi!", deltas=({"t": 0.0, "text": "Hi!"}, {"t": 0.0, "done": {}})
    )
    chat = StreamChat.replay(_tape.Tape((turn,)))
    chats.append(chat)
    chat.ask("Something else")
    assert chat.wait(10)
    assert (
        "not on the tape" in chat.turns[-1]["html"]
        and "<code>Hello</code>" in chat.turns[-1]["html"]
    )
    chat.ask("Hello")
    assert chat.wait(10)
    assert chat.turns[-1]["html"] == "<p>Hi!</p>\n"


TAPES = sorted((Path(__file__).parent / "tapes").glob("*.tape.json"))


@pytest.mark.parametrize("path", TAPES, ids=lambda path: path.name)
def test_the_recorded_tapes_replay(path: Path, chats) -> None:
    """Tapes recorded from the real servers (tests/tapes/record_real.py), as fixtures: a
    real model's stream and timing, replayed with no server, gives its recorded text,
    rendered as one render of the whole text would be."""
    tape = _tape.load(path)
    assert tape.turns, "a tape with no turn proves nothing"
    chat = StreamChat.replay(path, rate=8)
    chats.append(chat)
    for turn in tape.turns:
        chat.ask(turn.prompt)
        assert chat.wait(60)
        answer = chat.turns[-1]
        assert answer["status"] == turn.status
        assert chat.messages[-1] == {"role": "assistant", "content": turn.text}
        assert answer["html"] == render_markdown(turn.text)


def test_pace_typed_types_at_the_speed_slider(chats) -> None:
    text = "word " * 24  # 120 characters, recorded as arriving at once
    turn = _tape.TapeTurn("q", text=text, deltas=({"t": 0.0, "text": text}, {"t": 0.0, "done": {}}))
    chat = StreamChat.replay(_tape.Tape((turn,)), pace="typed", speed=200)
    chats.append(chat)
    started = time.monotonic()
    chat.ask("q")
    assert chat.wait(30)
    assert time.monotonic() - started >= 0.5, "typed at 200 characters a second, not at once"
    assert 150 <= chat.stats["typed_per_second"] <= 250, chat.stats
    assert chat.turns[-1]["html"] == render_markdown(text)


def test_a_recorded_error_replays_as_an_error(chats) -> None:
    entries = (
        {"t": 0.0, "text": "Partial"},
        {"t": 0.01, "error": {"kind": "http", "message": "quota used up", "status": 429}},
    )
    turn = _tape.TapeTurn("q", status="error", text="Partial", deltas=entries)
    chat = StreamChat.replay(_tape.Tape((turn,)))
    chats.append(chat)
    chat.ask("q")
    assert chat.wait(30)
    answer = chat.turns[-1]
    assert answer["status"] == "error" and "quota used up" in answer["error"]
    assert answer["html"] == "<p>Partial</p>\n", "what came before the error stays"
