"""Typewriter pacing with the REAL clock: is the reveal rate the configured speed?

A simulated network pushes a long mixed text (Chinese, emoji, ASCII) in token-sized
chunks faster than the typewriter reveals it, while a consumer sleeps until
`next_deadline()` and takes, as streamchat._pacing does. Sleeping is allowed here
(not in tests): the point is to see what the OS scheduler's late wake-ups do to the
rate. The typewriter is deadline-based, so lateness must not accumulate.

Usage: .venv/bin/python benchmarks/bench_pacing.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

import regex

from streamchat.typewriter import Typewriter

TARGET_ERROR = 0.02  # the rate must be within 2 % of the speed
SUPPLY_FACTOR = 1.5  # the network delivers this many times faster than the speed
LEAD = 0.25  # seconds of text already received when the typewriter starts
RUNS = [(30.0, 1), (120.0, 1), (500.0, 1), (2000.0, 1), (2000.0, 5)]
WORDS = [
    "流式",
    "输出",
    "的",
    "模型",
    "回答",
    "，",
    "。",
    "hello",
    " world",
    " streaming",
    " tokens",
    " 👩\u200d💻",
    " 🇯🇵",
    " 👍🏽",
    " café",
    "\n",
]


@dataclass(frozen=True, slots=True)
class Result:
    speed: float
    step: int
    seconds: float
    clusters: int
    rate: float
    wakes_per_second: float
    max_wakes_in_a_second: int
    mean_late_ms: float

    @property
    def error(self) -> float:
        return abs(self.rate - self.speed) / self.speed


def token_chunks(n_clusters: int, seed: int = 7) -> list[str]:
    """Token-sized pieces; roughly n_clusters grapheme clusters in all."""
    rng = random.Random(seed)
    chunks: list[str] = []
    total = 0
    while total < n_clusters:
        chunk = rng.choice(WORDS)
        chunks.append(chunk)
        total += len(regex.findall(r"\X", chunk))
    return chunks


def run(speed: float, step: int, seconds: float) -> Result:
    chunks = token_chunks(int(speed * seconds * SUPPLY_FACTOR) + 50)
    arrivals = _arrival_times(chunks, speed)
    tw = Typewriter(speed, step)
    start = time.monotonic()
    reveal_times: list[float] = []
    revealed: list[str] = []
    lateness: list[float] = []
    pushed = 0
    while True:
        now = time.monotonic() - start
        while pushed < len(chunks) and arrivals[pushed] <= now:
            tw.push(chunks[pushed], now)
            pushed += 1
        text = tw.take(now)
        if text:
            reveal_times.append(now)
            revealed.append(text)
        if now >= seconds:
            break
        deadline = tw.next_deadline()
        arrival = arrivals[pushed] if pushed < len(chunks) else seconds
        wake = min(arrival, seconds, deadline if deadline is not None else seconds)
        woke = _sleep_until(start + wake) - start
        if deadline is not None and deadline == wake and deadline > now:
            lateness.append(woke - wake)
    shown = "".join(revealed)
    assert "".join(chunks).startswith(shown), "revealed text is not a prefix of the input"
    counts = [len(regex.findall(r"\X", text)) for text in revealed]
    span = reveal_times[-1] - reveal_times[0]
    per_second = [sum(1 for t in reveal_times if s <= t < s + 1) for s in range(int(seconds))]
    return Result(
        speed=speed,
        step=step,
        seconds=seconds,
        clusters=sum(counts),
        rate=(sum(counts) - counts[0]) / span,
        wakes_per_second=len(reveal_times) / seconds,
        max_wakes_in_a_second=max(per_second),
        mean_late_ms=1000 * sum(lateness) / max(1, len(lateness)),
    )


def _arrival_times(chunks: list[str], speed: float) -> list[float]:
    """When each chunk arrives: a lead of LEAD seconds of text, then SUPPLY_FACTOR x speed.

    Counted in clusters, so the supply stays ahead of the typewriter everywhere, not
    only on average: this measures pacing, not starvation.
    """
    times, before = [], 0
    for chunk in chunks:
        times.append(max(0.0, (before - LEAD * speed) / (SUPPLY_FACTOR * speed)))
        before += len(regex.findall(r"\X", chunk))
    return times


def _sleep_until(when: float) -> float:
    """Sleep until the monotonic time `when`; return the monotonic time actually woken."""
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return time.monotonic()


def segmentation_cost(n_clusters: int) -> float:
    """Microseconds per cluster to push a long text in token-sized chunks (no pacing)."""
    chunks = token_chunks(n_clusters, seed=11)
    tw = Typewriter(0.0)
    began = time.perf_counter()
    for chunk in chunks:
        tw.push(chunk, 0.0)
    return 1e6 * (time.perf_counter() - began) / n_clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per speed instead of 10 s")
    seconds = 2.0 if parser.parse_args().quick else 10.0
    header = "speed  step  secs  clusters     rate  error   wakes/s  max/1s  late ms  ok"
    print(header)
    print("-" * len(header))
    for speed, step in RUNS:
        r = run(speed, step, seconds)
        ok = r.error <= TARGET_ERROR and r.max_wakes_in_a_second <= 61
        print(
            f"{r.speed:5.0f}  {r.step:4d}  {r.seconds:4.0f}  {r.clusters:8d}  {r.rate:7.1f}"
            f"  {100 * r.error:4.2f}%  {r.wakes_per_second:8.1f}  {r.max_wakes_in_a_second:6d}"
            f"  {r.mean_late_ms:7.2f}  {'yes' if ok else 'NO'}"
        )
    small, large = segmentation_cost(100_000), segmentation_cost(1_000_000)
    print(f"\npush cost: {small:.2f} us/cluster for 100k clusters, {large:.2f} for 1M (linear)")


if __name__ == "__main__":
    main()
