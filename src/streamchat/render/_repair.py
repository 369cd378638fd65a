"""Repairing the open block of a stream, and the measures that keep it cheap.

`repair` makes an unfinished block render the way it will look once finished, or hides
what is still undecided: an open fence already shows as code (CommonMark runs it to the
end of the document), open emphasis and code spans are closed, a half-typed link or
marker never shows, a table header being typed gets its delimiter row, and a formula
being typed is ended by `_math.PENDING`. So raw Markdown syntax never flashes on screen.

`Guard` measures what would make a block costly to render again and again while it grows
(bracket runs, deep nesting); `inline_closed` says where a paragraph may be cut into parts
rendered apart.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from streamchat import _math

__all__ = ["Guard", "hold_partial_line", "inline_closed", "repair", "repair_inline", "risky"]

# A last line that is only the start of a block marker ("-", "1.", "##", "``", "|"), or a
# whole fence opener still being typed: wait for the rest of the line.
_PARTIAL_LINE = re.compile(
    r" *(?:[-+*]|\d{1,9}[.)]?|#{1,6}|[-=*_ ]+|>|`{1,2}|~{1,2}|`{3,}[^`]*|~{3,}.*|\|)? *$"
)
_PARTIAL_DELIM = re.compile(r" *\|?[ :|-]*$")
_BARE_URL = re.compile(r"(?:https?://|www\.)\S*")
_BACKTICKS = re.compile(r"`+")
TABLE_DELIM = re.compile(r" *\|? *:?-+:? *(?:\| *:?-+:? *)*\|? *$")
_PENDING_AUTOLINK = re.compile(r"<(?:[A-Za-z][\w+.-]*:|[\w.+-]+@)[^\s<>]*$")


def repair(md: MarkdownIt, text: str) -> str:
    """The open block's source with unfinished syntax closed or hidden."""
    text = hold_partial_line(text)
    start = _last_inline(md, text)
    if start is None:
        return text  # it ends in code (an open fence shows as code already) or nothing
    inline = repair_inline(_math.mark_pending(text[start:]))
    return hold_partial_line(_complete_table(text[:start] + inline))


def _last_inline(md: MarkdownIt, text: str) -> int | None:
    """Where the line starts on which the text's last inline run (a paragraph, a
    heading, a table row) begins, if that run reaches the end of the text."""
    tokens: list[Token] = []
    md.block.parse(text, md, {}, tokens)
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    for token in reversed(tokens):
        if token.map is None or token.nesting != 0:
            continue
        if token.type not in ("inline", "math_block") or token.map[1] < lines:
            return None
        return _line_start(text, token.map[0])
    return None


def _line_start(text: str, line: int) -> int:
    position = 0
    for _ in range(line):
        position = text.index("\n", position) + 1
    return position


WIDEST = 64  # columns of a header being typed that shows as a table at once


def hold_partial_line(text: str) -> str:
    """Drop an unterminated last line that is nothing yet but the start of a marker."""
    start = text.rfind("\n") + 1
    if start < len(text) and _PARTIAL_LINE.match(text, start):
        return text[:start]
    return text


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
    if columns > WIDEST:
        return text  # rendered as a table at each update, it would cost its width
    return "\n".join([*lines[: header_at + 1], "|" + " --- |" * columns])


_LOOK_BACK = 64  # open delimiters a closer looks back over for its opener


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
        if not any(opener.char == char for opener in self.opens[-_LOOK_BACK:]):
            return False  # (bounded: a run of other openers costs no scan per closer)
        for index in range(len(self.opens) - 1, max(-1, len(self.opens) - 1 - _LOOK_BACK), -1):
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


# --- what is too costly to render again at each update ------------------------------------

# Every update renders the open part of a block again, so its cost must stay bounded even
# on degenerate input: unmatched brackets make link parsing scan far ahead, long runs of
# "<", "`" or "\\" make the inline rules try many starts, and nesting multiplies the
# work per line. Beyond these limits a block is shown as escaped text instead.
BRACKET_BUDGET = 40_000  # characters scanned for brackets, summed over the block
CHAR_LIMITS = {"<": 1_000, "`": 1_000, "\\": 1_000}
# Emphasis delimiters in the text rendered again at each update (a paragraph's part
# after its last cut): markdown-it pairs them in time that grows faster than their count.
DELIMITER_LIMIT = 300
MAX_DEPTH = 16  # nested lists and quotes
# What is rendered again at each update is bounded: a line, a paragraph's stretch between
# cuts, and a block that cannot be cut into parts.
MAX_STRETCH = 3_000  # a paragraph's text between two cuts
MAX_LINE = 4_000
MAX_BLOCK = 16_000
MAX_LINES = 200  # a block parsed again whole at each update: ~0.08 ms of CPU a line

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


def risky(text: str) -> bool:
    """A piece of source too costly to render again at each update, by `Guard`."""
    guard = Guard()
    guard.feed(text)
    return guard.risky


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
