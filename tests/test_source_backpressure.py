"""No Python source can stall the kernel's loop, keep Stop waiting, or leave threads behind.

Every chat in a kernel shares one loop thread (`_runner`): a source that holds it stops
every other chat. A heartbeat on that loop ticks every 20 ms while a chat types; the
measure is the ticks counted in each half-second window, so one late tick on a loaded
machine proves nothing and a stall of seconds cannot hide. Before: 0.9 MB of text at
speed 120 stalled the loop 3.9-6.4 s at a time and Stop took 1.9-5 s (the turn ended
"done"); an endless generator at speed 10 stalled it 7-31 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from streamchat import _runner
from streamchat._sources import source_deltas
from streamchat.deltas import TextDelta
from streamchat.widget import StreamChat

from loopback import wait_until

TICK = 0.02
WINDOW = 0.5
MIN_TICKS = 3  # of 25 a window: a stall of up to ~0.4 s still passes on a busy machine


def responsive(windows: list[int]) -> bool:
    """Whether the loop kept ticking: a busy machine may starve the thread in one window
    (the scheduler's doing, not a callback's), never in two."""
    return sum(count < MIN_TICKS for count in windows) <= 1


STOP_WITHIN = 1.0  # Stop's target is 0.5 s; twice that on two loaded cores


class Heartbeat:
    """Ticks on the shared loop every TICK seconds, from `start()` to `stop()`."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self._running = False

    def start(self) -> Heartbeat:
        self._running = True
        self.started = time.monotonic()
        _runner.call_soon(self._tick)
        return self

    def _tick(self) -> None:
        self.ticks.append(time.monotonic())
        if self._running:
            _runner.loop().call_later(TICK, self._tick)

    def stop(self, window: float = WINDOW) -> list[int]:
        """The ticks counted in each whole window since `start()`."""
        self._running = False
        ended = time.monotonic()
        counts = []
        at = self.started
        while at + window <= ended:
            counts.append(sum(at <= tick < at + window for tick in self.ticks))
            at += window
        return counts


def typing_for(chat: StreamChat, seconds: float) -> list[int]:
    """Let `chat` type for `seconds` (once it is streaming); the heartbeat's windows."""
    wait_until(lambda: chat.status == "streaming", timeout=30)
    beat = Heartbeat().start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:  # the window measured, not a synchronisation
        time.sleep(0.05)
    return beat.stop()


def stop_time(chat: StreamChat) -> float:
    started = time.monotonic()
    chat.stop()
    return time.monotonic() - started


def endless() -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"word{n} "


def make(chats: list[StreamChat], source: object, **kwargs: Any) -> StreamChat:
    chat = StreamChat(source, **kwargs)
    chats.append(chat)
    return chat


TEXT = ("Lorem ipsum dolor sit amet, **consectetur** adipiscing elit. " * 15_000)[:900_000]


@pytest.mark.parametrize(
    ("source", "speed"),
    [
        (lambda: iter(TEXT), 120),  # 900 000 one-character items
        (endless, 10),
        (lambda: iter(["x" * 1_000_000, *"then more"]), 120),  # a megabyte at once
        (lambda: iter([TEXT, TEXT, TEXT]), 0),  # shown as it comes: carried by the outbox
    ],
    ids=["fast-iterator", "endless-generator", "a-megabyte-at-once", "speed-0-2.7M-at-once"],
)
def test_the_loop_never_stalls_and_stop_ends_the_turn_at_once(
    chats, source: Any, speed: float
) -> None:
    chat = make(chats, source(), speed=speed)
    windows = typing_for(chat, 2.0)
    assert len(windows) >= 3
    assert responsive(windows), windows
    assert stop_time(chat) < STOP_WITHIN
    turn = chat.turns[-1]
    assert turn["status"] == "stopped"
    assert chat.messages[-1]["content"]  # the partial answer stays


@pytest.mark.parametrize(
    ("items", "size"),
    [(lambda: iter(TEXT), len(TEXT)), (lambda: iter([TEXT, TEXT]), 2 * len(TEXT))],
    ids=["one-character-items", "two-items-of-900K"],
)
def test_a_source_read_as_fast_as_it_comes_takes_the_loop_a_frame_at_a_time(
    items: Any, size: int
) -> None:
    """Nothing typing (speed 0 without a widget): the whole text passes, in bounded steps.

    (The widget's renderer has its own cost per character, not measured here.)"""

    async def read() -> int:
        received = 0
        async for delta in source_deltas(items(), []):
            received += len(delta.text) if isinstance(delta, TextDelta) else 0
        return received

    beat = Heartbeat().start()
    received = _runner.submit(read()).result(timeout=120)
    windows = beat.stop()
    assert received == size
    assert responsive(windows), windows


def test_a_slow_model_dump_runs_off_the_loop(chats) -> None:
    class Chunk:
        def __init__(self, text: str) -> None:
            self.text = text

        def model_dump(self, **options: object) -> dict[str, str]:
            time.sleep(0.6)  # a big object, a slow validator
            return {"text": self.text}

    chat = make(chats, iter([Chunk("one "), Chunk("two "), Chunk("three "), Chunk("four")]))
    wait_until(lambda: chat.status == "streaming", timeout=30)
    beat = Heartbeat().start()
    assert chat.wait(30)
    windows = beat.stop()
    assert chat.messages[-1]["content"] == "one two three four"
    assert len(windows) >= 2 and responsive(windows), windows


def source_threads() -> int:
    return sum(thread.name == "streamchat-source" for thread in threading.enumerate())


def polling(messages: list[dict[str, str]]) -> Iterator[str]:
    """A generator blocked in its own code: it polls for a result that will not come."""
    yield "first "
    while True:
        time.sleep(0.005)


def endless_answer(messages: list[dict[str, str]]) -> Iterator[str]:
    """A generator far faster than the typing: its thread waits on the full queue."""
    return endless()


@pytest.mark.parametrize("answer", [polling, endless_answer], ids=["polling", "queue-full"])
def test_twenty_stops_leave_no_source_threads(chats, answer: Any) -> None:
    before = source_threads()
    for _ in range(20):
        chat = make(chats, answer, speed=10)
        chat.ask("go")
        wait_until(
            lambda c=chat: c._core.live is not None and c._core.live.received > 0, timeout=30
        )
        assert stop_time(chat) < STOP_WITHIN
        assert chat.turns[-1]["status"] == "stopped"
    # Each thread ends at its next Python instruction: they do not pile up.
    wait_until(lambda: source_threads() <= before, timeout=10)


PARAGRAPHS = ("Lorem ipsum dolor sit amet, **consectetur** adipiscing elit.\n\n" * 16_000)[
    :1_000_000
]


def paragraphs_fast() -> Iterator[str]:
    for start in range(0, len(PARAGRAPHS), 64 * 1024):
        yield PARAGRAPHS[start : start + 64 * 1024]


@pytest.mark.parametrize(
    ("source", "text"),
    [(lambda: iter([TEXT]), TEXT), (paragraphs_fast, PARAGRAPHS)],
    ids=["900K-at-once", "1M-fast-generator"],
)
def test_at_speed_0_a_megabyte_shows_a_frame_at_a_time(chats, source: Any, text: str) -> None:
    """At speed 0 the typewriter hands on all it gets: the outbox renders a bounded piece
    a frame, not all that built up at once (before: 1.5 s and more of loop in one call)."""
    beat = Heartbeat().start()
    chat = make(chats, source(), speed=0)
    assert chat.wait(120)
    windows = beat.stop(window=0.25)
    assert chat.turns[-1]["status"] == "done"
    assert chat.messages[-1]["content"] == text
    # Finer than `responsive`: a quarter second without a tick, once at most (a busy
    # machine's scheduler); a render of all that built up made several in a row.
    assert sum(count == 0 for count in windows) <= 1, windows
