"""The terminal renderer without a terminal: neutralizing, block splitting, frames, the summary.

What a real terminal shows is checked in test_terminal_tty.py (tmux).
"""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from streamchat import _terminal
from streamchat._terminal import (
    LiveDisplay,
    Stats,
    _Blocks,
    _MarkdownLines,
    neutralize,
    render_lines,
)
from streamchat.deltas import Done, ReasoningDelta, TextDelta, Usage
from streamchat.render import MarkdownStream, parser
from streamchat.render._engine import top_level_blocks
from streamchat.server import answer_for

# Every escape sequence LiveDisplay itself may write: SGR styles, cursor up, erase line,
# autowrap off/on, cursor hide/show. Anything else reaching the terminal is a bug.
_OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\d+A|\x1b\[2K|\x1b\[\?7[lh]|\x1b\[\?25[lh]|\r")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

EDGE_CASES = """\
# Title

Text with a [link](https://example.com/a "t") and `code` and ~~gone~~.

---

After the rule.

> quoted
> twice

> another quote

- a
- b

  continued item

1. one
2. two

<div>html block</div>

| x | y |
|---|---|
| 1 | 2 |

    indented code

```js
let a = 1;

let b = 2;
```
Closing paragraph ![image](https://example.com/i.png)
"""


def console(width: int = 80, height: int = 24) -> Console:
    return Console(
        file=io.StringIO(),
        width=width,
        height=height,
        force_terminal=True,
        color_system="truecolor",
        highlight=False,
    )


def one_shot(markdown: str, width: int) -> list[str]:
    """The whole answer rendered at once, with its styles, from the one engine's tokens."""
    return render_lines(console(width), _terminal._rich_markdown(markdown))


def blockwise(markdown: str, width: int, pieces: list[str]) -> list[str]:
    view = console(width)
    blocks, render = _Blocks(), _MarkdownLines(view)
    lines = []
    for piece in pieces:
        for block in blocks.append(piece):
            lines += render.block(block)
    return lines + render.block(blocks.open)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]52;c;aGk=\x07", "␛]52;c;aGk=␇"),  # clipboard write
        ("\x1b]8;;https://x/\x1b\\y\x1b]8;;\x1b\\", "␛]8;;https://x/␛\\y␛]8;;␛\\"),  # hyperlink
        ("shown\r\x1b[2Kerased", "shown␍␛[2Kerased"),
        ("\x1b]0;title\x07", "␛]0;title␇"),
        ("\x9b31m\x9d0;t\x9c", "<U+009B>31m<U+009D>0;t<U+009C>"),  # C1 CSI, OSC, ST
        ("a\x00b\x08c\x7fd", "a␀b␈c␡d"),
        ("line\r\nnext\tcol", "line\nnext\tcol"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("中文 👨‍👩‍👧‍👦 é\u0301 ⏱️", "中文 👨‍👩‍👧‍👦 é\u0301 ⏱️"),
    ],
)
def test_neutralize_shows_controls(raw: str, shown: str) -> None:
    assert neutralize(raw) == shown


@given(st.text())
def test_neutralize_leaves_no_control_and_keeps_text(text: str) -> None:
    out = neutralize(text)
    assert not _CONTROL_OR_SURROGATE.search(out)
    if not _CONTROL_OR_SURROGATE.search(text.replace("\r\n", "")) and "\r" not in text:
        assert out == text


_CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@pytest.mark.parametrize("source", [answer_for("q"), EDGE_CASES], ids=["demo", "edge-cases"])
@pytest.mark.parametrize("width", [30, 80, 131])
def test_blocks_printed_one_by_one_add_up_to_a_one_shot_render(source: str, width: int) -> None:
    assert blockwise(source, width, [source]) == one_shot(source, width)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_block_split_does_not_depend_on_chunking(sizes: list[int]) -> None:
    source = EDGE_CASES + answer_for("q")
    pieces, start = [], 0
    for size in sizes * (len(source) // sum(sizes) + 1):
        pieces.append(source[start : start + size])
        start += size
    pieces.append(source[start:])
    blocks = _Blocks()
    finished = [block for piece in pieces for block in blocks.append(piece)]
    assert "".join(finished) + blocks.open == source
    assert blockwise(source, 70, pieces) == one_shot(source, 70)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def written(display_console: Console) -> str:
    file = display_console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def test_display_writes_only_its_own_sequences() -> None:
    view = console(60, 12)
    display = LiveDisplay(view, clock=FakeClock())
    display.paint()
    hostile = "\x1b]52;c;aGk=\x07 \x1b]8;;https://x/\x1b\\y \r\x1b[2K \x1b]0;t\x07 \x9b1m\x07\n"
    display.reasoning(neutralize(hostile))
    display.answer(neutralize("# Head\n\n" + hostile + "\n```\n" + hostile + "```\n"))
    display.note(neutralize("[tool call: \x1b]0;t\x07]"))
    display.paint(force=True)
    display.close()
    out = _OWN_SEQUENCES.sub("", written(view))
    assert "\x1b" not in out
    assert not _CONTROLS.search(out.replace("\n", ""))
    assert "␛]52;c;aGk=␇" in out


def test_live_region_stays_below_the_top_of_the_screen() -> None:
    """A code block taller than the screen is shown by its last rows while it is open."""
    view = console(50, 10)
    display = LiveDisplay(view, clock=FakeClock())
    display.answer("```\n" + "".join(f"row {n}\n" for n in range(40)))
    display.paint(force=True)
    frame = written(view)
    live = frame[frame.rindex("\x1b[?7l") + 5 : frame.rindex("\x1b[?7h")]
    assert live.count("\n") == 9  # height - 1: the cursor row below it stays on screen
    assert "row 39" in live and "row 30" not in live
    display.answer("```\n\nAfter.\n")
    display.close()
    final = written(view)[len(frame) :]
    assert all(f"row {n} " in final or f"row {n}\x1b" in final for n in range(40))


def test_display_redraws_at_most_once_a_frame_and_only_on_change() -> None:
    clock = FakeClock()
    view = console(60, 12)
    display = LiveDisplay(view, clock=clock, fps=10)
    display.answer("First words")
    display.paint()
    after_first = len(written(view))
    display.answer(" and more")
    display.paint()  # within the same frame: held back
    assert len(written(view)) == after_first
    clock.now += 0.1
    display.paint()
    after_second = len(written(view))
    assert after_second > after_first and "and more" in written(view)[after_first:]
    clock.now += 1
    display.paint()  # nothing changed
    assert len(written(view)) == after_second


def test_status_line_until_the_first_token() -> None:
    clock = FakeClock()
    view = console(60, 12)
    display = LiveDisplay(view, clock=clock)
    clock.now += 2.5
    display.paint()
    assert "waiting for the first token · 2.5 s" in written(view)
    display.answer("Hi")
    clock.now += 1
    display.paint()
    display.close()
    tail = written(view).rsplit("2.5 s", 1)[1]
    assert "waiting" not in tail and "Hi" in tail


def test_summary_line() -> None:
    stats = Stats(start=10.0)
    stats.observe(ReasoningDelta("hm"), 10.5)
    stats.observe(TextDelta("x" * 300), 11.0)
    stats.observe(TextDelta("y" * 200), 12.5)
    stats.observe(Usage(output_tokens=120), 12.5)
    stats.observe(Done("stop"), 12.5)
    assert stats.summary() == "ttft 0.50 s · 500 chars · 250 chars/s · 120 tokens · 2.5 s"
    assert Stats(start=0.0).summary() == "no token received · tokens not reported"


def plain_text(output: str) -> str:
    return _OWN_SEQUENCES.sub("", output)


def test_reasoning_after_the_answer_started_keeps_the_order() -> None:
    view = console(60, 12)
    display = LiveDisplay(view, clock=FakeClock())
    display.reasoning("plan\n")
    display.answer("First part")
    display.paint(force=True)
    display.reasoning("second thoughts")
    display.answer(" and the rest.")
    display.close()
    text = plain_text(written(view))
    final = [line.rstrip() for line in text.split("\n")]
    order = ["Reasoning", "plan", "First part", "Reasoning", "second thoughts", "and the rest."]
    at = 0
    for word in order:  # each after the one before
        at = next(i for i in range(at, len(final)) if final[i].endswith(word)) + 1


_MARKDOWNISH = st.text(
    alphabet=st.sampled_from([*"ab 1.-*_`#>|:[]()!~\\\n\t<>/&", "中", "👍", "\u0301", "\x1b"]),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(_MARKDOWNISH, st.lists(st.integers(1, 20), min_size=1, max_size=10), st.integers(8, 90))
def test_any_text_in_any_pieces_draws_without_error(
    text: str, sizes: list[int], width: int
) -> None:
    clock = FakeClock()
    view = console(width, 8)
    display = LiveDisplay(view, clock=clock)
    start = 0
    for size in sizes * 30:
        if start >= len(text):
            break
        display.answer(neutralize(text[start : start + size]))
        clock.now += 1
        display.paint()
        start += size
    display.answer(neutralize(text[start:]))
    display.close()
    assert "\x1b" not in plain_text(written(view))


SPLIT = (
    "> quoted\n---\n\n#5 bolt and #hashtag\n\n1) one\n2) two\n\n- a\n\n- b\n\ntext\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\n```py\nx = 1\n```\nafter\n\n$$\na\n- b\n$$\n\nend\n"
)


def test_the_terminal_splits_blocks_as_the_widget_and_the_engine_do() -> None:
    blocks, sources = _Blocks(), []
    for start in range(0, len(SPLIT), 7):
        sources += blocks.append(SPLIT[start : start + 7])
    sources.append(blocks.open)
    assert "".join(sources) == SPLIT
    starts, line = [], 0
    for source in sources:
        starts.append(line)
        line += source.count("\n")
        assert len(top_level_blocks(parser().parse(source))) == 1, source
    assert starts == [start for start, _ in top_level_blocks(parser().parse(SPLIT))]
    stream = MarkdownStream()
    frozen = [stream.append(SPLIT[start : start + 7]) for start in range(0, len(SPLIT), 7)]
    finished = sum(1 for patches in frozen for patch in patches if patch.op in ("append", "commit"))
    assert finished == len(sources) - 1  # the widget froze the same blocks, the last one open


def test_gfm_inlines_and_alignment_reach_the_terminal_as_rich_draws_them() -> None:
    """The engine's GFM tokens in rich's names: struck text is kept (an unknown <del> lost
    it and added a blank line), an autolink is printed once, a centred column is centred."""
    console = Console(width=40, color_system=None)
    source = (
        "Why?\n- ~~Waiting~~ is past\n\n| a | centred |\n|---|:-:|\n| x | y |\n\n"
        "See https://x.org/a and [docs](https://y.org/d).\n"
    )
    lines = _terminal.render_lines(console, _terminal._rich_markdown(source))
    assert lines[:3] == ["Why?", "", " • Waiting is past"]
    assert " x     y" in lines  # left-aligned it would be " x  y"
    assert lines[-2:] == ["See https://x.org/a and docs", "(https://y.org/d)."]
