"""The kinds of open region the block machine builds part by part.

A fenced code block line by line (`Fence`), a table row by row and cell by cell
(`Table`), a tight list item by item (`List`), a paragraph in cuts (`ParagraphRegion`),
anything else whole (`Whole`), and what is too costly as escaped text (`Raw`).
Each says what of its HTML the views already have (`live`), so an update costs the size
of what changed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import _repair
from ._engine import top_level_blocks
from ._highlight import CodeBlock
from ._parts import Live, Paragraph, RawText, Run, push
from ._sanitize import RAW_CLASS, escape_text

if TYPE_CHECKING:
    from ._blocks import Machine

LETTER = re.compile(r"[^\W\d_]")  # a letter of any script: only a paragraph starts so
FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)$")
_ITEM = re.compile(r"([-+*]|\d{1,9}[.)])( {1,4}(?=\S)|$)")


class Region:
    """The open region as a list of kinds: what builds its HTML."""

    lines: list[str]

    def add(self, line: str) -> bool:
        """Take a whole line; False: it may end the region (the caller parses again)."""
        raise NotImplementedError

    def html(self, partial: str = "", *, final: bool = False) -> str:
        raise NotImplementedError

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        return 0, self.html(partial)

    def settled(self) -> bool:
        """Its HTML is built from its whole lines alone (a line that was being typed
        and turned out to be no part of it left nothing in it)."""
        return True


class Fence(Region):
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

    @property
    def growing(self) -> bool:
        """The live line last shown is long and plain (`CodeBlock.grow`): longer than
        three times the fence, it is no closing fence however it goes on, and its
        indentation, wider than the fence's, is cut the same."""
        return self.code.growing and not self.closed

    def grow(self, added: str) -> tuple[int, str]:
        return self.code.grow(added)

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


class Table(Region):
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
        parts = Table.parts(self._machine.render(source) + "\n")
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


class List(Region):
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
PARAGRAPH_START = re.compile(r"[^\W\d_]|(?:\*{1,3}|_{1,3})(?=[^\s*_])")


def _continues(line: str) -> bool:
    """A line that goes on the paragraph above it, however the text goes on."""
    return _INTERRUPTS.match(line) is None and _DELIMITER_ROW.match(line) is None


def paragraph_lines(lines: list[str]) -> bool:
    """Lines that start with a letter, then maybe blank lines: one paragraph."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    return all(line.strip() and _continues(line) for line in lines[1:end])


def _is_rule(line: str) -> bool:
    return re.match(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$", line) is not None


class ParagraphRegion(Region):
    """A paragraph that may grow long: `Paragraph` cuts it into parts."""

    def __init__(self, machine: Machine, lines: list[str]) -> None:
        self._machine = machine
        self.lines: list[str] = []
        self.paragraph = Paragraph(machine.render, machine.repair, machine.render_paragraph)
        # The live line after the last cut, measured as it grows.
        self._partial_guard, self._partial_fed, self._partial_start = _repair.Guard(), 0, 0
        self._partial_delimiters = 0
        # The line being typed after a blank line ended the paragraph: another block's.
        self._next = Live(machine.render, machine.repair)
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
        if not (PARAGRAPH_START.match(line) or (self.lines and _continues(line))):
            return False
        self.lines.append(line)
        self.paragraph.add(line)
        self.spoiled = self.spoiled or self.costly()
        return True

    def settled(self) -> bool:
        return self.paragraph.cut_in_lines()

    @property
    def ended(self) -> bool:
        """A blank line ended the paragraph."""
        return bool(self.lines) and not self.lines[-1].strip()

    def costly(self, partial: str = "") -> bool:
        """The part rendered again at each update (after the last cut) is too costly."""
        paragraph = self.paragraph
        if partial and self.ended:  # the line after it is rendered alone
            delimiters = sum(map(partial.count, "*_~"))
            return (
                len(partial) > _repair.MAX_LINE
                or delimiters > _repair.DELIMITER_LIMIT
                or _repair.risky(partial)
            )
        stretch = paragraph.stretch(partial)
        too_long = stretch > _repair.MAX_STRETCH or paragraph.lines() > _repair.MAX_LINES
        if paragraph.guard.risky or too_long:
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
        if partial and self.ended:
            return _then(self.paragraph.html("", final), self._next.html(partial))
        return self.paragraph.html(partial, final)

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """The paragraph's live HTML; a line typed after the blank line that ended it is
        no part of it (its text would be cut into the paragraph's parts)."""
        if partial and self.ended:
            fixed, rest = self.paragraph.live("", shown)
            return fixed, _then(rest, self._next.html(partial))
        return self.paragraph.live(partial, shown)


def _then(block_html: str, next_html: str) -> str:
    """Two blocks' HTML, as the engine joins them."""
    return f"{block_html}\n{next_html}" if block_html and next_html else block_html or next_html


class Whole(Region):
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


class Raw(Region):
    """Escaped text, for a block too costly to render again as it grows; it ends at a
    blank line. The live line grows by escaping only what was added to it."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        self._raw = RawText(lines)
        self._blank = bool(lines) and not lines[-1].strip()
        self._head = ""  # the HTML before the live line's (the whole lines'), once built
        self._line: list[str] = []  # the live line's source so far, in pieces (`push`)
        self._line_size = 0
        self._html: list[str] = []  # its HTML, in pieces
        self._size = 0  # characters of the live line's HTML

    def add(self, line: str) -> bool:
        if self._blank and line.strip():
            return False
        self._blank = not line.strip()
        self.lines.append(line)
        escaped = None  # the live line that ended as `line` was escaped as it grew
        if self._line_size == len(line) and "".join(self._line) == line:
            escaped = "".join(self._html)
        self._raw.add(line, escaped)
        self._head = ""
        self._new_line()
        return True

    def html(self, partial: str = "", *, final: bool = False) -> str:
        if not partial:
            return self._raw.html("")
        return self._line_head() + escape_text(partial) + "</p>"

    def _line_head(self) -> str:
        """The HTML before the live line's: the whole lines' without their "</p>"."""
        if not self._head:
            whole = self._raw.html("")
            self._head = whole[:-4] + "\n" if whole else f'<p class="{RAW_CLASS}">'
        return self._head

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """The live line grows by its new text (the usual case: one long line)."""
        if self._line and len(partial) > self._line_size:
            known = self._line[0] if len(self._line) == 1 else "".join(self._line)
            if partial.startswith(known):
                self._line = [known]
                return self.grow(partial[self._line_size :], shown)
        self._new_line()
        if not partial:
            return 0, self.html()
        return self.grow(partial, shown)

    def grow(self, added: str, shown: bool = True) -> tuple[int, str]:
        """The live line went on by `added` (no line break): its HTML grows by that
        escaped, whatever the line's length."""
        before, escaped = self._size, escape_text(added)
        push(self._line, added)
        push(self._html, escaped)
        self._line_size += len(added)
        self._size += len(escaped)
        if not (shown and before):
            return 0, self._line_head() + "".join(self._html) + "</p>"
        return len(self._line_head()) + before, escaped + "</p>"

    def _new_line(self) -> None:
        self._line, self._line_size, self._html, self._size = [], 0, [], 0
