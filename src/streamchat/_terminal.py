"""Live Markdown in a terminal for `streamchat chat` and `demo`: append-only, never duplicated.

Why it is built this way: rich's `Live(Markdown(answer))` re-renders the whole answer on
every update and moves the cursor up over all of it, which fails once the answer is taller
than the screen (the cursor cannot go back into the scrollback, so lines are printed twice)
and costs more with every word. A terminal needs what the widget's `MarkdownStream` has:
which top-level blocks are finished. `render.BlockSplit` (the widget's own split, by the
one engine's line maps) decides that here too, and rich renders each block from the
tokens of that same engine (`render.parser`), so the terminal and the widget read an
answer alike. A finished block is rendered once with rich and
printed for good, so it scrolls into the scrollback like any output; only the open block
is redrawn in place, in a live region at the bottom that never reaches the top of the
screen. While the live region is drawn, autowrap is off, so each line takes exactly one
row even when the terminal and rich disagree on the width of an emoji, and the next redraw
erases exactly what was drawn.

Everything the model or the server says goes through `neutralize` first: no escape
sequence, bell or carriage return from them reaches the terminal, and what they were is
still visible. Links are printed as "text (target)", never as OSC 8 hyperlinks, so the
real target shows.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from markdown_it.token import Token
from rich.cells import cell_len
from rich.console import Console, ConsoleDimensions, RenderableType
from rich.control import Control, ControlType
from rich.markdown import Markdown, UnknownElement
from rich.spinner import Spinner
from rich.text import Text

from .deltas import Delta, Handlers, TextDelta, Usage

if TYPE_CHECKING:
    from .render import BlockSplit

__all__ = ["LiveDisplay", "Stats", "neutralize"]

# C0 controls except tab and newline, DEL, C1 controls, lone surrogates; CRLF is a newline.
# ECMA-48 (https://ecma-international.org/publications-and-standards/standards/ecma-48/)
# builds every escape sequence (CSI, OSC: title, clipboard, hyperlink) from these.
_CONTROL = re.compile(r"\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# DECAWM (autowrap mode, https://vt100.net/docs/vt510-rm/DECAWM.html): rich has no
# control code for it, and without it one too-wide line would take two rows.
_AUTOWRAP_OFF = "\x1b[?7l"
_AUTOWRAP_ON = "\x1b[?7h"
_TRAILING_BLANKS = re.compile(r" +$")  # rich pads lines; unstyled padding is not needed


def neutralize(text: str) -> str:
    """Show control characters instead of sending them to the terminal.

    C0 controls become their Unicode control pictures (ESC is "␛", BEL "␇", CR "␍"),
    DEL is "␡", C1 controls are spelled "<U+009B>", so an OSC 52 clipboard write, an
    OSC 8 hyperlink, a window title or a "\\r\\x1b[2K" erase shows up as text instead of
    acting. Tabs and newlines are kept; a CRLF is a newline.
    """
    return _CONTROL.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n":
        return "\n"
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # https://www.unicode.org/charts/PDF/U2400.pdf
    if code == 0x7F:
        return "\u2421"
    if code <= 0x9F:
        return f"<U+{code:04X}>"
    return "\ufffd"  # a lone surrogate cannot be written as UTF-8


def _Blocks() -> BlockSplit:
    """The widget's block split (`render` is imported late: `streamchat --help` does not
    pay for the renderer)."""
    from .render import BlockSplit

    return BlockSplit()


def _terminal_tokens(tokens: list[Token]) -> list[Token]:
    """The engine's tokens in the kinds rich knows: a formula as its LaTeX in code, an
    image link as a link, a checkbox as a box, strikethrough and a column's alignment as
    rich names them; the HTML-only host note goes (rich prints a link's real target after
    it anyway), and so does an autolink's link (its text is its target)."""
    out = []
    for token in tokens:
        if token.children:
            token.children = _terminal_tokens(token.children)
        if token.type == "math_inline":
            token.type, token.content = "code_inline", token.info
        elif token.type == "math_block":
            token.type, token.tag, token.content = "fence", "code", token.info.strip() + "\n"
            token.info = "latex"
        elif token.type in ("image_link_open", "image_link_close"):
            token.type = token.type.replace("image_link", "link")
        elif token.type in ("link_open", "link_close") and token.info == "auto":
            continue  # an autolink's text is its target: rich would print it twice
        elif token.type in ("s_open", "s_close"):
            token.tag = "s"  # GFM's HTML is <del>; rich styles strikethrough by the tag s
        elif token.type in ("th_open", "td_open") and "align" in token.attrs:
            token.attrs["style"] = f"text-align:{token.attrs['align']}"  # what rich reads
        elif token.type == "streamchat_html":
            if "checkbox" not in token.content:
                continue
            token.type = "text"
            token.content = (
                "☑" if "checked" in token.content else "☐"
            )  # the text after starts with a space
        out.append(token)
    return out


def _rich_markdown(source: str) -> Markdown:
    """rich's Markdown over the tokens of streamchat's engine (not its own parser)."""
    markdown = Markdown("", hyperlinks=False)
    markdown.markup = source
    from .render import parser

    markdown.parsed = _terminal_tokens(parser().parse(source))
    return markdown


class _MarkdownLines:
    """Renders an answer block by block to terminal lines, as rich renders the whole.

    rich writes a blank line before an element when the element that ended last asks for
    one (every kind but a horizontal rule), and that may be the element before it or, for
    a list, quote or table, its own last child. `_gap` carries that state from one block
    to the next: when it is set, the block is rendered after a one-line paragraph whose
    line is then dropped, so the blocks printed one at a time add up to a one-shot render.
    """

    _SENTINEL = "x\n\n"

    def __init__(self, console: Console) -> None:
        self._console = console
        self._gap = False

    def block(self, source: str) -> list[str]:
        """A finished block: its lines, printed once."""
        markdown, lines = self._render(source)
        top = [token for token in markdown.parsed if token.level == 0 and token.nesting >= 0]
        if top:
            self._gap = (Markdown.elements.get(top[-1].type) or UnknownElement).new_line
        return lines

    def preview(self, source: str) -> list[str]:
        """The open block as it will look once finished (unclosed syntax closed or hidden)."""
        from .render import parser, repair

        repaired = repair(parser(), source)
        return self._render(repaired)[1] if repaired.strip() else []

    def _render(self, source: str) -> tuple[Markdown, list[str]]:
        if not self._gap:
            markdown = _rich_markdown(source)
            return markdown, render_lines(self._console, markdown)
        markdown = _rich_markdown(self._SENTINEL + source)
        return markdown, render_lines(self._console, markdown)[1:]


def render_lines(console: Console, renderable: RenderableType) -> list[str]:
    """`renderable` as the terminal lines (with styles) `console` would print."""
    with console.capture() as capture:
        console.print(renderable)
    return [_TRAILING_BLANKS.sub("", line) for line in capture.get().splitlines()]


class _Screen:
    """The bottom of the terminal: lines printed for good above a live region redrawn in place.

    The cursor rests at the start of the row below the live region, which is at most one
    row shorter than the screen, so moving up over it never reaches the scrollback.
    """

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: list[str] = []
        self._width = console.width

    def draw(self, committed: list[str], live: list[str]) -> None:
        width, height = self._console.size
        keep = max(height - 1, 0)
        live = live[len(live) - keep :] if len(live) > keep else live
        out = [self._rewind(width)]
        out.extend(line + "\n" for line in committed)
        if live:
            out.append(_AUTOWRAP_OFF)
            out.extend(line + "\n" for line in live)
            out.append(_AUTOWRAP_ON)
        self._live, self._width = live, width
        self._console.file.write("".join(out))
        self._console.file.flush()

    def _rewind(self, width: int) -> str:
        """Erase the live region, going up to its first row."""
        rows = len(self._live)
        if width < self._width:
            # A terminal that rewraps on resize (tmux, VTE, kitty, iTerm2, Windows Terminal)
            # has split the region's long lines over several rows.
            rows = sum(max(1, math.ceil(_cells(line) / width)) for line in self._live)
        up = ((ControlType.CURSOR_UP, 1), (ControlType.ERASE_IN_LINE, 2)) * rows
        return str(Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2), *up))


_FALLBACK_COLUMNS, _FALLBACK_LINES = 80, 25


def _follow_terminal(console: Console) -> ConsoleDimensions:
    """Size `console` by the terminal it writes to, as it is now.

    rich prefers $COLUMNS and $LINES, which a parent process may have exported long ago
    and which do not follow a resize.
    """
    with contextlib.suppress(OSError, ValueError):  # not a terminal: keep the given size
        columns, lines = os.get_terminal_size(console.file.fileno())
        # Some terminals report 0x0 (CI runners, `script`, IDE consoles): rich's own
        # fallback then, 80x25, rather than a width at which nothing is printed.
        console.size = (columns or _FALLBACK_COLUMNS, lines or _FALLBACK_LINES)
    return console.size


def _cells(line: str) -> int:
    return cell_len(Text.from_ansi(line).plain)


class LiveDisplay:
    """The answer, its reasoning and a status line, drawn live into a terminal.

    Feed it neutralized text (`reasoning`, `answer`, `note`) as it arrives and call `paint`
    often: it redraws at most `fps` times a second, and less often when drawing gets
    expensive (a long open block), so drawing never takes more than about a fifth of
    the time. `close` prints what is still open and restores the cursor.
    """

    def __init__(
        self,
        console: Console,
        *,
        clock: Callable[[], float] = time.monotonic,
        fps: float = 30.0,
    ) -> None:
        self._console = console
        self._screen = _Screen(console)
        self._clock = clock
        self._start = clock()
        self._interval = 1.0 / fps
        self._next_paint = -math.inf
        self._committed: list[str] = []
        self._section: str | None = None  # "reasoning" or "answer" once text arrived
        self._thinking = ""  # the reasoning's unfinished line
        self._blocks = _Blocks()
        self._markdown = _MarkdownLines(console)
        self._spinner = Spinner("dots", style="dim")
        self._dirty = True
        self._size = console.size
        console.file.write(str(Control.show_cursor(False)))

    @property
    def interval(self) -> float:
        """How often `paint` is worth calling: one frame."""
        return self._interval

    def reasoning(self, text: str) -> None:
        if self._section != "reasoning":
            self._end_section()
            self._committed.extend(render_lines(self._console, Text("Reasoning", "dim bold")))
            self._section = "reasoning"
        self._thinking += text
        done, newline, self._thinking = self._thinking.rpartition("\n")
        if newline:
            self._committed.extend(self._dim(done))
        self._dirty = True

    def answer(self, text: str) -> None:
        if self._section != "answer":
            self._end_section()
            self._section = "answer"
        for block in self._blocks.append(text):
            self._committed.extend(self._markdown.block(block))
        self._dirty = True

    def note(self, text: str) -> None:
        """A line about the answer (a tool call), printed where the stream has got to."""
        self._end_section()
        self._committed.extend(render_lines(self._console, Text(text, "dim")))
        self._dirty = True

    def paint(self, force: bool = False) -> None:
        now = self._clock()
        size = _follow_terminal(self._console)
        changed = self._dirty or self._section is None or size != self._size
        if not force and (not changed or now < self._next_paint):
            return
        self._screen.draw(self._committed, self._live_lines(now))
        self._committed, self._dirty, self._size = [], False, size
        self._next_paint = now + max(self._interval, 4 * (self._clock() - now))

    def close(self) -> None:
        """Print what is still open as final, drop the live region, show the cursor."""
        _follow_terminal(self._console)
        self._end_section(last=True)
        self._screen.draw(self._committed, [])
        self._committed = []
        self._console.file.write(str(Control.show_cursor(True)))
        self._console.file.flush()

    def _end_section(self, last: bool = False) -> None:
        if self._section == "reasoning" and self._thinking:
            self._committed.extend(self._dim(self._thinking))
        elif self._section == "answer" and self._blocks.open:
            self._committed.extend(self._markdown.block(self._blocks.open))
        if self._section is not None and not last:
            self._committed.append("")
        self._section, self._thinking = None, ""
        self._blocks, self._markdown = _Blocks(), _MarkdownLines(self._console)

    def _live_lines(self, now: float) -> list[str]:
        if self._section is None:
            text = Text(f"waiting for the first token · {now - self._start:.1f} s", "dim")
            self._spinner.update(text=text)
            return render_lines(self._console, self._spinner.render(now))
        if self._section == "reasoning":
            return self._dim(self._thinking) if self._thinking else []
        return self._markdown.preview(self._blocks.open)

    def _dim(self, text: str) -> list[str]:
        return render_lines(self._console, Text(text, "dim italic"))


@dataclass
class Stats:
    """Timing of one answer for the summary line: `observe` each delta with the clock."""

    start: float
    first_token: float | None = None
    end: float | None = None
    chars: int = 0
    tokens: int | None = None
    _now: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        # A token is what the widget's time to first token counts (`Handlers.token`).
        self._dispatch = Handlers(token=self._token, text=self._text, usage=self._usage)

    def observe(self, delta: Delta, now: float) -> None:
        self._now = now
        self._dispatch(delta)
        self.end = now

    def _token(self, _delta: Delta) -> None:
        if self.first_token is None:
            self.first_token = self._now

    def _text(self, delta: TextDelta) -> None:
        self.chars += len(delta.text)

    def _usage(self, delta: Usage) -> None:
        if delta.output_tokens is not None:
            self.tokens = delta.output_tokens

    def summary(self) -> str:
        """One line: time to first token, characters and their rate, tokens."""
        parts = []
        if self.first_token is None:
            parts.append("no token received")
        else:
            parts.append(f"ttft {self.first_token - self.start:.2f} s")
            parts.append(f"{self.chars:,} chars")
            streamed = (self.end or self.first_token) - self.first_token
            if streamed > 0:
                parts.append(f"{self.chars / streamed:,.0f} chars/s")
        parts.append("tokens not reported" if self.tokens is None else f"{self.tokens:,} tokens")
        if self.end is not None:
            parts.append(f"{self.end - self.start:.1f} s")
        return " · ".join(parts)
