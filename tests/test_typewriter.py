"""Typewriter pacing, driven by a fake clock: `now` is a plain float we advance ourselves.

The consumer in these tests behaves like the real one (streamchat._pacing): it sleeps
until `next_deadline()` and then calls `take()`, so wake-ups are counted exactly.
"""

from __future__ import annotations

import asyncio
import math
import random
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from itertools import pairwise

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat._pacing import type_out
from streamchat.deltas import Delta, TextDelta
from streamchat.typewriter import Typewriter

GAP = 1 / 60  # the default max_rate's minimum distance between two reveals

# Tricky grapheme clusters (UAX #29): ZWJ sequences, flags, skin tones, combining marks,
# an Indic conjunct, a decomposed Hangul syllable, CRLF, CJK.
TRICKY = [
    "👨\u200d👩\u200d👧\u200d👦",
    "🇫🇷",
    "🇯🇵",
    "👍🏽",
    "🏳\ufe0f\u200d🌈",
    "e\u0301",
    "a\u0301\u0323",
    "क्षि",
    "\u1100\u1161\u11a8",
    "\r\n",
    "漢",
    "字",
    "。",
    "x",
    " ",
    "\n",
]
MIXED = "Streaming 漢字とかな, emoji 👩\u200d💻 and flags 🇯🇵🇫🇷, café e\u0301.\n"


def clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


def boundaries(text: str) -> set[int]:
    """Code-point offsets where the full text may be cut without splitting a cluster."""
    ends, pos = {0}, 0
    for cluster in clusters(text):
        pos += len(cluster)
        ends.add(pos)
    return ends


def consume(tw: Typewriter, until: float, now: float = 0.0) -> list[tuple[float, str]]:
    """Wake at each deadline up to `until` and take; every wake must reveal something."""
    reveals: list[tuple[float, str]] = []
    while (deadline := tw.next_deadline()) is not None and deadline <= until:
        now = max(now, deadline)
        text = tw.take(now)
        assert text, f"woken at {now} for nothing"
        reveals.append((now, text))
    return reveals


def drain(tw: Typewriter, now: float) -> list[tuple[float, str]]:
    """Consume until finished (the stream must be closed)."""
    reveals = consume(tw, math.inf, now)
    assert tw.finished
    return reveals


def count(reveals: Iterable[tuple[float, str]]) -> int:
    return sum(len(clusters(text)) for _, text in reveals)


def long_text(n_clusters: int) -> str:
    unit = MIXED * (n_clusters // len(clusters(MIXED)) + 1)
    return "".join(clusters(unit)[:n_clusters])


# -- rate -------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [30.0, 120.0, 500.0, 2000.0, 10000.0])
@pytest.mark.parametrize("step", [1, 3])
def test_rate_over_ten_seconds_equals_speed(speed: float, step: int) -> None:
    tw = Typewriter(speed, step)
    tw.push(long_text(int(speed * 12)), 0.0)
    reveals = consume(tw, 10.0)
    assert reveals[-1][0] > 10.0 - GAP
    rate = (count(reveals) - step) / reveals[-1][0]  # the first step is due at t = 0
    assert rate == pytest.approx(speed, rel=0.002)


def test_late_wakeups_do_not_make_the_rate_drift() -> None:
    tw = Typewriter(50.0)
    tw.push(long_text(1000), 0.0)
    taken, now = 0, 0.0
    while now < 10.0:
        now = tw.next_deadline() + 0.013  # always 13 ms late
        taken += len(clusters(tw.take(now)))
    # Deadline-based: lateness costs at most one late tick, never accumulates.
    assert taken == pytest.approx(50.0 * now, abs=1.0)


# -- coalescing -------------------------------------------------------------------------


def test_no_more_than_max_rate_wakeups_at_high_speed() -> None:
    tw = Typewriter(10000.0, 1)
    tw.push(long_text(120_000), 0.0)
    reveals = consume(tw, 10.0)
    times = [t for t, _ in reveals]
    assert len(times) <= 60 * 10 + 1
    assert min(b - a for a, b in pairwise(times)) >= GAP - 1e-9
    assert count(reveals) / 10.0 == pytest.approx(10000.0, rel=0.005)


def test_custom_max_rate() -> None:
    tw = Typewriter(1000.0, max_rate=10.0)
    tw.push(long_text(20_000), 0.0)
    reveals = consume(tw, 5.0)
    assert len(reveals) == 51  # t = 0, 0.1, ..., 5.0
    assert count(reveals) == pytest.approx(5000, abs=1)


@given(times=st.lists(st.floats(0, 3), min_size=1, max_size=200))
def test_takes_are_coalesced_whoever_calls(times: list[float]) -> None:
    tw = Typewriter(5000.0)
    tw.push(long_text(20_000), 0.0)
    shown = [t for t in sorted(times) if tw.take(t)]
    assert all(b - a >= GAP - 1e-9 for a, b in pairwise(shown))


def test_speed_zero_is_coalesced_too() -> None:
    tw = Typewriter(0.0)
    tw.push("one\n", 0.0)
    assert tw.take(0.0) == "one\n"
    tw.push("two\n", 0.001)
    assert tw.take(0.001) == ""
    assert tw.next_deadline() == pytest.approx(GAP)
    assert tw.take(GAP) == "two\n"


# -- step -------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [7.0, 900.0])
def test_step_reveals_whole_multiples_of_step(speed: float) -> None:
    text = long_text(1001)  # not a multiple of 4
    tw = Typewriter(speed, 4)
    tw.push(text, 0.0)
    open_reveals = consume(tw, 5.0)
    assert all(len(clusters(t)) % 4 == 0 for _, t in open_reveals)
    tw.close(5.0)
    closed = drain(tw, 5.0)
    *whole, last = [len(clusters(t)) for _, t in closed]
    assert all(n % 4 == 0 for n in whole)
    assert last % 4 == 1001 % 4
    assert "".join(t for _, t in open_reveals + closed) == text


def test_step_waits_for_a_full_step_while_open() -> None:
    tw = Typewriter(10.0, 3)
    tw.push("ab\n", 0.0)
    assert tw.take(0.0) == "ab\n"
    tw.push("cd\n", 1.0)  # only 2 of the next 3 are final ("\n" is final too: 3 of 3)
    assert tw.take(1.0) == "cd\n"
    tw.push("ef", 2.0)  # "f" may still grow: one cluster available, step is 3
    assert tw.next_deadline() is None
    assert tw.take(5.0) == ""
    tw.close(6.0)
    assert tw.take(6.0) == "ef"
    assert tw.finished


# -- speed changes ----------------------------------------------------------------------


def test_speed_change_mid_stream() -> None:
    tw = Typewriter(100.0)
    tw.push(long_text(3000), 0.0)
    first = consume(tw, 5.0)
    now = first[-1][0]
    tw.speed = 20.0
    assert tw.next_deadline() == now  # take at once so that the change applies
    assert tw.take(now) == ""
    second = consume(tw, 10.0, now)
    assert count(first) / 5.0 == pytest.approx(100.0, rel=0.01)
    assert count(second) / 5.0 == pytest.approx(20.0, rel=0.02)


def test_speeding_up_applies_at_once() -> None:
    tw = Typewriter(1.0)
    tw.push(long_text(1000), 0.0)
    assert tw.take(0.0) == "S"
    assert tw.next_deadline() == 1.0
    tw.speed = 100.0
    assert tw.next_deadline() == 0.0  # take now: the change applies there
    assert tw.take(0.5) == "t"  # the first new step, not a burst of the old debt
    assert tw.next_deadline() == pytest.approx(0.5 + GAP)
    assert count(consume(tw, 1.5, 0.5)) == pytest.approx(100, abs=2)


def test_slowing_down_never_reveals_early() -> None:
    tw = Typewriter(100.0)
    tw.push(long_text(100), 0.0)
    tw.take(0.0)
    tw.speed = 1.0
    assert tw.take(0.005) == ""
    assert tw.next_deadline() == pytest.approx(1.0)  # one new interval after the last tick
    assert tw.take(0.99) == ""
    assert tw.take(1.0) == "t"


def test_step_change_applies_from_the_next_tick() -> None:
    tw = Typewriter(10.0, 1)
    tw.push(long_text(100), 0.0)
    consume(tw, 1.0)
    tw.step = 5
    assert tw.take(1.0) == ""  # the wake that applies the change
    assert tw.next_deadline() == pytest.approx(1.5)
    reveals = consume(tw, 3.0, 1.0)
    sizes = [len(clusters(t)) for _, t in reveals]
    assert set(sizes) == {5}
    assert count(reveals) / 2.0 == pytest.approx(10.0, rel=0.1)


def test_switching_to_speed_zero_and_back() -> None:
    tw = Typewriter(2.0)
    tw.push("abcdefgh\n", 0.0)
    assert tw.take(0.0) == "a"
    tw.speed = 0.0
    assert tw.take(0.1) == "bcdefgh\n"
    tw.speed = 2.0
    tw.push("ijkl\n", 0.2)
    assert tw.take(0.2) == ""
    assert tw.next_deadline() == pytest.approx(0.6)  # one new interval after the last reveal
    assert tw.take(0.6) == "i"


# -- speed 0 ----------------------------------------------------------------------------


def test_speed_zero_shows_text_as_it_arrives() -> None:
    tw = Typewriter(0.0)
    tw.push("Hello, wor", 0.0)
    assert tw.take(0.0) == "Hello, wo"  # "r" could still take a combining mark
    tw.push("ld!\n", 1.0)
    assert tw.take(1.0) == "rld!\n"  # a newline cannot grow: nothing held back
    assert tw.next_deadline() is None
    tw.push("e", 2.0)
    assert tw.take(2.0) == ""
    assert tw.pending == 1
    tw.push("\u0301", 3.0)
    assert tw.take(3.0) == ""
    tw.close(4.0)
    assert tw.take(4.0) == "e\u0301"
    assert tw.finished


# -- starvation -------------------------------------------------------------------------


def test_starvation_then_text_arrives_without_a_burst() -> None:
    tw = Typewriter(10.0)
    tw.push("abcd\n", 0.0)
    assert count(consume(tw, 5.0)) == 5
    assert tw.next_deadline() is None
    tw.push("efghijklmnopqrstuvwxyz\n", 5.0)
    assert tw.take(5.0) == "e"
    assert tw.take(5.05) == ""
    assert tw.next_deadline() == pytest.approx(5.1)
    later = consume(tw, 7.0, 5.0)
    assert count(later) == 20  # 5.1 .. 7.0: one per 0.1 s, no catch-up of the idle time


def test_text_arriving_in_time_keeps_the_schedule() -> None:
    tw = Typewriter(10.0)
    reveals: list[tuple[float, str]] = []
    now = 0.0
    for k in range(10):  # 5 clusters every 0.5 s, each batch 10 ms before it is needed
        tw.push("abcd\n", max(0.0, 0.5 * k - 0.01))
        reveals += consume(tw, 0.5 * (k + 1) - 0.02, now)
        now = reveals[-1][0]
    times = [t for t, _ in reveals]
    assert times == pytest.approx([0.1 * i for i in range(len(times))])


def test_held_back_cluster_is_not_a_deadline() -> None:
    tw = Typewriter(10.0)
    tw.push("ab", 0.0)
    assert tw.take(0.0) == "a"
    assert tw.next_deadline() is None  # "b" may still grow
    assert tw.pending == 1


# -- grapheme clusters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pieces",
    [
        ["👨", "\u200d", "👩", "\u200d👧"],
        ["🇫", "🇷", "🇯", "🇵"],
        ["e", "\u0301", "\u0323", "x"],
        ["क", "्", "ष", "ि"],
        ["\u1100", "\u1161", "\u11a8"],
        ["\r", "\n", "漢", "字"],
        ["👍", "🏽"],
    ],
)
@pytest.mark.parametrize("speed", [0.0, 3.0, 10000.0])
def test_clusters_are_never_split_across_pushes(pieces: list[str], speed: float) -> None:
    text = "".join(pieces)
    cuts = boundaries(text)
    tw = Typewriter(speed)
    shown = ""
    for i, piece in enumerate(pieces):
        tw.push(piece, float(i))
        shown += "".join(t for _, t in consume(tw, float(i) + 0.99, float(i)))
        assert len(shown) in cuts
    tw.close(len(pieces))
    shown += "".join(t for _, t in drain(tw, len(pieces)))
    assert shown == text


@pytest.mark.parametrize("cluster", TRICKY)
def test_each_tricky_cluster_counts_as_one(cluster: str) -> None:
    tw = Typewriter(1.0)
    for char in cluster:
        tw.push(char, 0.0)
    tw.push("\n", 0.0)
    assert tw.pending == 2
    assert tw.take(0.0) == cluster


# -- close and drain --------------------------------------------------------------------


def test_drain_after_close_keeps_the_pace() -> None:
    tw = Typewriter(10.0)
    tw.push(long_text(29) + "z", 0.0)
    tw.close(0.0)
    assert not tw.finished
    reveals = drain(tw, 0.0)
    assert [t for t, _ in reveals] == pytest.approx([0.1 * i for i in range(30)])
    assert tw.take(100.0) == ""
    assert tw.next_deadline() is None


def test_close_releases_the_held_cluster_on_schedule() -> None:
    tw = Typewriter(10.0)
    tw.push("ab", 0.0)
    assert tw.take(0.0) == "a"
    tw.close(0.05)
    assert tw.take(0.05) == ""
    assert tw.next_deadline() == pytest.approx(0.1)
    assert tw.take(0.1) == "b"
    assert tw.finished


def test_close_is_idempotent_and_push_after_close_fails() -> None:
    tw = Typewriter()
    tw.close(0.0)
    tw.close(1.0)
    assert tw.finished
    with pytest.raises(RuntimeError):
        tw.push("late", 2.0)


# -- catch-up ---------------------------------------------------------------------------


def test_no_catch_up_by_default() -> None:
    tw = Typewriter(10.0)
    tw.push(long_text(999) + "\n", 0.0)
    tw.close(0.0)
    assert drain(tw, 0.0)[-1][0] == pytest.approx(99.9)


def test_catch_up_after_a_burst() -> None:
    tw = Typewriter(10.0, max_lag=2.0)
    tw.push(long_text(999) + "\n", 0.0)
    tw.close(0.0)
    reveals = drain(tw, 0.0)
    # lag 99.9 s -> 2 s in 2*ln(99.9/2) = 7.8 s, then the last 20 clusters at speed: 9.8 s.
    assert reveals[-1][0] == pytest.approx(2.0 * math.log(99.9 / 2.0) + 2.0, rel=0.05)
    per_second = [count(r for r in reveals if s <= r[0] < s + 1) for s in range(9)]
    assert per_second == sorted(per_second, reverse=True)  # slows down smoothly, no jump
    assert per_second[-1] == pytest.approx(10, abs=1)  # back at speed


def test_catch_up_keeps_up_with_a_fast_supply() -> None:
    tw = Typewriter(10.0, max_lag=2.0)
    reveals: list[tuple[float, str]] = []
    now = 0.0
    for k in range(600):  # 30 clusters per second for 20 s
        now = k / 30
        tw.push("x\n"[k % 2], now)
        reveals += consume(tw, (k + 1) / 30 - 1e-6, now)
    last_ten = count(r for r in reveals if r[0] >= 10.0)
    assert last_ten / 10.0 == pytest.approx(30.0, rel=0.05)
    assert tw.pending / 30.0 == pytest.approx(2.0, rel=0.1)  # shown ~max_lag after arrival


def test_catch_up_leaves_a_small_lag_alone() -> None:
    paced, plain = Typewriter(10.0, max_lag=2.0), Typewriter(10.0)
    for tw in (paced, plain):
        tw.push(long_text(19) + "\n", 0.0)
        tw.close(0.0)
    assert drain(paced, 0.0) == drain(plain, 0.0)


# -- properties -------------------------------------------------------------------------

chunkings = st.lists(st.sampled_from(TRICKY), min_size=1, max_size=40).flatmap(
    lambda picked: st.tuples(
        st.just("".join(picked)),
        st.lists(st.integers(0, len("".join(picked))), max_size=15),
    )
)


@settings(max_examples=300, deadline=None)
@given(
    chunking=chunkings,
    speed=st.sampled_from([0.0, 0.5, 7.0, 120.0, 5000.0]),
    step=st.integers(1, 4),
    max_lag=st.sampled_from([None, 0.3, 5.0]),
    gaps=st.lists(st.floats(0.0, 0.2), min_size=1, max_size=60),
    new_speed=st.sampled_from([None, 0.0, 3.0, 300.0]),
)
def test_everything_pushed_is_taken_whole_and_in_order(
    chunking: tuple[str, list[int]],
    speed: float,
    step: int,
    max_lag: float | None,
    gaps: list[float],
    new_speed: float | None,
) -> None:
    text, cut_points = chunking
    cuts = sorted({0, len(text), *cut_points})
    chunks = [text[a:b] for a, b in pairwise(cuts)]
    tw = Typewriter(speed, step, max_lag=max_lag)
    ok = boundaries(text)
    shown, now = "", 0.0
    for i, gap in enumerate(gaps):
        now += gap
        if i < len(chunks):
            tw.push(chunks[i], now)
        if new_speed is not None and i == len(gaps) // 2:
            tw.speed = new_speed
        shown += tw.take(now)
        assert len(shown) in ok
    for chunk in chunks[len(gaps) :]:
        tw.push(chunk, now)
    tw.close(now)
    shown += "".join(t for _, t in drain(tw, now))
    assert shown == text
    assert tw.pending == 0


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speed": -1.0},
        {"speed": math.inf},
        {"speed": math.nan},
        {"step": 0},
        {"step": 1.5},
        {"max_lag": 0.0},
        {"max_rate": 0.0},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Typewriter(**kwargs)


def test_rejects_bad_settings_when_set() -> None:
    tw = Typewriter()
    with pytest.raises(ValueError):
        tw.speed = -5.0
    with pytest.raises(ValueError):
        tw.step = 0
    assert (tw.speed, tw.step) == (120.0, 1)


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.text(max_size=12), max_size=20),
    speed=st.sampled_from([0.0, 40.0, 100000.0]),
    gaps=st.lists(st.floats(0.0, 0.1), min_size=20, max_size=20),
)
def test_any_text_is_segmented_as_a_whole(
    chunks: list[str], speed: float, gaps: list[float]
) -> None:
    text = "".join(chunks)
    ok = boundaries(text)
    tw = Typewriter(speed)
    shown, now = "", 0.0
    for chunk, gap in zip(chunks, gaps, strict=False):
        now += gap
        tw.push(chunk, now)
        shown += tw.take(now)
        assert len(shown) in ok
    tw.close(now)
    shown += "".join(t for _, t in drain(tw, now))
    assert shown == text


@settings(max_examples=200, deadline=None)
@given(
    chunking=chunkings,
    speed=st.sampled_from([0.0, 2.0, 45.0, 800.0]),
    step=st.integers(1, 3),
    max_lag=st.sampled_from([None, 0.5]),
    gaps=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=40),
    new_speed=st.sampled_from([None, 0.0, 9.0, 3000.0]),
)
def test_a_deadline_never_wakes_the_consumer_for_nothing(
    chunking: tuple[str, list[int]],
    speed: float,
    step: int,
    max_lag: float | None,
    gaps: list[float],
    new_speed: float | None,
) -> None:
    text, cut_points = chunking
    cuts = sorted({0, len(text), *cut_points})
    tw = Typewriter(speed, step, max_lag=max_lag)
    shown, now = "", 0.0
    for i, (a, b) in enumerate(pairwise(cuts)):
        before, now = now, now + gaps[i % len(gaps)]
        shown += "".join(t for _, t in consume(tw, now, before))  # asserts each wake
        tw.push(text[a:b], now)
        if new_speed is not None and i == 1:
            tw.speed = new_speed
            assert tw.next_deadline() in (None, now)
            shown += tw.take(now)  # the wake that applies the change may reveal nothing
    tw.close(now)
    shown += "".join(t for _, t in drain(tw, now))
    assert shown == text


class CountingTypewriter(Typewriter):
    """Counts the pacing loop's wake-ups: it calls `take` once per wake-up."""

    takes = 0

    def take(self, now: float) -> str:
        self.takes += 1
        return super().take(now)


def test_text_that_changes_no_deadline_does_not_wake_the_pacing_loop() -> None:
    """50 events arrive, one a loop turn, while the first character is on screen and the
    second is due a fifth of a second later: one wake-up for the first, none for the rest."""

    async def run() -> tuple[int, str]:
        typewriter = CountingTypewriter(5)
        shown: list[str] = []
        pushed = asyncio.Event()

        async def events() -> AsyncIterator[Delta]:
            for _ in range(50):
                yield TextDelta("abcd")
                await asyncio.sleep(0)  # the next event comes on a later loop turn
            pushed.set()
            await asyncio.get_running_loop().create_future()  # the stream stays open

        typing = asyncio.ensure_future(type_out(events(), typewriter, shown.append))
        await pushed.wait()
        takes = typewriter.takes
        typing.cancel()
        await asyncio.wait([typing], timeout=10)
        return takes, "".join(shown)

    takes, shown = asyncio.run(run())
    assert shown == "a"
    assert takes <= 2  # one per event (50) before


# -- the backlog's memory ---------------------------------------------------------------


def held_bytes_per_character(text: str, piece: int) -> float:
    """Memory the typewriter holds per character of a backlog nothing is taken from."""
    tw = Typewriter(10.0, max_backlog=None)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(text), piece):
            tw.push(text[start : start + piece], 0.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tw.pending == len(clusters(text))
    return held / len(text)


@pytest.mark.parametrize(
    ("script", "unit", "bound"),
    [
        ("CJK", "中文字符测试，流式输出的打字机。", 3.0),
        ("Latin", "The quick brown fox jumps over it. ", 2.0),
        ("Devanagari", "हिन्दी भाषा ", 6.0),
        ("emoji", "👨\u200d👩\u200d👧 🇫🇷 ok ", 8.0),
    ],
)
@pytest.mark.load
@pytest.mark.parametrize("piece", [4, 40, 10**6])
def test_the_backlog_costs_a_few_bytes_per_character(
    script: str, unit: str, bound: float, piece: int
) -> None:
    """A stream far faster than the pace (a model at 100 chars/s typed at 10) is held as
    text: 2 bytes per CJK character, not a string object per character (84 bytes)."""
    text = unit * (300_000 // len(unit))
    per_char = held_bytes_per_character(text, piece)
    print(f"{script}, pieces of {piece}: {per_char:.1f} bytes per character held")
    assert per_char < bound


def test_a_long_backlog_of_any_script_is_taken_whole_in_steps_and_in_order() -> None:
    """Pieces of mixed scripts and tricky clusters, across many chunks of the backlog,
    come out as the same text, cut only between clusters, `step` clusters a take."""
    rng = random.Random(7)
    alphabet = [*TRICKY, *"漢字かなabc "]
    text = "".join(rng.choice(alphabet) for _ in range(30_000))
    ok = boundaries(text)
    tw = Typewriter(3000.0, 7)
    pos = 0
    while pos < len(text):
        size = rng.choice([1, 2, 5, 40, 4096, 9000])
        tw.push(text[pos : pos + size], 0.0)
        pos += size
    tw.close(0.0)
    shown = ""
    for _, revealed in drain(tw, 0.0):
        assert len(clusters(revealed)) % 7 == 0 or len(shown + revealed) == len(text)
        shown += revealed
        assert len(shown) in ok
    assert shown == text


def test_a_take_that_waits_for_the_loops_tick_to_end_is_not_asked_for_ever() -> None:
    """A typewriter whose deadline is due but whose take gives nothing until the loop has
    run its other callbacks (a race's lanes share one clock per loop tick, `Lockstep`):
    the typing loop yields to the loop between takes. Before, it asked again in the same
    tick for ever (a race at equal speed froze the kernel's loop under load, and Stop with
    it)."""

    class TickBound:
        speed, step, finished, pending = 10.0, 1, False, 0

        def __init__(self) -> None:
            self.takes = 0
            self.tick_ended = False

        def push(self, text: str, now: float) -> None:
            pass

        def close(self, now: float) -> None:
            pass

        def next_deadline(self) -> float:
            return 0.0  # always due

        def take(self, now: float) -> str:
            self.takes += 1
            assert self.takes < 10_000, "asked again and again without yielding to the loop"
            if not self.tick_ended:
                asyncio.get_running_loop().call_soon(setattr, self, "tick_ended", True)
                return ""
            self.finished = True
            return "text"

    async def events() -> AsyncIterator[Delta]:
        return
        yield  # an async generator that ends at once

    async def run() -> tuple[int, list[str]]:
        typewriter, shown = TickBound(), []
        typing = asyncio.ensure_future(type_out(events(), typewriter, shown.append))  # type: ignore[arg-type]
        await asyncio.wait([typing], timeout=10)
        assert typing.done(), "still typing after 10 s"
        typing.result()  # (raises what the typing loop raised)
        return typewriter.takes, shown

    takes, shown = asyncio.run(run())
    assert shown == ["text"] and takes <= 3, takes
