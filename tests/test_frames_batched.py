"""Frames batched per message (issue 21): what the kernel sends while an answer types.

An answer typed at a pace goes as "frames" messages: every `_frames.BATCH` the kernel
sends the frames of the next `_frames.LEAD`, each with its delay, and each view plays
them on its animation frames (tests/js/player.test.mjs, the browser test). Here, from a
real loopback server: how many messages, when each frame is to play, the first token
and a Stop. Times are the kernel's (`time.monotonic`), so a frame's play time is its
message's send time plus its delay.
"""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

from patch_view import applied, decode_frames
from streamchat import _frames
from streamchat._messages import frames as encode_frames
from streamchat.render import Patch
from streamchat.widget import StreamChat
from test_widget import Capture, make, most_in_a_window, openai_chunks

from loopback import Script, wait_until

PROSE = (
    "Streaming lets the reader see the first words at once. Open the connection with "
    "an async client, send the request, and read the body as it arrives.\n\n"
) * 12  # ~1,800 characters: 9 s at 200 chars/s


def frames_sent(capture: Capture) -> list[tuple[float, dict[str, Any]]]:
    """Each frames message as sent, with its send time."""
    return [(t, m) for t, m in capture.messages() if m["type"] == "frames"]


def play_times(capture: Capture) -> list[tuple[float, float]]:
    """(send time, play time) of every frame sent."""
    return [(t, t + delay / 1000) for t, m in frames_sent(capture) for delay, _ in m["frames"]]


def test_the_frames_wire_form_round_trips() -> None:
    extend = Patch("extend", html="lo w", drop=0, keep=4)
    frames = [
        (0, [Patch("tail", html="<p>Hel</p>\n")]),
        (28, [extend]),  # a plain extend: a bare string
        (56, [Patch("extend", html="or", drop=0, keep=4)]),
        (139, [Patch("commit", size=11), Patch("extend", html="<p>x", drop=2, keep=9)]),
        (167, [Patch("extend", html="y", drop=0, keep=9)]),  # keep carried from the frame before
        (194, [Patch("extend", html="z", drop=3, keep=2)]),  # one extend: [drop, keep, html]
        (222, [Patch("extend", html="w", drop=0, keep=7)]),  # [keep, html]
        (400, [Patch("append", html="<hr>")]),
    ]
    wire = encode_frames(3, frames)
    assert wire[:3] == [3, "f", 4]
    assert "lo w" in wire and "y" in wire, "plain extends travel as bare strings"
    assert [3, 2, "z"] in wire and [7, "w"] in wire
    assert 28 not in wire and 56 not in wire, "delays a frame apart are implied"
    decoded = decode_frames(wire)
    assert decoded["turn"] == 3 and decoded["part"] == "body" and not decoded["stop"]
    assert [ops for _, ops in decoded["frames"]] == [ops for _, ops in frames]
    for (delay, _), (sent, _) in zip(decoded["frames"], frames, strict=True):
        assert abs(delay - sent) <= 1
    assert decode_frames(encode_frames(3, [], stop=True))["stop"]


def test_typing_sends_a_few_messages_a_second_and_frames_30_times_a_second(server, chats) -> None:
    # Streamed at 200 chars/s and typed at 200 chars/s: the bench's case.
    url = server.route("/v1/chat/completions", Script(openai_chunks(PROSE), pause=0.02))
    chat, capture = make(chats, url, speed=200)
    chat.ask("go")
    assert chat.wait(60)
    assert chat.status == "done"
    sent = frames_sent(capture)
    plays = play_times(capture)
    start, end = plays[0][1] + 0.5, plays[-1][1] - 0.5  # typing steadily
    assert end - start > 5
    # Messages of any kind, over windows of a second: 6 a second, 12 at most.
    custom = [t for t, _ in capture.messages() if start <= t <= end]
    assert most_in_a_window(custom, 1.0) <= 12, most_in_a_window(custom, 1.0)
    assert len(custom) / (end - start) <= 1 / _frames.BATCH + 1
    # What a view plays: a frame every 1/36 s, at least 30 in every second.
    steady = sorted(play for _, play in plays if start <= play <= end)
    seconds = [start + n for n in range(int(end - start))]
    per_second = [sum(low <= play < low + 1 for play in steady) for low in seconds]
    assert min(per_second) >= 30, per_second
    # Each frame is sent ahead of its time by LEAD at most, in order across messages.
    for at, play in plays:
        assert play - at <= _frames.LEAD + 0.002
    assert all(b >= a - 0.002 for (_, a), (_, b) in pairwise(plays))
    # Applied in order, the frames and patches make the answer's final HTML.
    shown = ("", "")
    for _, message in capture.custom():
        if message["type"] == "patch" and message["part"] == "body":
            shown = applied(shown, message["ops"])
    assert "".join(shown) == chat.turns[-1]["html"]
    # The turn ends after the last frame was to play, not before.
    ended = next(t for t, m in capture.messages() if m["type"] == "ended")
    assert ended >= plays[-1][1] - 0.002
    assert len(sent) < 0.2 * len(plays), "a few frames a message"


def test_the_first_token_goes_out_at_once(server, chats) -> None:
    # The first token comes after 0.3 s of silence; the next ones 20 ms apart.
    chunks = openai_chunks(PROSE[:400])
    url = server.route(
        "/v1/chat/completions", Script(chunks, pause=[0.3] + [0.02] * (len(chunks) - 1))
    )
    chat, capture = make(chats, url, speed=200)
    chat.ask("go")
    answer = chat._core.live
    assert answer is not None
    assert chat.wait(30)
    assert answer.first is not None  # when the first token reached the kernel
    first_sent, first = frames_sent(capture)[0]
    assert first["frames"][0][0] == 0, "the first frame plays as soon as it arrives"
    assert first_sent - answer.first <= _frames.PERIOD + 0.02, first_sent - answer.first


def test_stop_tells_every_view_at_once_and_nothing_follows(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(PROSE), pause=0.005))
    chat, capture = make(chats, url, speed=100)
    chat.ask("go")
    wait_until(lambda: len(frames_sent(capture)) >= 5, timeout=20)
    turn = chat.turns[-1]["id"]
    answer = chat._core.live
    assert answer is not None
    stopped_at = time.monotonic()
    chat.stop()
    assert chat.status == "stopped"
    # The frames not played yet are forgotten: the answer is what the views showed.
    unplayed = answer.outbox.unplayed.get("body", 0)
    assert unplayed > 0, "frames were sent ahead of their time"
    content = chat.messages[-1]["content"]
    assert PROSE.startswith(content)
    assert len(content) == answer.typed - unplayed
    assert chat.turns[-1]["source"] == content
    messages = capture.messages()
    stop = next(i for i, (_, m) in enumerate(messages) if m["type"] == "frames" and m["stop"])
    assert messages[stop][1]["turn"] == turn
    assert messages[stop][0] - stopped_at < 0.25, "the stop goes out at once"
    later = [m["type"] for _, m in messages[stop + 1 :] if isinstance(m, dict) and "type" in m]
    assert "frames" not in later and "patch" not in later, later
    assert later.count("ended") == 1


def test_at_speed_0_text_goes_as_patches_a_frame_at_a_time(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(PROSE[:600]), pause=0.005))
    chat, capture = make(chats, url, speed=0)
    chat.ask("go")
    assert chat.wait(20)
    kinds = {m["type"] for _, m in capture.messages()}
    assert "frames" not in kinds and "patch" in kinds
    assert isinstance(chat, StreamChat)


def a_speed_change(chat: StreamChat, capture: Capture) -> tuple[float, list[int], float]:
    """An answer typed at 50 chars/s, then at 400 until it is stopped half a second later:
    when the retime was sent and when the first frame typed at 400 plays (seconds after
    the change), and the retime's delays (ms)."""
    chat.speed = 50
    asked = time.monotonic()
    chat.ask("go")

    def sent() -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in frames_sent(capture) if t >= asked]

    wait_until(lambda: len(sent()) >= 4, timeout=20)
    changed = time.monotonic()
    chat.speed = 400  # 11 characters a frame instead of 1-2
    wait_until(lambda: any(t > changed + 0.5 for t, _ in capture.messages()), timeout=20)
    chat.stop()
    assert chat.wait(20)
    sizes = [
        (t + delay / 1000, sum(len(op.html) for op in ops))
        for t, m in sent()
        for delay, ops in m["frames"]
    ]
    before = [size for play, size in sizes if play <= changed]
    assert max(before[1:]) <= 4, "typed at 50 chars/s: a character or two a frame"
    # The frames held (~LEAD of typing at 50 chars/s, ~12 characters) play at 400 now.
    retimed, retime = next((t, m["retime"]) for t, m in sent() if t > changed and m["retime"])
    fast = next(play for play, size in sizes if play > changed and size >= 8)
    return retimed - changed, retime, fast - changed


def test_a_speed_change_applies_within_a_tenth_of_a_second(server, chats) -> None:
    # The frames the views hold are retimed to the new pace at once, and the next ones,
    # typed at it, go at the next frame. Three answers, counted: on a loaded 2-core
    # machine one wake-up of the loop thread can be late, while a change that waited for
    # the next message (`_frames.BATCH`, 0.22 s) would be late four times in five.
    url = server.route("/v1/chat/completions", Script(openai_chunks(PROSE), pause=0.002))
    chat, capture = make(chats, url)
    changes = [a_speed_change(chat, capture) for _ in range(3)]
    print("after a change (s): retime sent, the new speed shown:", changes)
    for _, retime, _ in changes:
        assert 0 < retime[-1] <= 1000 * 20 / 400, retime
    assert len([c for c in changes if c[0] >= 0.05]) <= 1, changes
    assert len([c for c in changes if c[2] > 0.1 + 2 * _frames.PERIOD]) <= 1, changes


def step_changed(server, chats, step: int, to: int) -> tuple[list[Any], list[int]]:
    """Type PROSE at 50 chars/s and `step`, change the step `to` once a few messages
    went, and stop: the retime's delays, and the sizes (HTML characters) of the frames
    it retimed (the last ones sent before it)."""
    url = server.route("/v1/chat/completions", Script(openai_chunks(PROSE), pause=0.002))
    chat, capture = make(chats, url, speed=50, step=step)
    chat.ask("go")
    wait_until(lambda: len(frames_sent(capture)) >= 6, timeout=20)
    chat.step = to
    wait_until(lambda: any(m["retime"] for _, m in frames_sent(capture)), timeout=20)
    chat.stop()
    messages = frames_sent(capture)
    at = next(i for i, (_, m) in enumerate(messages) if m["retime"])
    delays = messages[at][1]["retime"]
    sent = [ops for _, m in messages[:at] for _, ops in m["frames"]][-len(delays) :]
    return delays, [sum(len(op.html) for op in ops) for ops in sent]


def test_a_larger_step_applies_to_the_frames_held_at_once(server, chats) -> None:
    # Step 1 to 10: the frames the views hold (typed a character or two each) are played
    # together until they reveal 10 characters, so the new step shows from the next frame.
    delays, sizes = step_changed(server, chats, 1, 10)
    assert max(sizes) <= 4 and len(sizes) >= 4, sizes
    groups: dict[int, int] = {}
    for delay, size in zip(delays, sizes, strict=True):
        groups[delay] = groups.get(delay, 0) + size
    shown = [groups[delay] for delay in sorted(groups)]
    assert all(size >= 10 for size in shown[:-1]), shown
    assert len(shown) < len(sizes), "frames played together"


def test_a_smaller_step_splits_the_frames_held_at_once(server, chats) -> None:
    # Step 10 to 1 at 50 chars/s: the frames the views hold reveal 10 characters each,
    # 0.2 s apart. The retime lists each held frame's pieces (a frame apart at least),
    # so the views show the smaller step from the next frame, not once they are played.
    delays, sizes = step_changed(server, chats, 10, 1)
    assert min(sizes) >= 10, sizes  # typed at step 10
    split = [delay for delay in delays if isinstance(delay, list)]
    assert split, delays
    for pieces in split:
        # 10 characters over 0.2 s at step 1: a piece a frame (7 of them), in order.
        assert len(pieces) == 7, pieces
        gaps = [b - a for a, b in pairwise(pieces)]
        assert all(25 <= gap <= 31 for gap in gaps), gaps
    # The first piece plays at the next frame after the change.
    first = delays[0][0] if isinstance(delays[0], list) else delays[0]
    assert first <= 1000 * _frames.PERIOD + 2, delays
