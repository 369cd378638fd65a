"""Degenerate model output: bounded time per update and in total, never an exception.

Models stuck in a loop repeat one character for thousands of tokens; link parsing can be
quadratic on unmatched brackets and nested lists and quotes multiply the work per line.
Every case here once stalled the kernel for seconds to minutes or raised RecursionError.
Times are CPU time of this thread (`time.thread_time`), so other work on a loaded machine
does not count against them; the bounds still fail on the
quadratic behaviour they guard against (seconds per update).
"""

from __future__ import annotations

import gc
import importlib.util
import re
import time
from pathlib import Path
from typing import Any

import pytest

from streamchat.render import MarkdownStream, render_markdown
from streamchat.render._engine import MAX_NESTING
from streamchat.render._highlight import CodeBlock
from streamchat.render._sanitize import sanitize

RUNS = {
    "brackets": "[" * 20_000,
    "images": "![" * 10_000,
    "angle brackets": "<" * 20_000,
    "stars": "*" * 20_000,
    "backticks": "`" * 20_000,
    "pipes": "|" * 20_000,
    "quote markers": ">" * 20_000,
    "underscores": "_" * 20_000,
    "open links": "[a](" * 5_000,
    "unclosed emphasis": "*a " * 7_000,
    "code span openers": "`a " * 7_000,
    "backslashes": "\\" * 20_000,
    "bracket lines": "[\n" * 10_000,
    "pipe lines": "|\n" * 10_000,
    "quote lines": "> \n" * 7_000,
    "50k brackets": "[" * 50_000,
    "dollars": "$" * 20_000,
    "math openers": "\\(" * 10_000,
    # A long line being typed in a list item or a table row was rendered again whole at
    # each update (108 ms an append at 40 KB).
    "angle brackets in a list item": "- item\n- " + "<" * 20_000,
    "angle brackets in a table row": "| a |\n|---|\n| " + "<" * 20_000,
}
NESTED = {
    "list markers on one line": "- " * 1_000 + "x",
    "quote markers on one line": "> " * 1_000 + "x",
    "list of 1000 levels": "".join("  " * level + "- x\n" for level in range(1_000)),
    "quotes of 1000 levels": "".join("> " * level + "x\n" for level in range(1_000)),
    "mixed quotes and lists": "> - " * 1_000 + "x",
}
PER_UPDATE = 0.025  # seconds of CPU: the target is a p99 under 20 ms
WORST_UPDATE = 0.25  # a block falling back to escaped text renders once in full
TOTAL = 10.0


def stream_timed(text: str, size: int) -> tuple[MarkdownStream, list[float]]:
    """CPU per append. The objects the test process made before are frozen out of the
    garbage collector: late in a full run a collection of that heap (~0.3 s) would land
    on whichever append triggered it and measure pytest, not the renderer."""
    gc.collect()
    gc.freeze()
    try:
        stream, times = MarkdownStream(), []
        for start in range(0, len(text), size):
            began = time.thread_time()
            stream.append(text[start : start + size])
            times.append(time.thread_time() - began)
        began = time.thread_time()
        stream.finish()
        times.append(time.thread_time() - began)
    finally:
        gc.unfreeze()
    return stream, times


def p99(times: list[float]) -> float:
    return sorted(times)[int(0.99 * (len(times) - 1))]


@pytest.mark.parametrize("text", RUNS.values(), ids=RUNS.keys())
def test_runs_render_in_bounded_time_per_update_and_in_total(text: str) -> None:
    began = time.thread_time()
    whole = render_markdown(text)
    assert time.thread_time() - began < 2.0
    stream, times = stream_timed(text, 5)
    assert p99(times) < PER_UPDATE, f"p99 {p99(times) * 1000:.1f} ms"
    assert max(times) < WORST_UPDATE, f"worst {max(times) * 1000:.1f} ms"
    assert sum(times) < TOTAL
    assert stream.html == whole


@pytest.mark.parametrize("text", NESTED.values(), ids=NESTED.keys())
def test_deep_nesting_degrades_to_text_without_recursion_error(text: str) -> None:
    began = time.thread_time()
    whole = render_markdown(text)
    assert time.thread_time() - began < 3.0
    assert "streamchat-raw" in whole  # shown as escaped text, not 1,000 nested elements
    assert whole.count("<ul>") + whole.count("<blockquote>") <= MAX_NESTING + 1
    # 5-character updates for the one-line cases; the 1000-level ones are ~1 MB.
    stream, times = stream_timed(text, 5 if len(text) < 10_000 else 500)
    assert p99(times) < PER_UPDATE, f"p99 {p99(times) * 1000:.1f} ms"
    assert max(times) < WORST_UPDATE, f"worst {max(times) * 1000:.1f} ms"
    assert stream.html == whole


def test_escaped_fallback_is_safe_and_readable() -> None:
    text = "[" * 3_000 + "<script>alert(1)</script> & <b>bold</b>\nsecond line"
    html = render_markdown(text)
    assert html.startswith('<p class="streamchat-raw">')
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "\nsecond line</p>" in html  # line breaks kept (white-space: pre-wrap)


def test_only_the_costly_block_falls_back() -> None:
    text = "# Title\n\nSome **bold** text.\n\n" + "[" * 5_000 + "\n\nAfter it, *emphasis*."
    html = render_markdown(text)
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>emphasis</em>" in html
    assert html.count("streamchat-raw") == 1


def test_ordinary_answers_never_fall_back() -> None:
    paragraph = " ".join(
        f"Sentence {n} has **bold**, `code` and a [link](https://x.org)." for n in range(400)
    )
    items = "\n".join(
        f"{n}. **Item {n}** with `code` and [a link](https://x.org/{n})" for n in range(1, 300)
    )
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| {n} | `v{n}` |" for n in range(2_000))
    code = (
        "```python\n" + "\n".join(f"x_{n} = [{n}] * {n}  # <{n}>" for n in range(3_000)) + "\n```"
    )
    for text in (paragraph, items, table, code):
        assert "streamchat-raw" not in render_markdown(text)


@pytest.mark.parametrize(
    "line",
    [
        'def f(x: int) -> "str": return f"<{x}>" & y  # </span><script>',
        "SELECT * FROM t WHERE a < 3 AND b = '\"' -- comment",
        '<div onclick="alert(1)">&amp;</div>',
        "\x00\x1b[31m tab\tend",
    ],
)
@pytest.mark.parametrize("language", ["python", "sql", "html", "text", "unknown-lang"])
def test_highlighted_code_lines_are_what_the_sanitizer_would_leave(
    language: str, line: str
) -> None:
    """Code lines skip nh3 for speed: they must be exactly what nh3 would return."""
    block = CodeBlock(language)
    for text in (line, line[:7], ""):
        html_line = block._highlight(text, keep=False)
        assert sanitize(html_line, allow_images=False) == html_line
        assert not re.search(r"<(?!/?span[ >])", html_line)


def _append_cost(text: str, typed: str, size: int = 5) -> float:
    """The least CPU seconds of a window of appends of `typed`, after `text`, in three."""
    stream = MarkdownStream()
    stream.append(text)
    windows = []
    for _ in range(3):
        began = time.thread_time()
        for start in range(0, len(typed), size):
            stream.append(typed[start : start + size])
        windows.append(time.thread_time() - began)
    return min(windows)


def test_a_long_code_line_costs_no_more_per_append_than_a_short_one() -> None:
    """Issue 19: a code line being typed costs the size of its new text. A 100 KB line of
    minified JSON in a fence was copied and escaped whole at every append (0.04 ms an
    append at 100 KB against 0.01 ms at 1 KB; 0.2 ms at 400 KB)."""
    item = '{"id": 1, "name": "<b>", "ok": true}, '
    typed = item * 40
    short = _append_cost("```json\n[" + item * 30, typed)
    long = _append_cost("```json\n[" + item * 10_000, typed)
    assert long < 3 * short, f"{long * 1000:.1f} ms against {short * 1000:.1f} ms"


def _pathological() -> Any:
    """benchmarks/bench_pathological.py: cmark-gfm's pathological inputs."""
    path = Path(__file__).parent.parent / "benchmarks" / "bench_pathological.py"
    spec = importlib.util.spec_from_file_location("bench_pathological", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PATHOLOGICAL = _pathological()


@pytest.mark.parametrize("name", list(PATHOLOGICAL.INPUTS))
def test_cmark_pathological_inputs_at_a_twentieth_of_their_size(name: str) -> None:
    """Streamed in 20-character appends (the full sizes are in bench_pathological)."""
    text = PATHOLOGICAL.build(name, 0.05)
    began = time.thread_time()
    whole = render_markdown(text)
    assert time.thread_time() - began < 2.0
    stream, times = stream_timed(text, PATHOLOGICAL.DELTA)
    assert p99(times[:-1]) < PER_UPDATE, f"p99 {p99(times) * 1000:.1f} ms"
    assert max(times[:-1]) < WORST_UPDATE, f"worst {max(times) * 1000:.1f} ms"
    assert stream.html == whole


def test_a_line_of_megabytes_streams_in_time_proportional_to_its_size() -> None:
    """cmark-gfm's "backticks" input is one line (12.5 MB at full size). Shown as escaped
    text, the live line grows by its new text alone: it was copied and compared whole at
    every append (188 s of CPU for its first 7.7 MB, still growing as the square of the
    size), and finish() searched it whole for a place to cut the paragraph."""
    text = PATHOLOGICAL.build("backticks", 0.57)  # 4 MB
    stream, times = stream_timed(text, PATHOLOGICAL.DELTA)
    assert sum(times) < 10.0, f"{sum(times):.1f} s of CPU for {len(times)} appends"
    assert times[-1] < 0.1, f"finish() took {times[-1] * 1000:.0f} ms"
    assert stream.html == render_markdown(text)


def test_many_reference_definitions_render_whole_within_two_seconds() -> None:
    """cmark-gfm's "many references" at full size (50,000 definitions and uses, 1 MB):
    6.9 s of CPU before simple definitions skipped the engine's own rule and a block
    repeated renders as it did (markdown-it alone takes 2.4 s). The target, 2 s, is
    bench_pathological's (1.25 s there); here, after the file's other tests and beside
    a loaded machine's other work, the same render took up to 2.0 s of CPU, so the test
    holds it to twice the target, still well under what it was."""
    text = PATHOLOGICAL.build("many references")
    gc.collect()  # the earlier tests' garbage is not this render's to collect
    began = time.thread_time()
    html = render_markdown(text)
    spent = time.thread_time() - began
    assert spent < 4.0, f"{spent:.2f} s"
    assert html.count('<a href="/url"') == 50_000


def test_a_stream_of_many_definitions_leaves_the_collector_little_to_walk() -> None:
    """A full collection walks every tracked object: one a frozen block's record, a
    definition's, a list of lines, a set of labels each made the 50,000-definition stream
    stall 95-111 ms an append. They are tuples and dicts of strings now, which the
    collector stops tracking."""
    text = PATHOLOGICAL.build("many references", 0.05)  # 2,500 definitions and uses
    gc.collect()
    gc.freeze()
    try:
        stream = MarkdownStream()
        for start in range(0, len(text), 200):
            stream.append(text[start : start + 200])
        gc.collect()
        tracked = len(gc.get_objects())
    finally:
        gc.unfreeze()
    assert tracked < 500, f"{tracked} objects tracked for {text.count(']:')} definitions"
    stream.finish()
    assert stream.html == render_markdown(text)
