"""cmark-gfm's pathological inputs, streamed in 20-character appends at their full sizes.

The inputs are those of cmark-gfm's test/pathological_tests.py (nested emphasis, bracket
and backtick runs, unclosed links, deep quotes and lists, the tables case), at its sizes,
built here from their description; "reference collisions" (a collision of cmark's own hash
table) is replaced by a document of 50,000 reference definitions and uses. Most are 100 KB
to 1.2 MB; "backticks" (a run of 1 to 4,999 backticks after each "e") is 12.5 MB there too.

Targets (issue 19): each streams completely within 120 s (of CPU: a loaded machine
stretches wall time), no append over 50 ms of CPU, p99 under 5 ms, and `render_markdown`
of each under 2 s.

Run: .venv/bin/python benchmarks/bench_pathological.py [--scale 0.1] [--only NAME]
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable

from streamchat.render import MarkdownStream, render_markdown

DELTA = 20
LIMIT = 120.0  # seconds of CPU to stream one input (the target)
# The end settles the open block whole, once: held to the loop thread's stall bound
# (~0.1 s), not to an append's.
FINISH_LIMIT = 0.1
DEADLINE = 300.0  # seconds of wall time after which a run stops (a loaded machine is slower)


def _nested_lists(count: int) -> str:
    return "".join("  " * level + "* a\n" for level in range(count))


def _backticks(count: int) -> str:
    return "".join("e" + "`" * run for run in range(1, count))


def _references(count: int) -> str:
    return "".join(f"[x{n}]: /url\n\n[x0]\n\n" for n in range(count))


# name: (builder of the input at a scale, its full-size parameter)
INPUTS: dict[str, tuple[Callable[[int], str], int]] = {
    "nested strong emph": (lambda n: "*a **a " * n + "b" + " a** a*" * n, 65_000),
    "many emph closers with no openers": (lambda n: "a_ " * n, 65_000),
    "many emph openers with no closers": (lambda n: "_a " * n, 65_000),
    "many link closers with no openers": (lambda n: "a]" * n, 65_000),
    "many link openers with no closers": (lambda n: "[a" * n, 65_000),
    "mismatched openers and closers": (lambda n: "*a_ " * n, 50_000),
    "openers and closers multiple of 3": (lambda n: "a**b" + "c* " * n, 50_000),
    "link openers and emph closers": (lambda n: "[ a_" * n, 50_000),
    "pattern [ (]( repeated": (lambda n: "[ (](" * n, 80_000),
    "pattern ![[]() repeated": (lambda n: "![[]()" * n, 160_000),
    "hard link/emph case": (lambda n: "**x [a*b**c*](d)" * n, 1),
    "nested brackets": (lambda n: "[" * n + "a" + "]" * n, 50_000),
    "nested block quotes": (lambda n: "> " * n + "a", 50_000),
    "deeply nested lists": (_nested_lists, 1_000),
    "U+0000 in input": (lambda n: "abc\u0000de\u0000" * n, 1),
    "backticks": (_backticks, 5_000),
    "unclosed links A": (lambda n: "[a](<b" * n, 30_000),
    "unclosed links B": (lambda n: "[a](b" * n, 30_000),
    "unclosed <!--": (lambda n: "</" + "<!--" * n, 300_000),
    "tables": (lambda n: "aaa\rbbb\n-\v\n" * n, 30_000),
    "many references": (_references, 50_000),
}


def build(name: str, scale: float = 1.0) -> str:
    make, full = INPUTS[name]
    return make(max(1, int(full * scale)))


def stream(text: str, deadline: float = DEADLINE) -> tuple[list[float], float, float, bool]:
    """CPU seconds per append and of `finish()`, wall seconds in all, and whether it
    finished in time. `finish()` is timed apart: it settles the whole open block once,
    so on one 12.5 MB line it costs what a few passes over that line cost."""
    gc.collect()
    gc.freeze()
    try:
        markdown, times = MarkdownStream(), []
        began = time.perf_counter()
        for start in range(0, len(text), DELTA):
            cpu = time.thread_time()
            markdown.append(text[start : start + DELTA])
            times.append(time.thread_time() - cpu)
            if time.perf_counter() - began > deadline:
                return times, math.nan, time.perf_counter() - began, False
        cpu = time.thread_time()
        markdown.finish()
        finish = time.thread_time() - cpu
        return times, finish, time.perf_counter() - began, True
    finally:
        gc.unfreeze()


def p99(times: list[float]) -> float:
    return sorted(times)[int(0.99 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="input size (1: full)")
    parser.add_argument("--only", help="one input by name")
    options = parser.parse_args()
    names = [options.only] if options.only else list(INPUTS)
    print(
        f"{'input':<36}{'KB':>7}{'whole s':>9}{'cpu s':>8}{'wall s':>8}{'appends':>9}"
        f"{'p99 ms':>8}{'max ms':>8}{'finish ms':>10}  verdict"
    )
    for name in names:
        text = build(name, options.scale)
        cpu = time.thread_time()
        render_markdown(text)
        whole = time.thread_time() - cpu
        times, finish, wall, done = stream(text)
        cpu = sum(times) + (finish if done else 0)
        ok = done and cpu < LIMIT and whole < 2 and max(times) < 0.05 and p99(times) < 0.005
        ok = ok and finish < FINISH_LIMIT
        print(
            f"{name:<36}{len(text) / 1000:>7.0f}{whole:>9.2f}{cpu:>8.1f}{wall:>8.1f}{len(times):>9}"
            f"{p99(times) * 1000:>8.2f}{max(times) * 1000:>8.1f}{finish * 1000:>10.1f}  "
            + ("ok" if ok else "MISSED" + ("" if done else f" (stopped at {DEADLINE:.0f} s)")),
            flush=True,
        )


if __name__ == "__main__":
    main()
