"""Incremental vs full re-render of a 100 KB answer typed in 5-character deltas.

A typewriter at 120 chars/s ticks about 24 times a second with ~5 characters each, so every
update has ~40 ms. The question is whether the cost per update stays flat as the answer
grows: MarkdownStream should cost about the same at the end as at the start (target: within
2x), while a full re-render of the whole text grows with it.

The second table holds the answer to the harder question: the same within one block that
keeps growing (a paragraph, a fenced code block, a table, a list), whose open part is what
every update renders again. Cost per 5-character update (CPU of this thread) when the open
block already holds 1 KB to 100 KB: target flat within 2x.

The third table: CPU per 6-character update on the answers of bench_kernel_cost.py
(prose, a 260-line code block, a 200-row table), against another tree if given one.

Run: .venv/bin/python benchmarks/bench_render.py [--baseline path/to/other/src]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from streamchat.render import MarkdownStream, render_markdown

TARGET_CHARS = 100_000
DELTA = 5
EDGE = 0.05  # the first and last 5% of the updates
FULL_SAMPLES = 25  # full re-renders timed in each edge: doing all of them takes minutes

WORDS = [
    *("stream", "token", "buffer", "render", "latency", "request", "server", "client"),
    *("answer", "model", "chunk", "parse", "event", "socket", "retry", "timeout"),
    *("widget", "notebook", "markdown", "table", "column", "value", "update", "patch"),
]
CHINESE = "流式传输让用户更快地看到回答，每个片段到达后立即渲染，而不是等待整个响应完成。"


def _sentence(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(6, 14))
    if rng.random() < 0.5:
        words[rng.randrange(len(words))] = f"**{rng.choice(WORDS)}**"
    if rng.random() < 0.4:
        words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}()`"
    if rng.random() < 0.2:
        words.append(f"[docs](https://example.com/{rng.choice(WORDS)})")
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


def _section(rng: random.Random, number: int) -> str:
    kind = number % 6
    parts = [f"## Part {number}: {rng.choice(WORDS)}", _paragraph(rng)]
    if kind == 0:
        items = [f"- {_sentence(rng)}" for _ in range(rng.randint(3, 6))]
        items.insert(2, f"  - {_sentence(rng)}")
        parts.append("Key points:\n" + "\n".join(items))
    elif kind == 1:
        rows = [f"| `{rng.choice(WORDS)}` | {rng.randint(1, 999)} ms | {CHINESE[:8]} |"]
        rows *= rng.randint(3, 8)
        parts.append("| Name | Time | 说明 |\n|---|--:|---|\n" + "\n".join(rows))
    elif kind == 2:
        body = "\n".join(
            f"    result_{i} = await client.get(url, timeout={i})  # {rng.choice(WORDS)}"
            for i in range(rng.randint(5, 15))
        )
        parts.append(f"```python\nasync def fetch(client, url):\n{body}\n    return result_0\n```")
    elif kind == 3:
        parts.append(CHINESE * rng.randint(1, 3) + " 🚀")
    elif kind == 4:
        steps = [f"{i}. {_sentence(rng)}" for i in range(1, rng.randint(3, 6))]
        parts.append("Steps:\n" + "\n".join(steps))
    else:
        parts.append("> **Note:** " + _sentence(rng) + "\n> " + _sentence(rng))
    parts.append(_paragraph(rng))
    return "\n\n".join(parts)


def make_answer(chars: int = TARGET_CHARS, seed: int = 7) -> str:
    rng = random.Random(seed)
    sections: list[str] = []
    size = 0
    while size < chars:
        sections.append(_section(rng, len(sections)))
        size += len(sections[-1]) + 2
    return "\n\n".join(sections) + "\n"


@dataclass(frozen=True, slots=True)
class Update:
    end: int  # characters of the answer received after this update
    seconds: float
    patch_bytes: int


def run_incremental(answer: str) -> tuple[list[Update], float]:
    stream = MarkdownStream()
    updates = []
    for start in range(0, len(answer), DELTA):
        began = time.perf_counter()
        patches = stream.append(answer[start : start + DELTA])
        elapsed = time.perf_counter() - began
        size = sum(len(patch.html.encode()) for patch in patches)
        updates.append(Update(min(start + DELTA, len(answer)), elapsed, size))
    began = time.perf_counter()
    stream.finish()
    return updates, time.perf_counter() - began


def run_full(answer: str, ends: list[int]) -> list[Update]:
    updates = []
    for end in ends:
        began = time.perf_counter()
        html = render_markdown(answer[:end])
        updates.append(Update(end, time.perf_counter() - began, len(html.encode())))
    return updates


def _row(name: str, updates: list[Update]) -> str:
    times = sorted(update.seconds * 1000 for update in updates)
    p95 = times[int(0.95 * (len(times) - 1))]
    size = statistics.mean(update.patch_bytes for update in updates)
    return (
        f"{name:<26} {len(updates):>7} {statistics.median(times):>10.3f} {p95:>9.3f} "
        f"{statistics.mean(times):>9.3f} {size:>11.0f}"
    )


BLOCK_SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
MEASURED = 120  # updates timed at each size


# Each kind is made of units (sentences, lines, rows, items) joined by its separator.
def _sentences(count: int, rng: random.Random) -> list[str]:
    return [_sentence(rng) for _ in range(count)]


def _code_lines(count: int, rng: random.Random) -> list[str]:
    return [
        f"    result_{i} = await client.get(url, timeout={i})  # {rng.choice(WORDS)}"
        for i in range(count)
    ]


def _rows(count: int, rng: random.Random) -> list[str]:
    return [
        f"| `{rng.choice(WORDS)}` | {rng.randint(1, 999)} ms | {rng.choice(WORDS)} |"
        for _ in range(count)
    ]


def _items(count: int, rng: random.Random) -> list[str]:
    return [f"- {_sentence(rng)}" for _ in range(count)]


def _json_items(count: int, rng: random.Random) -> list[str]:
    return [
        f'{{"id": {rng.randint(1, 99_999)}, "name": "{rng.choice(WORDS)}", "ok": true}}, '
        for _ in range(count)
    ]


def _columns(count: int, rng: random.Random) -> list[str]:
    return [f"| {rng.choice(WORDS)[:4]}{n} " for n in range(count)]


# kind: (its opening, its units, their separator, characters per unit, roughly)
BLOCKS = {
    "paragraph": ("", _sentences, " ", 40),
    "code block": ("```python\n", _code_lines, "\n", 60),
    "table": ("| Name | Time | Note |\n|---|--:|---|\n", _rows, "\n", 35),
    "list": ("", _items, "\n", 60),
    # One line of minified JSON in a fence, and a table header of up to 10,000 columns:
    # a single line that keeps growing.
    "json line": ("```json\n[", _json_items, "", 45),
    "table header": ("", _columns, "", 10),
}


def growing_block(kind: str, size: int) -> tuple[str, str]:
    """A block of `kind` of about `size` characters, and the text then typed into it:
    the same at every size, so only the open block's size differs."""
    opening, units, separator, unit = BLOCKS[kind]
    block = opening + separator.join(units(size // unit, random.Random(size)))
    typed = separator + separator.join(units(DELTA * MEASURED // unit + 2, random.Random(0)))
    return block, typed[: DELTA * MEASURED]


def growing_block_costs() -> dict[str, list[float]]:
    """Per kind: the median and p95 CPU seconds per update at each block size, then
    finish() at the largest."""
    costs = {}
    for name in BLOCKS:
        row = []
        for size in BLOCK_SIZES:
            block, typed = growing_block(name, size)
            stream = MarkdownStream()
            stream.append(block)
            times = []
            for start in range(0, len(typed), DELTA):
                began = time.thread_time()
                stream.append(typed[start : start + DELTA])
                times.append(time.thread_time() - began)
            began = time.thread_time()
            stream.finish()
            finish = time.thread_time() - began
            times.sort()
            row += [statistics.median(times), times[int(0.95 * len(times))]]
        costs[name] = [*row, finish]
    return costs


def print_growing_block(costs: dict[str, list[float]], title: str) -> None:
    print(f"\nper 5-character update while one block grows, {title} (ms of CPU, median/p95):")
    print(
        f"{'open block':<13}"
        + "".join(f"{size // 1000:>10} KB" for size in BLOCK_SIZES)
        + f"{'ratio':>8}{'finish()':>10}"
    )
    for name, row in costs.items():
        medians = row[0:-1:2]
        cells = [f"{1000 * row[i]:.2f}/{1000 * row[i + 1]:.2f}" for i in range(0, len(row) - 1, 2)]
        ratio = max(medians) / max(min(medians), 1e-6)
        print(
            f"{name:<13}"
            + "".join(f"{cell:>13}" for cell in cells)
            + f"{ratio:>8.1f}{1000 * row[-1]:>8.1f}ms"
        )
    print("ratio: slowest median over fastest (target <= 2); finish() with the 100 KB block")


ANSWER_DELTA = 6  # characters per update: the widget renders ~33 times a second at 200 chars/s
ROUNDS = 9


def answer_costs() -> dict[str, list[float]]:
    """Per answer of bench_kernel_cost (prose, a 260-line code block, a 200-row table):
    its characters, its updates and the least mean CPU microseconds per update over
    ROUNDS streams (finish() included)."""
    from bench_kernel_cost import KINDS  # here: it imports the Jupyter stack

    costs = {}
    for name, make in KINDS.items():
        text = make()
        updates = range(0, len(text), ANSWER_DELTA)
        best = float("inf")
        for _ in range(ROUNDS):
            stream = MarkdownStream()
            began = time.thread_time()
            for start in updates:
                stream.append(text[start : start + ANSWER_DELTA])
            stream.finish()
            best = min(best, (time.thread_time() - began) / len(updates))
        costs[name] = [len(text), len(updates), best * 1e6]
    return costs


def print_answers(costs: dict[str, list[float]], baseline: dict[str, list[float]] | None) -> None:
    print(
        f"\nper {ANSWER_DELTA}-character update of bench_kernel_cost's answers "
        f"(us of CPU, best of {ROUNDS}, finish() included):"
    )
    print(
        f"{'answer':<8}{'chars':>7}{'updates':>9}{'this tree':>11}"
        + (f"{'baseline':>10}{'ratio':>7}" if baseline else "")
    )
    for name, (chars, updates, cost) in costs.items():
        line = f"{name:<8}{chars:>7.0f}{updates:>9.0f}{cost:>11.0f}"
        if baseline:
            line += f"{baseline[name][2]:>10.0f}{cost / baseline[name][2]:>7.2f}"
        print(line)


def baseline_costs(source: str, section: str) -> dict[str, list[float]]:
    """A section measured with the streamchat package found in `source` (a src folder,
    e.g. `git archive main src | tar -x -C /tmp/main`), in a child process."""
    command = [sys.executable, __file__, "--json", section]
    environment = {**os.environ, "PYTHONPATH": source}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def incremental_costs() -> list[float]:
    """The 100 KB answer typed in 5-character updates: median seconds per update in its
    first and last 5%, and the total."""
    updates, _ = run_incremental(make_answer())
    edge = max(1, int(len(updates) * EDGE))
    return [
        statistics.median(u.seconds for u in updates[:edge]),
        statistics.median(u.seconds for u in updates[-edge:]),
        sum(u.seconds for u in updates),
    ]


SECTIONS = {"blocks": growing_block_costs, "answers": answer_costs, "whole": incremental_costs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", help="a src folder holding another streamchat to compare")
    parser.add_argument("--json", choices=SECTIONS, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.json:
        print(json.dumps(SECTIONS[options.json]()))
        return
    whole_answer()
    if options.baseline:
        first, last, total = baseline_costs(options.baseline, "whole")
        print(
            f"baseline incremental: median {1000 * first:.3f} ms (first 5%), "
            f"{1000 * last:.3f} ms (last 5%), total {total:.2f} s"
        )
        print_growing_block(baseline_costs(options.baseline, "blocks"), "baseline")
    print_growing_block(growing_block_costs(), "this tree")
    baseline = baseline_costs(options.baseline, "answers") if options.baseline else None
    print_answers(answer_costs(), baseline)


def whole_answer() -> None:
    answer = make_answer()
    updates, finish_seconds = run_incremental(answer)
    edge = max(1, int(len(updates) * EDGE))
    start, end = updates[:edge], updates[-edge:]
    step = max(1, edge // FULL_SAMPLES)
    full_start = run_full(answer, [update.end for update in start[::step]])
    full_end = run_full(answer, [update.end for update in end[::step]])

    print(f"answer: {len(answer):,} chars, {len(updates):,} updates of {DELTA} chars")
    print(
        f"{'':<26} {'updates':>7} {'median ms':>10} {'p95 ms':>9} {'mean ms':>9} {'bytes/upd':>11}"
    )
    print(_row("incremental, first 5%", start))
    print(_row("incremental, last 5%", end))
    print(_row("full re-render, first 5%", full_start))
    print(_row("full re-render, last 5%", full_end))
    ratio = statistics.median(u.seconds for u in end) / statistics.median(u.seconds for u in start)
    total = sum(update.seconds for update in updates)
    print(f"incremental end/start median ratio: {ratio:.2f} (target <= 2)")
    print(
        f"incremental total: {total:.2f} s for the whole answer; finish(): {finish_seconds:.3f} s"
    )


if __name__ == "__main__":
    main()
