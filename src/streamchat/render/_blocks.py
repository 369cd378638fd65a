"""The incremental block machine shared by `render_markdown` and `MarkdownStream`.

The source is split into top-level blocks with the engine's own line maps (`token.map`):
CommonMark parses blocks in one forward pass, so once a later top-level block has begun,
every block before it is final (https://spec.commonmark.org/0.31.2/#appendix-a-parsing-strategy).
Only the open region, the last block, is rendered again as text arrives, and even that is
built part by part where its kind allows: a fenced code block line by line, a table row by
row, a tight list item by item, a paragraph cut where nothing inline is open. Anything
else is parsed again whole while it stays within `_repair.MAX_BLOCK`; what is too costly
to render again and again (`_repair.Guard`) shows as escaped text.

A whole text is the same lines fed at once, so the streamed HTML equals
`render_markdown(text)` by construction.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from . import _repair
from ._engine import parser, top_level_blocks
from ._highlight import CodeBlock
from ._parts import Live, Paragraph, RawText, Run
from ._sanitize import RAW_CLASS, escape_text, sanitize

__all__ = ["Machine"]

LETTER = re.compile(r"[^\W\d_]")  # a letter of any script: only a paragraph starts so
_FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)$")
_ITEM = re.compile(r"([-+*]|\d{1,9}[.)])( {1,4}(?=\S)|$)")


def _expand(line: str) -> str:
    """A source line without its CR (the engine reads tabs itself)."""
    return line.rstrip("\r")


class _Region:
    """The open region as a list of kinds: what builds its HTML."""

    lines: list[str]

    def add(self, line: str) -> bool:
        """Take a whole line; False: it may end the region (the caller parses again)."""
        raise NotImplementedError

    def html(self, partial: str = "", *, final: bool = False) -> str:
        raise NotImplementedError

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        return 0, self.html(partial)


class _Fence(_Region):
    """A top-level fenced code block: each line highlighted once, when finished."""

    def __init__(self, opener: re.Match[str], lines: list[str]) -> None:
        self.indent = len(opener.group(1))
        self.char, self.length = opener.group(2)[0], len(opener.group(2))
        self.code = CodeBlock(_unescaped_info(opener.group(3)))
        self.lines = [lines[0]]
        self.closed = False
        for line in lines[1:]:
            self.add(line)

    def add(self, line: str) -> bool:
        if self.closed:
            if line.strip():
                return False
            self.lines.append(line)  # blank lines after it: still this region's
            return True
        self.lines.append(line)
        if self._closes(line):
            self.closed = True
        else:
            self.code.add(self._body(line))
        return True

    def _closes(self, line: str) -> bool:
        stripped = line.strip(" ")
        indent = len(line) - len(line.lstrip(" "))
        return (
            indent <= 3 and len(stripped) >= self.length and stripped == self.char * len(stripped)
        )

    def _body(self, line: str) -> str:
        indent = len(line) - len(line.lstrip(" "))
        return line[min(indent, self.indent) :]

    def html(self, partial: str = "", *, final: bool = False) -> str:
        if final:
            return self.code.html(final=True)
        return self.code.html("" if self.closed or self._closing(partial) else self._body(partial))

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        if self.closed or self._closing(partial):
            partial = ""
        return self.code.live(self._body(partial) if partial else "", shown)

    def _closing(self, partial: str) -> bool:
        """A closing fence being typed: it is about to close anyway."""
        stripped = partial.strip(" ")
        if not stripped or stripped[0] != self.char or len(stripped) > 3 * self.length:
            return False  # (a long line is no fence: checked without building one)
        return stripped == self.char * len(stripped)


def _unescaped_info(info: str) -> str:
    return info.strip().replace("\\", "") if "\\" in info else info.strip()


# A cell that renders as itself, escaped: no inline syntax, nothing a link could start.
_PLAIN_CELL = re.compile(r"(?:[^\W_]|[ .,;%/()+'’?!#=])*")
# One code span (maybe still open) whose text neither starts nor ends with a space.
_CODE_CELL = re.compile(r"`([^`\s](?:[^`]*[^`\s])?)(`?)")
_ALIGN = re.compile(r"<th((?: align=\"\w+\")?)>")
_ONE_CELL = re.compile(r"<tr>\n<td>(.*)</td>\n</tr>\n", re.S)


class _Table(_Region):
    """A table: each row is rendered once, under the same header."""

    def __init__(self, machine: Machine, lines: list[str], head: str, rows: list[str]) -> None:
        self._machine = machine
        self.lines = list(lines)
        self._top = f"{lines[0]}\n{lines[1]}\n"
        self._head = head
        self._aligns = _ALIGN.findall(head)
        self._done_cells: dict[str, str] = {}
        self._ended = False
        self._rows = Run()
        for row in rows:
            self._rows.add(row)

    @staticmethod
    def parts(table_html: str) -> tuple[str, list[str]] | None:
        """A one-table rendering split into its head (up to </thead>) and its rows."""
        if not table_html.startswith("<table>\n") or not table_html.endswith("</table>\n"):
            return None
        start = table_html.find("</thead>\n")
        if start < 0:
            return None
        head, body = table_html[: start + 9], table_html[start + 9 : -len("</table>\n")]
        body = body.removeprefix("<tbody>\n").removesuffix("</tbody>\n")
        return head, [row + "</tr>\n" for row in body.split("</tr>\n")[:-1]]

    def _row(self, line: str, repaired: bool = False) -> str | None:
        text = self._top + line
        if repaired:
            text = self._machine.repair(text)
        tokens = self._machine.parse(text)
        if len(top_level_blocks(tokens)) != 1 or tokens[0].type != "table_open":
            return None
        parts = self.parts(self._machine.render_tokens(tokens))
        if parts is None or parts[0] != self._head or len(parts[1]) > 1:
            return None
        return parts[1][0] if parts[1] else ""

    def add(self, line: str) -> bool:
        if not line.strip():
            self.lines.append(line)  # the table ends; the region takes the blank line
            self._ended = True
            return True
        if self._ended or "|" not in line:
            return False
        row = self._cells(line, final=True) if "\\" not in line else None
        row = row or self._row(line)
        if not row:
            return False
        self.lines.append(line)
        self._rows.add(row)
        return True

    def html(self, partial: str = "", *, final: bool = False) -> str:
        row = self._live_row(partial)
        if not self._rows.size and not row:
            return self._head + "</table>"
        return self._head + "<tbody>\n" + self._rows.text() + row + "</tbody>\n</table>"

    def _live_row(self, partial: str) -> str:
        if self._ended or not partial.strip() or "|" not in partial:
            return ""
        built = self._cells(partial)
        return built if built is not None else self._row(partial, repaired=True) or ""

    def _cells(self, partial: str, final: bool = False) -> str | None:
        """The row being typed, cell by cell: a plain cell is its escaped text, another
        is rendered alone, once when finished (markdown-it parses each cell apart).
        None: a backslash may escape a pipe: render it whole. (Backticks do not protect a
        pipe: https://github.github.com/gfm/#example-200.)"""
        if "\\" in partial:
            return None
        text = partial.strip()
        text = text[1:] if text.startswith("|") else text
        cells = text.split("|")
        if not "".join(cells).strip():
            return ""
        out = ["<tr>\n"]
        for index, align in enumerate(self._aligns):
            cell = cells[index].strip() if index < len(cells) else ""
            inner = self._cell(cell, finished=final or index < len(cells) - 1)
            if inner is None:
                return None
            out.append(f"<td{align}>{inner}</td>\n")
        out.append("</tr>\n")
        return "".join(out)

    def _cell(self, cell: str, finished: bool) -> str | None:
        if _PLAIN_CELL.fullmatch(cell) and "www." not in cell.lower():  # (an autolink)
            return escape_text(cell)
        code = _CODE_CELL.fullmatch(cell)
        if code is not None and (code.group(2) or not finished):
            return f"<code>{escape_text(code.group(1))}</code>"  # one code span
        if cell in self._done_cells:
            return self._done_cells[cell]
        # Unfinished, the cell ends the text: what is being typed in it is repaired.
        source = f"|x|\n|-|\n|{cell}|\n" if finished else self._machine.repair(f"|x|\n|-|\n|{cell}")
        parts = _Table.parts(self._machine.render(source) + "\n")
        if parts is None or len(parts[1]) != 1:
            return None
        found = _ONE_CELL.fullmatch(parts[1][0])
        if found is None:
            return None
        if finished:
            if len(self._done_cells) > 64:
                self._done_cells.clear()
            self._done_cells[cell] = found.group(1)
        return found.group(1)

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        if not shown or not self._rows.size:
            return 0, self.html(partial)
        start, added = self._rows.unread()
        if not start:
            return 0, self.html(partial)
        fixed = len(self._head) + len("<tbody>\n") + start
        return fixed, added + self._live_row(partial) + "</tbody>\n</table>"


class _List(_Region):
    """A tight list, item by item: an item is rendered once, when the next one starts."""

    def __init__(self, machine: Machine, lines: list[str], marker: str) -> None:
        self._machine = machine
        self._marker = marker  # the bullet or ordered delimiter every top-level item uses
        self.lines: list[str] = []
        self._open = ""  # the list's opening tag, from its first item
        self._tag = ""
        self._items = Run()
        self._current: list[str] = []
        self._column = 0
        self._live = Live(self._render_list, machine.repair)
        self.spoiled = False  # an item too costly at some line: escaped text for good
        for line in lines:
            self.add(line)

    def _render_list(self, text: str) -> str:
        return self._machine.render(text)

    def _marker_of(self, line: str) -> tuple[str, int] | None:
        found = _ITEM.match(line)
        if found is None:
            return None
        marker = found.group(1)
        kind = marker if marker in "-+*" else marker[-1]
        return kind, found.end() if found.group(2) else found.end() + 1

    def add(self, line: str) -> bool:
        if not line.strip():
            return False  # a blank line may loosen the list: parsed whole from here on
        item = self._marker_of(line)
        if item is not None and item[0] == self._marker and not _is_rule(line):
            if self._current and not self._finish_item():
                return False
            self._current, self._column = [line], item[1]
        elif self._current and len(line) - len(line.lstrip(" ")) >= self._column:
            self._current.append(line)
        else:
            return False
        self.lines.append(line)
        self.spoiled = self.spoiled or self.costly()
        return True

    def costly(self) -> bool:
        """The item being built is rendered again at each update: bounded like a block."""
        return self._machine._costly(self._current)

    def _finish_item(self) -> bool:
        split = self._split(self._machine.render("\n".join(self._current)))
        if split is None:
            return False
        opening, items = split
        self._open = self._open or opening
        self._items.add(items)
        return True

    def _split(self, list_html: str) -> tuple[str, str] | None:
        """A one-list rendering split into its opening tag and its items."""
        newline = list_html.find("\n")
        tag = list_html[1:3]
        if tag not in ("ul", "ol") or not list_html.endswith(f"</{tag}>"):
            return None
        self._tag = tag
        return list_html[:newline], list_html[newline + 1 : -len(f"</{tag}>")]

    def html(self, partial: str = "", *, final: bool = False) -> str:
        return self._whole(self._rest(partial, final))

    def _rest(self, partial: str, final: bool) -> str:
        text = "\n".join([*self._current, partial] if partial else self._current)
        return self._live.final(text) if final else self._live.html(text)

    def _whole(self, rest: str) -> str:
        if not self._items.size:
            return rest
        return f"{self._open}\n" + self._joined(self._items.text(), rest)

    def _joined(self, items: str, rest: str) -> str:
        if rest.startswith(f"<{self._tag}"):
            return items + rest[rest.find("\n") + 1 :]
        return f"{items}</{self._tag}>" + ("\n" + rest if rest else "")

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        rest = self._rest(partial, False)
        if not shown or not self._items.size:
            return 0, self._whole(rest)
        start, added = self._items.unread()
        if not start:
            return 0, self._whole(rest)
        return len(self._open) + 1 + start, self._joined(added, rest)


# A line that ends a paragraph or turns it into something else, whatever follows it
# (https://spec.commonmark.org/0.31.2/#paragraph-continuation-text): a quote, an ATX
# heading, a fence, a display formula, a non-empty list item (ordered only from 1), a
# setext underline or a thematic break. HTML blocks are off.
_INTERRUPTS = re.compile(
    r" {0,3}(?:>|#{1,6}(?:[ \t]|$)|`{3,}|~{3,}|\$\$|\\\[|[-+*][ \t]+\S|0*1[.)][ \t]+\S"
    r"|=+[ \t]*$|-+[ \t]*$|([-*_])(?:[ \t]*\1){2,}[ \t]*$)"
)
# A table's delimiter row: the line before it becomes a table's header.
_DELIMITER_ROW = re.compile(r" {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


# What only a paragraph starts with: a letter, or an emphasis opener ("**Note:**"; a
# list marker or a rule has a space or another marker after it).
_PARAGRAPH_START = re.compile(r"[^\W\d_]|(?:\*{1,3}|_{1,3})(?=[^\s*_])")


def _continues(line: str) -> bool:
    """A line that goes on the paragraph above it, however the text goes on."""
    return _INTERRUPTS.match(line) is None and _DELIMITER_ROW.match(line) is None


def _paragraph_lines(lines: list[str]) -> bool:
    """Lines that start with a letter, then maybe blank lines: one paragraph."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return all(line.strip() and _continues(line) for line in lines[1:end])


def _is_rule(line: str) -> bool:
    return re.match(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$", line) is not None


class _Paragraph(_Region):
    """A paragraph that may grow long: `Paragraph` cuts it into parts."""

    def __init__(self, machine: Machine, lines: list[str]) -> None:
        self._machine = machine
        self.lines: list[str] = []
        self.paragraph = Paragraph(machine.render, machine.repair)
        # The live line after the last cut, measured as it grows.
        self._partial_guard, self._partial_fed, self._partial_start = _repair.Guard(), 0, 0
        self._partial_delimiters = 0
        self.spoiled = False  # too costly at some line: escaped text for good
        for line in lines:
            if line.strip():
                self.lines.append(line)
                self.paragraph.add(line)
                self.spoiled = self.spoiled or self.costly()
            else:
                self.lines.append(line)

    def add(self, line: str) -> bool:
        if not line.strip():
            self.lines.append(line)  # the paragraph ends; the region takes the blank line
            return True
        if self.lines and not self.lines[-1].strip():
            return False
        if not (_PARAGRAPH_START.match(line) or (self.lines and _continues(line))):
            return False
        self.lines.append(line)
        self.paragraph.add(line)
        self.spoiled = self.spoiled or self.costly()
        return True

    def costly(self, partial: str = "") -> bool:
        """The part rendered again at each update (after the last cut) is too costly."""
        paragraph = self.paragraph
        stretch = paragraph.stretch(partial)
        if paragraph.guard.risky or stretch > _repair.MAX_STRETCH:
            return True
        if not partial:
            return paragraph.delimiters() > _repair.DELIMITER_LIMIT
        start = paragraph.last_cut_in(partial)
        if start != self._partial_start or len(partial) < self._partial_fed:
            self._partial_guard, self._partial_fed = _repair.Guard(), start
            self._partial_start, self._partial_delimiters = start, 0
        added = partial[self._partial_fed :]
        self._partial_guard.feed(added)
        self._partial_delimiters += sum(map(added.count, "*_~"))
        self._partial_fed = len(partial)
        delimiters = paragraph.delimiters() + self._partial_delimiters
        return self._partial_guard.risky or delimiters > _repair.DELIMITER_LIMIT

    def html(self, partial: str = "", *, final: bool = False) -> str:
        return self.paragraph.html(partial, final)

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        return self.paragraph.live(partial, shown)


class _Whole(_Region):
    """Any other block: parsed and rendered again whole (within `_repair.MAX_BLOCK`)."""

    def __init__(self, machine: Machine, lines: list[str]) -> None:
        self._machine = machine
        self.lines = list(lines)
        self._live = Live(machine.render, machine.repair)

    def add(self, line: str) -> bool:
        return False

    def html(self, partial: str = "", *, final: bool = False) -> str:
        if final:  # whole lines, each with its line break
            return self._live.final("".join(line + "\n" for line in self.lines))
        return self._live.html("\n".join([*self.lines, partial] if partial else self.lines))


class _Raw(_Region):
    """Escaped text, for a block too costly to render again as it grows; it ends at a
    blank line. The live line grows by escaping only what was added to it."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self._raw = RawText(lines)
        self._blank = bool(lines) and not lines[-1].strip()
        self._partial: tuple[str, list[str]] = ("", [])
        self._size = 0  # characters of the live line's HTML

    def add(self, line: str) -> bool:
        if self._blank and line.strip():
            return False
        self._blank = not line.strip()
        self.lines.append(line)
        self._raw.add(line)
        return True

    def html(self, partial: str = "", *, final: bool = False) -> str:
        whole = self._raw.html("")
        if not partial:
            return whole
        line_html = "".join(self._escaped(partial))
        if not whole:
            return f'<p class="{RAW_CLASS}">{line_html}</p>'
        return whole[:-4] + "\n" + line_html + "</p>"

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """A live line alone (the usual case: one long line) grows by its new text."""
        if self.lines or not partial:
            return 0, self.html(partial)
        before = self._size
        pieces = self._escaped(partial)
        if not shown or len(pieces) < 2 or before != self._size - len(pieces[-1]):
            return 0, f'<p class="{RAW_CLASS}">' + "".join(pieces) + "</p>"
        return len(RAW_CLASS) + 12 + before, pieces[-1] + "</p>"

    def _escaped(self, partial: str) -> list[str]:
        """The live line's HTML in pieces: what it had, and the escaped new text."""
        known, pieces = self._partial
        if not (known and partial.startswith(known)):
            known, pieces, self._size = "", [], 0
        # Whole characters only: a CR LF pair split across updates stays one.
        cut = len(partial) - 1 if partial.endswith("\r") else len(partial)
        if len(pieces) > 64:
            pieces = ["".join(pieces)]
        added = escape_text(partial[len(known) : cut])
        pieces = [*pieces, added] if added else pieces
        self._size += len(added)
        self._partial = (partial if cut == len(partial) else partial[:cut], pieces)
        return [*pieces, escape_text(partial[cut:])] if cut < len(partial) else pieces


class Machine:
    """Top-level blocks from whole lines; the open region's HTML with a live last line."""

    def __init__(self, allow_images: bool, env: dict[str, Any] | None = None) -> None:
        self.allow_images = allow_images
        self.md: MarkdownIt = parser(allow_images)
        self.env: dict[str, Any] = env if env is not None else {}
        self.region: _Region | None = None
        # A region shown as escaped text while its live line is too costly to render.
        # (the region, its text, the live line it was too costly with)
        self._provisional: tuple[_Region, _Raw, str] | None = None
        self._shown: _Region | None = None  # what made the live HTML last returned

    def __deepcopy__(self, memo: dict[int, Any]) -> Machine:
        """A copy of the state (for tests); the engine is shared, it keeps none."""
        new = copy.copy(self)
        memo[id(self)] = new
        new.env = copy.deepcopy(self.env, memo)
        new.region = copy.deepcopy(self.region, memo)
        return new

    # -- the engine --------------------------------------------------------------------------

    def parse(self, text: str) -> list[Token]:
        """Inline-rendering parse: it reads the definitions found so far and adds none
        (a definition being typed, "[a]: /u", must not be taken for "[a]: /url")."""
        return self.md.parse(text, {"references": _Definitions(self.env)})

    def render_tokens(self, tokens: list[Token]) -> str:
        html_text = self.md.renderer.render(tokens, self.md.options, self.env)
        return sanitize(html_text, self.allow_images)

    def render(self, text: str) -> str:
        """A piece of source as HTML, without the last line break. (The source gets one:
        markdown-it drops an unclosed fence's last line when no line break ends it.)"""
        source = text if text.endswith("\n") else text + "\n"
        return self.render_tokens(self.parse(source)).removesuffix("\n")

    def repair(self, text: str) -> str:
        return _repair.repair(self.md, text)

    # -- lines -------------------------------------------------------------------------------

    def feed(self, line: str) -> list[str]:
        """Take a whole source line; return the HTML of the blocks it finished."""
        line = _expand(line)
        region = self.region
        if region is None:
            self.region = self._classify([line])
            return []
        if region.add(line):
            return self._guarded()
        return self._split([*region.lines, line])

    def render_all(self, text: str) -> str:
        """A whole text, split by one parse of it into the blocks a stream would freeze.

        Small blocks that no guard touches render as the stream renders them, the
        engine's one-shot HTML: consecutive ones render together, in one call (a call
        costs more than a short block). Others are built by their kind, as streamed.
        """
        lines = text.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return ""
        starts = [start for start, _ in top_level_blocks(self._block_tokens(lines))]
        out: list[str] = []
        group: list[str] = []

        def flush() -> None:
            if group:
                out.append(_ended(self.render("\n".join(group) + "\n")))
                group.clear()

        for start, end in zip(starts, [*starts[1:], len(lines)][: len(starts)], strict=True):
            block = lines[start:end]
            size = sum(len(line) + 1 for line in block)
            if size <= _GROUPED and not self._costly(block) and _delimiters(block) <= _DELIMITERS:
                group += block
                if sum(len(line) + 1 for line in group) >= _GROUP:
                    flush()
                continue
            flush()
            out.append(self._final(self._classify(block)))
        flush()
        return "".join(out)

    def starts_block(self, partial: str) -> bool:
        """The unfinished line starts a new block after a blank line, however it goes on:
        text that starts with a letter, after a blank line, outside a fence."""
        region = self.region
        return (
            region is not None
            and not isinstance(region, _Fence)
            and bool(region.lines)
            and not region.lines[-1].strip()
            and any(line.strip() for line in region.lines)
            and LETTER.match(partial) is not None
        )

    def freeze(self) -> str:
        """Finish the open region (the caller fed its last line)."""
        region, self.region = self.region, None
        if region is None:
            return ""
        return self._final(region)

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """The open region's live HTML: (how much of the HTML last returned is still its
        start, the HTML after it)."""
        partial = _expand(partial)
        region = self.region
        if region is None or (isinstance(region, _Whole | _Paragraph) and not region.lines):
            # Text that starts with a letter can only be a paragraph's; a line of more
            # pipes than a live table header may have is built like one too (in cuts).
            starts = _PARAGRAPH_START.match(partial) or partial.count("|") > _repair.WIDEST
            if region is None or isinstance(region, _Paragraph) != bool(starts):
                region = self.region = _Paragraph(self, []) if starts else _Whole(self, [])
        if isinstance(region, _Whole | _Paragraph) and self._partial_costly(region, partial):
            if self._provisional is None or self._provisional[0] is not region:
                self._provisional = (region, _Raw(region.lines), partial)
            raw = self._provisional[1]
            self._provisional = (region, raw, partial)
            shown, self._shown = shown and self._shown is raw, raw
            fixed, rest = raw.live(partial, shown)
            return fixed, _ended(rest)
        # A region may say what of its HTML is unchanged only if the views show its HTML.
        shown, self._shown = shown and self._shown is region, region
        fixed, rest = region.live(partial, shown)
        return fixed, _ended(rest)

    def _partial_costly(self, region: _Region, partial: str) -> bool:
        provisional = self._provisional
        if (
            provisional is not None
            and provisional[0] is region
            and partial.startswith(provisional[2])
        ):
            return True  # every measure only grows as the line does: it stays costly
        if isinstance(region, _Paragraph):
            return region.costly(partial)
        size = sum(len(line) + 1 for line in region.lines) + len(partial)
        if size > _repair.MAX_BLOCK or len(partial) > _repair.MAX_LINE:
            return True
        guard = _repair.Guard()
        guard.feed(partial)
        return guard.risky

    # -- splitting ---------------------------------------------------------------------------

    def _guarded(self) -> list[str]:
        """A region that grew by a line: still cheap to render again?"""
        region = self.region
        if isinstance(region, _Paragraph | _List) and region.spoiled:
            self.region = _Raw(region.lines)
        return []

    def _split(self, lines: list[str]) -> list[str]:
        """Parse the open region again: the blocks before its last one are final."""
        tokens = self._block_tokens(lines)
        blocks = top_level_blocks(tokens)
        last = blocks[-1][0] if blocks else 0
        frozen = []
        if last > 0:
            region = self.region
            if region is not None and len(region.lines) == last:
                frozen.append(self._final(region))
            else:
                frozen.append(self._final(self._classify(lines[:last])))
            lines = lines[last:]
        self.region = self._classify(lines)
        return [html for html in frozen if html]

    def _block_tokens(self, lines: list[str]) -> list[Token]:
        tokens: list[Token] = []
        self.md.block.parse("\n".join(lines) + "\n", self.md, self.env, tokens)
        return tokens

    def _classify(self, lines: list[str]) -> _Region:
        """What builds the HTML of a region that starts a top-level block."""
        first = lines[0]
        opener = _FENCE_OPEN.match(first)
        # A backtick fence's info string has no backtick (https://spec.commonmark.org/0.31.2/#fenced-code-blocks).
        if opener and (opener.group(2)[0] != "`" or "`" not in opener.group(3)):
            fence = _Fence(opener, lines)
            if len(fence.lines) == len(lines):
                return fence
        if _PARAGRAPH_START.match(first) and _paragraph_lines(lines):
            paragraph = _Paragraph(self, lines)  # measured by its own guard, line by line
            return _Raw(lines) if paragraph.spoiled else paragraph
        # Tables and lists are measured by the row or item rendered again, not whole.
        tokens = self._block_tokens(lines) if len(lines) <= 2 or not self._costly(lines) else []
        if not tokens and len(lines) > 2:
            tokens = self._block_tokens(lines[:2])  # (a table or list too big to parse again)
            tokens = tokens if tokens and tokens[0].type in _GROWING else []
            if tokens:
                tokens = self._block_tokens(lines)
        if len(top_level_blocks(tokens)) == 1 and tokens:
            kind = tokens[0].type
            if kind == "table_open" and len(lines) >= 2:
                table = self._table(lines)
                if table is not None:
                    return table
            if kind in ("bullet_list_open", "ordered_list_open") and all(map(str.strip, lines)):
                marker = tokens[0].markup
                listed = _List(self, lines, marker)
                if len(listed.lines) == len(lines):
                    return _Raw(lines) if listed.spoiled else listed
        if self._costly(lines):
            return _Raw(lines)
        return _Whole(self, lines)

    def _table(self, lines: list[str]) -> _Table | None:
        tokens = self.parse(f"{lines[0]}\n{lines[1]}\n")
        parts = _Table.parts(self.render_tokens(tokens))
        if parts is None:
            return None
        table = _Table(self, lines[:2], parts[0], [])
        for line in lines[2:]:
            if not table.add(line):
                return None
        return table

    def _costly(self, lines: list[str]) -> bool:
        guard = _repair.Guard()
        for line in lines:
            guard.feed(line + "\n")
            guard.line(line, (len(line) - len(line.lstrip(" "))) // 2)
        if guard.risky or max(map(len, lines)) > _repair.MAX_LINE:
            return True
        return guard.size > _repair.MAX_BLOCK or len(lines) > _repair.MAX_LINES

    def _final(self, region: _Region) -> str:
        return _ended(region.html(final=True))


_GROUPED = 2_000  # a block this small renders as the engine renders it whole
_GROUP = 8_000  # source rendered in one call of the engine
_DELIMITERS = _repair.DELIMITER_LIMIT


def _delimiters(lines: list[str]) -> int:
    return sum(line.count("*") + line.count("_") + line.count("~") for line in lines)


_GROWING = ("table_open", "bullet_list_open", "ordered_list_open")


class _Definitions(dict[str, Any]):
    """The definitions of whole lines (`env["references"]`, read-only) under those a
    render of some piece of text finds itself, which go when it ends."""

    def __init__(self, env: dict[str, Any]) -> None:
        super().__init__()
        self._known: dict[str, Any] = env.setdefault("references", {})

    def __contains__(self, label: object) -> bool:
        return dict.__contains__(self, label) or label in self._known

    def get(self, label: str, default: Any = None) -> Any:
        return dict.get(self, label, self._known.get(label, default))


def _ended(block_html: str) -> str:
    """Blocks end with a line break, as the engine renders them."""
    return block_html + "\n" if block_html else ""
