"""Line-level Markdown analysis shared by `render_markdown` and `MarkdownStream`.

Python-Markdown follows the original Markdown.pl, while LLMs write CommonMark/GFM (what
their chat UIs render). `BlockScanner` walks the source one line at a time and bridges the
gap where it shows in typical answers:

* a list that follows a paragraph without a blank line, and nested lists indented by two
  spaces (CommonMark measures nesting from the item's content column; Python-Markdown
  wants four spaces per level), see https://spec.commonmark.org/0.31.2/#list-items;
* a fence or heading that interrupts a paragraph or list,
  https://spec.commonmark.org/0.31.2/#fenced-code-blocks;
* a table that follows a paragraph, https://github.github.com/gfm/#tables-extension-.

The same walk tells `MarkdownStream` where a top-level block ends for good, so the source
rewrite and the block split can never disagree about lists and fences.

`repair` makes an unfinished block render the way it will look once finished (closing an
open fence or emphasis) or hides what is still undecided (a half-typed link or marker), so
raw Markdown syntax never flashes on screen while an answer streams in.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from streamchat import _math

TAB = 4  # Python-Markdown's tab_length: one nesting level of a list.

LETTER = re.compile(r"[^\W\d_]")  # a letter of any script
_HR = re.compile(r" {0,3}([-*_])(?: *\1){2,} *$")
_MARKER = re.compile(r"( *)([-+*]|(\d{1,9})\.)( +)(?=\S)")
_HEADING = re.compile(r" {0,3}#{1,6}(?: |$)")
_QUOTE = re.compile(r" {0,3}>")
# CommonMark forbids backticks in a backtick fence's info string; pymdownx.superfences,
# which renders it, allows them, and the block split must agree with the renderer.
_FENCE = re.compile(r"( *)(`{3,}|~{3,})")
TABLE_DELIM = re.compile(r" *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$")

LineKind = Literal["blank", "fence", "code", "item", "heading", "quote", "row", "text"]


class Line(NamedTuple):
    """What `BlockScanner.feed` learnt about one source line."""

    text: str  # the line re-indented for Python-Markdown (TAB spaces per list level)
    kind: LineKind
    blank_before: bool  # it interrupts the block above: Python-Markdown needs a blank line
    starts_block: bool  # a top-level block starts here that cannot merge with the one before


@dataclass(frozen=True, slots=True)
class Fence:
    """An open fenced code block (https://spec.commonmark.org/0.31.2/#fenced-code-blocks)."""

    char: str
    length: int
    indent: str  # the opener's indentation in the source
    prefix: str  # indentation written in its place: TAB spaces per enclosing list level

    @property
    def closer(self) -> str:
        """The closing line as written for Python-Markdown.

        pymdownx.superfences only closes on the opener's exact run and indentation, while
        CommonMark accepts a longer run indented up to three spaces: write it the strict way.
        """
        return self.prefix + self.char * self.length

    def closes(self, line: str) -> bool:
        """The same character, at least as long, nothing after it, indented 0-3 spaces."""
        stripped = line.strip()
        return (
            len(stripped) >= self.length
            and stripped == self.char * len(stripped)
            and _indent(line) - len(self.indent) <= 3
        )

    def body(self, line: str) -> str:
        """A content line without the opener's indentation, re-indented for its list level."""
        if not line.strip():
            return ""
        return self.prefix + line[min(_indent(line), len(self.indent)) :]


@dataclass(frozen=True, slots=True)
class _Item:
    col: int  # content column of the list item in the source
    ordered: bool


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _numbered(marker: re.Match[str]) -> bool:
    """An ordered-list marker that does not start at 1."""
    return marker.group(3) is not None and int(marker.group(3)) != 1


def ordered_item(line: str) -> bool:
    """The line starts an ordered list item ("1. ...")."""
    marker = _MARKER.match(line)
    return marker is not None and marker.group(3) is not None


def _interrupts(line: str) -> bool:
    """A line that ends a paragraph without a blank line (so it is never a lazy line)."""
    return bool(_HEADING.match(line) or _QUOTE.match(line) or _HR.match(line))


class BlockScanner:
    """Classifies Markdown source lines, in order, one at a time (tabs already expanded)."""

    def __init__(self) -> None:
        self._items: list[_Item] = []
        self._fence: Fence | None = None
        self._prev_blank = True
        self._prev_text = False  # the previous line is paragraph text: a lazy line may follow
        self._after_fence = False
        # The last top-level element as Python-Markdown sees it: a list or a quote absorbs
        # what follows a blank line (list items, indented blocks; quote lines).
        self._last: Literal["list", "quote", "other"] = "other"
        self._started = False
        # The closer of a display formula ($$, \[) opened on an earlier line: until it
        # comes, lines are the formula's ("- b" is LaTeX, not a list item).
        self._math_closer: str | None = None

    @property
    def fence(self) -> Fence | None:
        """The fenced code block still open after the lines fed so far."""
        return self._fence

    def starts_block(self, partial: str) -> bool:
        """Whether the unfinished line `partial`, however it goes on, starts a top-level
        block: text that begins with a letter (no marker, fence, quote or indent) after
        a blank line, outside a fence (`_block_line`'s `starts`)."""
        return (
            self._fence is None
            and self._prev_blank
            and self._started
            and LETTER.match(partial) is not None
        )

    def feed(self, line: str) -> Line:
        if self._fence is not None:
            return self._fenced(line, self._fence)
        if not line.strip():
            self._prev_blank, self._prev_text, self._after_fence = True, False, False
            self._math_closer = None  # a formula never spans a blank line
            return Line("", "blank", False, False)
        if self._math_closer is not None:
            if self._math_closer in line:
                self._math_closer = None
            return Line(line, "text", False, False)
        line_info = self._block_line(line)
        self._prev_blank, self._started = False, True
        if line_info.kind not in ("fence", "code"):
            opened = _math.open_display(line)
            self._math_closer = opened.closer if opened is not None else None
        return line_info

    def _fenced(self, line: str, fence: Fence) -> Line:
        if fence.closes(line):
            # Text right after a top-level fence starts a new paragraph.
            self._fence, self._after_fence = None, not fence.prefix
            return Line(fence.closer, "fence", False, False)
        return Line(fence.body(line), "fence", False, False)

    def _block_line(self, line: str) -> Line:
        indent = _indent(line)
        marker = None if _HR.match(line) else _MARKER.match(line)
        paragraph_goes_on = self._prev_text and marker is not None and _numbered(marker)
        if marker and not self._items and (indent >= TAB or paragraph_goes_on):
            # Indented code, or a paragraph's next line: only "1." may interrupt a paragraph
            # ("The year\n1984. was" is no list).
            marker = None
        fence = _FENCE.match(line)
        after_blank, was_listed, top = self._prev_blank, bool(self._items), self._top_item()
        continues = (  # a paragraph's next line, even when not indented ("lazy")
            not after_blank
            and self._prev_text
            and marker is None
            and fence is None
            and not _interrupts(line)
        )
        if not (continues and was_listed):
            while self._items and indent < self._items[-1].col:
                self._items.pop()
        starts = (
            after_blank
            and self._started
            and indent == 0
            and not (marker and self._last == "list")
            and not (_QUOTE.match(line) and self._last == "quote")
        )
        self._last = self._last_element(line, marker is not None, continues, indent)
        left_list = was_listed and not self._items and marker is None
        blank = not after_blank and (self._after_fence or left_list)
        self._after_fence = False
        if fence is not None:
            interrupts = not after_blank and not self._items
            return self._open_fence(line, fence, starts, blank or interrupts)
        if marker is not None:
            return self._item(line, marker, starts, blank, top)
        return self._plain(line, continues, starts, blank)

    def _last_element(
        self, line: str, marker: bool, continues: bool, indent: int
    ) -> Literal["list", "quote", "other"]:
        if self._items or marker:
            return "list"
        if continues or (self._prev_blank and indent >= TAB and self._last == "list"):
            return self._last
        return "quote" if _QUOTE.match(line) else "other"

    def _top_item(self) -> _Item | None:
        return self._items[0] if self._items else None

    def _open_fence(self, line: str, match: re.Match[str], starts: bool, blank: bool) -> Line:
        run = match.group(2)
        fence = Fence(run[0], len(run), match.group(1), " " * (TAB * len(self._items)))
        self._fence, self._prev_text = fence, False
        return Line(fence.prefix + line[match.end(1) :], "fence", blank, starts)

    def _item(
        self, line: str, marker: re.Match[str], starts: bool, blank: bool, top: _Item | None
    ) -> Line:
        ordered = marker.group(3) is not None
        if not self._items and not self._prev_blank:
            # A new list: after a paragraph, or of the other kind after a list.
            blank = blank or top is None or top.ordered != ordered
        spaces = len(marker.group(4))
        col = marker.end(2) + (spaces if spaces <= 4 else 1)
        text = " " * (TAB * len(self._items)) + marker.group(2) + " " + line[marker.end() :]
        self._items.append(_Item(col, ordered))
        self._prev_text = True
        return Line(text, "item", blank, starts)

    def _plain(self, line: str, continues: bool, starts: bool, blank: bool) -> Line:
        lazy = continues and bool(self._items)
        kind: LineKind = "text"
        if not continues and not self._items and _indent(line) >= TAB:
            kind = "code"  # https://spec.commonmark.org/0.31.2/#indented-code-blocks
        elif _HEADING.match(line):
            kind = "heading"
        elif _QUOTE.match(line):
            kind = "quote"
        elif line.lstrip().startswith("|"):
            kind = "row"
        self._prev_text = kind not in ("heading", "code") and not _HR.match(line)
        if lazy:
            return Line(" " * (TAB * len(self._items)) + line.lstrip(), kind, False, False)
        if self._items:
            text = " " * (TAB * len(self._items)) + line[self._items[-1].col :]
            return Line(text, kind, blank, starts)
        return Line(line, kind, blank, starts)


def normalize(lines: list[str]) -> list[str]:
    """Rewrite CommonMark-style source lines so Python-Markdown reads them the same way."""
    scanner = BlockScanner()
    out: list[str] = []
    fenced: list[bool] = []
    for source in lines:
        line = scanner.feed(source)
        if line.blank_before and out and out[-1]:
            out.append("")
            fenced.append(False)
        out.append(line.text)
        fenced.append(line.kind == "fence")
    if scanner.fence is not None:
        # CommonMark: an unclosed fence runs to the end of the document (superfences would
        # drop it and render its content as Markdown).
        out.append(scanner.fence.closer)
        fenced.append(True)
    return _separate_tables(out, fenced)


def code_lines(lines: list[str]) -> list[bool]:
    """Which source lines are fenced or indented code (math must not look inside)."""
    scanner = BlockScanner()
    return [scanner.feed(line).kind in ("fence", "code") for line in lines]


def _separate_tables(lines: list[str], fenced: list[bool]) -> list[str]:
    """Put a blank line between a paragraph and a table that follows it directly.

    Python-Markdown only finds a table at the start of a block; GFM lets a table follow
    paragraph text (https://github.github.com/gfm/#tables-extension-).
    """
    out: list[str] = []
    for i, line in enumerate(lines):
        if (
            i >= 1
            and i + 1 < len(lines)
            and "|" in line
            and not fenced[i + 1]
            and "|" in lines[i + 1]
            and TABLE_DELIM.match(lines[i + 1])
            and lines[i - 1].strip()
            and "|" not in lines[i - 1]
            and not fenced[i - 1]
        ):
            out.append("")
        out.append(line)
    return out


# --- repairing the open block of a stream -------------------------------------------------

# A last line that is only the start of a block marker ("-", "1.", "##", "``", "|"), or a
# whole fence opener still being typed: wait for the rest of the line.
_PARTIAL_LINE = re.compile(
    r" *(?:[-+*]|\d{1,9}[.)]?|#{1,6}|[-=*_ ]+|>|`{1,2}|~{1,2}|`{3,}[^`]*|~{3,}.*|\|)? *$"
)
_PARTIAL_DELIM = re.compile(r" *\|?[ :|-]*$")
_BARE_URL = re.compile(r"(?:https?://|www\.)\S*")
_BACKTICKS = re.compile(r"`+")
_PENDING_AUTOLINK = re.compile(r"<(?:[A-Za-z][\w+.-]*:|[\w.+-]+@)[^\s<>]*$")


def repair(text: str) -> str:
    """Return the open block's source with unfinished syntax closed or hidden."""
    text = hold_partial_line(text)
    fence, context = _scan(text)
    if fence is not None:
        return _close_fence(text, fence)
    head = text[:context]
    inline = _math.mark_pending(text[context:])
    return hold_partial_line(_complete_table(head + repair_inline(inline)))


def hold_partial_line(text: str) -> str:
    """Drop an unterminated last line that is nothing yet but the start of a marker."""
    start = text.rfind("\n") + 1
    if start < len(text) and _PARTIAL_LINE.match(text, start):
        return text[:start]
    return text


def _scan(text: str) -> tuple[Fence | None, int]:
    """The fence left open at the end, and where the last inline run (paragraph) starts."""
    scanner = BlockScanner()
    context = offset = 0
    # The empty piece after a final line break is no blank line: the paragraph goes on.
    for source in text.removesuffix("\n").split("\n"):
        line = scanner.feed(source)
        if line.kind in ("blank", "fence", "code"):
            context = offset + len(source) + 1
        elif line.kind in ("item", "heading", "row"):
            context = offset
        offset += len(source) + 1
    return scanner.fence, min(context, len(text))


def _close_fence(text: str, fence: Fence) -> str:
    start = text.rfind("\n") + 1
    if start < len(text) and not text[start:].strip(" " + fence.char):
        text = text[:start]  # a closing fence being typed: it is about to close anyway
    if not text.endswith("\n"):
        text += "\n"
    return text + fence.indent + fence.char * fence.length


def _complete_table(text: str) -> str:
    """Give a table header being typed its delimiter row, so it shows as a table at once."""
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()  # the header's line is complete
    if _PARTIAL_DELIM.match(lines[-1]) and ("-" in lines[-1] or "|" in lines[-1]):
        header_at = len(lines) - 2
    else:
        header_at = len(lines) - 1
    if header_at < 0 or not lines[header_at].lstrip().startswith("|"):
        return text
    if header_at > 0 and "|" in lines[header_at - 1]:
        return text  # the table already has its header
    header = lines[header_at].strip().strip("|")
    columns = header.count("|") + 1
    return "\n".join([*lines[: header_at + 1], "|" + " --- |" * columns])


@dataclass(slots=True)
class _Open:
    char: str
    length: int
    at: int  # index of the delimiter run
    content: int  # index after it


class _InlineRepair:
    """One left-to-right pass over a paragraph: what to cut and which closers to append.

    Emphasis follows https://spec.commonmark.org/0.31.2/#emphasis-and-strong-emphasis
    loosely (flanking runs); it only has to get the common cases right, because it only
    affects the moments before the closing marker arrives.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.cuts: list[tuple[int, int]] = []
        self.opens: list[_Open] = []
        self.brackets: list[int] = []
        self.code_closer = ""
        self._runs: dict[int, list[int]] | None = None

    def run(self) -> str:
        text, i = self.text, 0
        while i < len(text):
            i = self._step(i)
        for start in self.brackets:
            self.cuts.append((start, self.text.index("[", start) + 1))
        return self._result()

    def _step(self, i: int) -> int:
        text, char = self.text, self.text[i]
        if char in "$\\" and (formula := _math.match(text, i, checked=True)) is not None:
            return formula.end  # LaTeX: its "_" and "*" are no emphasis
        if char == "\\":
            return i + 2
        if char == "`":
            return self._backticks(i)
        if char in "*_~":
            return self._delimiter(i)
        if char == "!" and i + 1 == len(text) and (i == 0 or text[i - 1].isspace()):
            self.cuts.append((i, i + 1))  # maybe an image "![" being typed
        elif char == "[" and (i == 0 or not text[i - 1].isalnum()):
            self.brackets.append(i - 1 if i > 0 and text[i - 1] == "!" else i)
        elif char == "]" and self.brackets:
            return self._link(i)
        elif char == "<" and _PENDING_AUTOLINK.match(text, i):
            self.cuts.append((i, i + 1))
            return len(text)
        elif (i == 0 or not text[i - 1].isalnum()) and (url := _BARE_URL.match(text, i)):
            return url.end()
        return i + 1

    def _backticks(self, i: int) -> int:
        text = self.text
        end = _run_end(text, i)
        run = text[i:end]
        close = self._closing_run(len(run), end)
        if close >= 0:
            return close + len(run)
        content_end = len(text.rstrip("`"))  # backticks at the end: the closer being typed
        if content_end > end and text[end:content_end].strip():
            self.code_closer = run
            self.cuts.append((content_end, len(text)))
        else:
            self.cuts.append((i, len(text)))
        return len(text)

    def _closing_run(self, length: int, after: int) -> int:
        """Start of the next backtick run of exactly `length` at or after `after`, or -1.

        The runs are indexed once per paragraph, so many unmatched backticks cost a
        binary search each instead of a scan to the end of the text.
        """
        if self._runs is None:
            self._runs = {}
            for match in _BACKTICKS.finditer(self.text):
                self._runs.setdefault(len(match.group()), []).append(match.start())
        starts = self._runs.get(length, [])
        index = bisect.bisect_left(starts, after)
        return starts[index] if index < len(starts) else -1

    def _delimiter(self, i: int) -> int:
        text = self.text
        end = _run_end(text, i)
        char, length = text[i], end - i
        if end == len(text):
            self.cuts.append((i, end))  # a marker still being typed
            return end
        if char == "~" and length != 2:
            return end
        before = text[i - 1] if i > 0 else " "
        after = text[end]
        if not before.isspace() and self._close(char, length):
            return end
        if not after.isspace() and not before.isalnum():
            self.opens.append(_Open(char, length, i, end))
        return end

    def _close(self, char: str, length: int) -> bool:
        for index in range(len(self.opens) - 1, -1, -1):
            if self.opens[index].char == char:
                opener = self.opens[index]
                del self.opens[index + 1 :]
                if length >= opener.length:
                    self.opens.pop()
                else:
                    opener.length -= length
                return True
        return False

    def _link(self, i: int) -> int:
        text = self.text
        start = self.brackets.pop()
        if i + 1 == len(text):
            self.cuts += [(start, text.index("[", start) + 1), (i, i + 1)]
            return i + 1
        if text[i + 1] != "(":
            return i + 1
        end = _paren_end(text, i + 2)
        if end < 0:  # "[text](htt": show the text alone until the URL is complete
            self.cuts += [(start, text.index("[", start) + 1), (i, len(text))]
            self.brackets = [b for b in self.brackets if b < start]
            return len(text)
        return end + 1

    def _result(self) -> str:
        closers = [self.code_closer]
        text_end = len(self.text.rstrip())
        if len(self.opens) > MAX_DEPTH:  # closing them all would nest that deep: leave them
            self.opens = []
        for opener in reversed(self.opens):
            if opener.content < text_end:  # some text follows the opener
                closers.append(opener.char * opener.length)
            else:
                self.cuts.append((opener.at, opener.content))
        kept, last = [], 0
        for start, end in sorted(self.cuts):
            kept.append(self.text[last : max(start, last)])
            last = max(last, end)
        kept.append(self.text[last:])
        body = "".join(kept)
        stripped = body.rstrip()
        return stripped + "".join(closers) + body[len(stripped) :]


def repair_inline(text: str) -> str:
    """Close open code spans and emphasis in a paragraph; hide half-typed links."""
    return _InlineRepair(text).run()


def _run_end(text: str, i: int) -> int:
    end = i
    while end < len(text) and text[end] == text[i]:
        end += 1
    return end


def _paren_end(text: str, i: int) -> int:
    """Index of the ")" that closes a link destination starting at i, or -1."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


# --- what Python-Markdown cannot render in bounded time -----------------------------------

# Python-Markdown scans from every "[" to its matching "]" (and from every "](" to its ")"),
# so unmatched brackets cost time quadratic in the block; some other inline patterns
# backtrack on long runs of "<", "`" or "\\"; and nested lists and quotes recurse once per
# level. Beyond these limits a block is shown as escaped text instead.
BRACKET_BUDGET = 40_000  # characters scanned for brackets, summed over the block
CHAR_LIMITS = {"<": 1_000, "`": 1_000, "\\": 1_000}
MAX_DEPTH = 16  # nested lists and quotes
# What Python-Markdown renders again at each update is bounded: a line, a paragraph's
# stretch between cuts, and a block that cannot be cut into parts.
MAX_STRETCH = 3_000  # a paragraph's text between two cuts
MAX_LINE = 4_000
MAX_BLOCK = 16_000
MAX_LINES = 400

_BRACKET = re.compile(r"[\[\]()]")
_NESTING = re.compile(r"(?: *(?:>|[-+*](?= )|\d{1,9}[.)](?= )))+")


class Guard:
    """Measures, one piece of source at a time, what makes a block costly to render.

    Every measure only grows as text is added, so the verdict on a whole block is the
    same whether it was fed at once or in pieces: the stream and `render_markdown`
    agree on which blocks fall back to escaped text.
    """

    def __init__(self) -> None:
        self._pos = 0
        self._open: list[int] = []  # positions of unmatched "[" and of "(" after "]"
        self._open_sum = 0
        self._closed = 0  # characters scanned by brackets already matched
        self._counts = dict.fromkeys(CHAR_LIMITS, 0)
        self._previous = ""
        self.depth = 0
        self.size = 0

    @property
    def risky(self) -> bool:
        open_cost = len(self._open) * self._pos - self._open_sum
        return (
            self._closed + open_cost > BRACKET_BUDGET
            or any(self._counts[char] > limit for char, limit in CHAR_LIMITS.items())
            or self.depth > MAX_DEPTH
        )

    def feed(self, text: str) -> None:
        """Account for `text` (brackets and runs); call `line` for each line's nesting."""
        self.size += len(text)
        for char in CHAR_LIMITS:
            self._counts[char] += text.count(char)
        if "[" in text or "]" in text or "(" in text or ")" in text:
            self._brackets(text)
        else:
            self._previous = text[-1:] or self._previous
        self._pos += len(text)

    def _brackets(self, text: str) -> None:
        for match in _BRACKET.finditer(text):  # only brackets: a loop per character is slow
            offset, char = match.start(), match.group()
            previous = text[offset - 1] if offset else self._previous
            if char == "[" or (char == "(" and previous == "]"):
                self._open.append(self._pos + offset)
                self._open_sum += self._pos + offset
            elif (char == "]" or char == ")") and self._open:
                start = self._open.pop()
                self._open_sum -= start
                self._closed += self._pos + offset - start
        self._previous = text[-1:] or self._previous

    def line(self, source: str, indent_levels: int = 0) -> None:
        """Note one whole line's nesting: quote and list markers before its text."""
        match = _NESTING.match(source)
        markers = len(match.group().replace(">", " > ").split()) if match else 0
        self.depth = max(self.depth, markers + indent_levels)


def inline_closed(text: str) -> bool:
    """Nothing inline is left open at the end of `text`: no emphasis, code span or link.

    A paragraph may be cut there and its parts rendered apart (an unmatched "[" stays
    literal either way and does not count).
    """
    scan = _InlineRepair(text)
    i = 0
    while i < len(text):
        i = scan._step(i)
    return not (scan.opens or scan.code_closer or scan.cuts)
