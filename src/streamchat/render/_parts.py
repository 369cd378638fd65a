"""The parts a growing paragraph is built from, and the pieces every block kind shares.

A paragraph is cut, where nothing inline is open, into parts rendered once each, so only
its last part is rendered again as text arrives (`Paragraph`); the live end is rendered
again only when more than plain words were added (`Live`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from streamchat import _math

from . import _repair
from ._sanitize import RAW_CLASS, escape_text

__all__ = ["Live", "Paragraph", "RawText", "Run", "push"]

Render = Callable[[str], str]

_PIECE = 150  # a paragraph is cut into parts of about this size, where it is safe
_PIECE_STEP = 100  # after a place where it could not be cut, look again this much later
# Where a paragraph may be cut: a space or line break after a character that is neither
# white space (the engine trims a part's end: "a\t b" would lose its tab) nor a hard
# break's backslash, and before a letter (nothing a line can start with: list, heading, quote,
# table...), a space before a code span or link, or right after a CJK sentence end.
_CUT = re.compile(
    r"(?<=[^\s\\])(?:[ \n](?=[^\W\d_])| (?=[`\[]))"  # before a letter, code span or link
    r"|(?<=[。！？])(?=[^\W\d_])"  # after a CJK sentence end
)


def push(pieces: list[str], piece: str) -> None:
    """Add `piece` to text kept as `pieces`, joining the last two while the one before is
    no longer than the last: a text grown a few characters at a time stays a few dozen
    pieces, and each character is copied a number of times that grows as the logarithm of
    the text's size (joining all the pieces every so often copies the whole text each time:
    a 12 MB line typed in 20-character appends would copy terabytes)."""
    if not piece:
        return
    pieces.append(piece)
    while len(pieces) > 1 and len(pieces[-2]) <= len(pieces[-1]):
        last = pieces.pop()
        pieces[-1] += last


class Run:
    """Append-only HTML kept as pieces, so growing it copies nothing already there.

    `unread` gives what was added since it was last read (by `unread` or `text`): a block
    reports its live HTML as the part the views already have plus that, so an update
    costs the size of what changed, not of the whole block.
    """

    __slots__ = ("_pieces", "_read", "size")

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._read = 0  # the size when last read
        self.size = 0

    def add(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self.size += len(piece)

    def text(self) -> str:
        """The whole HTML (joined once: the pieces become one)."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        self._read = self.size
        return self._pieces[0] if self._pieces else ""

    def unread(self) -> tuple[int, str]:
        """The size when last read, and what was added since."""
        start, size, index = self._read, self.size, len(self._pieces)
        while size > start:
            index -= 1
            size -= len(self._pieces[index])
        self._read = self.size
        return start, "".join(self._pieces[index:])


class RawText:
    """A block shown as escaped text: what is too costly to render again as it grows."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = [escape_text(line) for line in lines]

    def add(self, line: str, escaped: str | None = None) -> None:
        """A line, and its HTML if it is known (`escape_text(line)`)."""
        self._lines.append(escape_text(line) if escaped is None else escaped)

    def html(self, partial: str) -> str:
        lines = [*self._lines, escape_text(partial)] if partial else self._lines
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1
        if not end:
            return ""
        return f'<p class="{RAW_CLASS}">' + "\n".join(lines[:end]) + "</p>"


# Typed text that cannot change how the text before it renders (sentence punctuation
# only after a letter: "1." could start a list), a last word it can follow (not a
# marker, delimiter or entity being typed), and what would make a word a link.
_PLAIN_RUN = re.compile(r"(?:[^\W_]|[ ,;'’]|(?<=[^\W\d_])[.!?:)])*")
_PLAIN_END = re.compile(r"(?:^|[\s*_~`])((?:[^\W_]|[,;'’])*[^\W_][.!?:)]* *)$")
_URLISH = re.compile(r"www\.|[A-Za-z][\w+.-]*:|@", re.IGNORECASE)
# Closing tags after the last word: of the emphasis or code span it is typed in (the
# repaired text closes them), then of the block.
_CLOSING = re.compile(r"(?:</(?:strong|em|del|code)>)*(?:</(?:p|li|ul|ol|blockquote)>\n?)+$")


class Live:
    """The live end of a paragraph or list: rendered again as it grows, except when only
    plain words were added after a plain word, which go in before the closing tags.

    Most updates of a typed answer add just that, and the engine's fixed cost per
    call is most of what an update costs.
    """

    def __init__(self, render: Render, repair: Render) -> None:
        self._render = render
        self._repair = repair
        self._base: str | None = None  # the text last rendered, if it ends in a plain word
        self._html = ""
        self._closing = 0
        self._word = 0  # where the base's last word starts
        self._shown = ("", "")  # the text and HTML last returned

    def html(self, text: str) -> str:
        base = self._base
        if (
            base is not None
            and text.startswith(base)
            and _PLAIN_RUN.fullmatch(text, len(base)) is not None
            and _URLISH.search(text, self._word) is None
        ):
            added = escape_text(text[len(base) :])
            self._shown = (
                text,
                self._html[: -self._closing] + added + self._html[-self._closing :],
            )
            return self._shown[1]
        self._html = self._render(self._repair(text))
        closing = _CLOSING.search(self._html)
        self._closing = len(closing.group()) if closing else 0
        # The text must end in a plain word that is also the end of the HTML's text:
        # not inside a code span or block, a link being typed, or anything repaired.
        end = _PLAIN_END.search(text[-200:])
        before = self._html[: len(self._html) - self._closing]
        plain = self._closing and end is not None and before.endswith(end.group(1))
        self._base = text if plain else None
        self._word = len(text) - len(end.group(1)) if end is not None else 0
        self._shown = (text, self._html)
        return self._html

    def final(self, text: str) -> str:
        """The text's HTML as finished: what was shown, if nothing in it was repaired."""
        if self._shown[0] == text and self._repair(text) == text:
            return self._shown[1]
        return self._render(text)


def _one_paragraph(block_html: str) -> bool:
    return (
        block_html.startswith("<p>")
        and block_html.endswith("</p>")
        and block_html.count("<p>") == 1
    )


class Paragraph:
    """A paragraph that may grow long: cut, where nothing inline is open, into parts
    rendered once each, so only its last part is rendered again as text arrives.

    A cut goes at a space or line break (or after a CJK full stop) followed by a letter,
    once the part is `_PIECE` long, and only where `_repair.inline_closed` says no
    emphasis, code span or link spans it and the part renders as one plain paragraph:
    then "<p>" + part + separator + rest is what the whole paragraph renders as. Cuts
    depend only on the text before them, so streaming and a whole render cut alike.
    """

    def __init__(self, render: Render, repair: Render, render_whole_lines: Render) -> None:
        self._render = render
        self._repair = repair
        self._render_whole_lines = render_whole_lines  # a part of whole lines, faster
        # Positions count from the paragraph's start; `_text` holds its whole lines
        # (each with its "\n") from `_base` on: what is before the last cut is dropped.
        self._text = ""
        self._base = 0
        self._start = 0  # where the part after the last cut starts
        self._seen = 0  # cut candidates before this position were considered
        self._check = _PIECE  # the part length from which a cut is considered
        self._inner = Run()  # finished parts' HTML without <p>, each with its separator
        self._trailing = ""  # the white space that ends `_inner`
        self._trailing_read = ""  # ... when `_inner` was last read
        self._widest = 0  # the longest stretch between cuts
        self._live = Live(render, repair)
        self.guard = _repair.Guard()  # measures the whole lines after the last cut
        self._guarded = 0  # where the text `guard` measures starts

    def add(self, source: str) -> None:
        self._text = "".join((self._text, source, "\n"))  # (one copy of a long line)
        self._scan()
        if self._guarded != self._start:  # cut since: measure the new last part
            self.guard, self._guarded = _repair.Guard(), self._start
            self.guard.feed(self._text[self._start - self._base :])
        else:
            self.guard.feed(source)  # (in two pieces: no copy of a long line)
            self.guard.feed("\n")
        drop = min(self._start - self._base, len(self._text))
        self._text, self._base = self._text[drop:], self._base + drop

    def delimiters(self) -> int:
        """Emphasis delimiters in the whole lines after the last cut."""
        return sum(map(self._text[max(0, self._start - self._base) :].count, "*_~"))

    def lines(self) -> int:
        """Whole lines after the last cut: each costs the engine's block rules again."""
        return self._text.count("\n", max(0, self._start - self._base))

    def stretch(self, partial: str = "") -> int:
        """The longest stretch without a cut so far, with the unfinished line `partial`."""
        if partial:
            self._scan(partial)
        end = self._base + len(self._text) + len(partial)
        return max(self._widest, end - self._start)

    def cut_in_lines(self) -> bool:
        """No part was cut in the line being typed: "a\n 1." cuts before " [", and the
        line " 1. [" then starts a list, no line of the paragraph."""
        return self._start <= self._base + len(self._text)

    def last_cut_in(self, partial: str) -> int:
        """Where in the unfinished line `partial` the part after the last cut starts."""
        self._scan(partial)
        return max(0, self._start - self._base - len(self._text))

    def _scan(self, partial: str = "") -> None:
        base, text = self._base, self._text + partial
        while match := _CUT.search(
            text,
            max(self._seen, self._start + self._check) - base,
            # A cut further than MAX_STRETCH is none (the separator and the character
            # after it are seen): a long line without one is not searched to its end.
            self._start + _repair.MAX_STRETCH + 2 - base,
        ):
            at = base + match.start()
            if at - self._start > _repair.MAX_STRETCH:
                break  # no cut for too long: the block shows as text (`_Block._costly`)
            separator = match.group()
            part = text[self._start - base : at - base]
            # The separator comes next: a delimiter run ending the part can grow no more.
            closed = _repair.inline_closed(part + separator)
            closed = closed and not _math.may_go_on(part, separator)
            render = self._render_whole_lines if at - base <= len(self._text) else self._render
            part_html = render(part) if closed else ""
            if _one_paragraph(part_html):
                self._widest = max(self._widest, at - self._start)
                self._add_part(part_html[3:-4] + separator)
                self._start, self._check = at + len(separator), _PIECE
                continue
            self._check = at - self._start + _PIECE_STEP
        self._seen = max(self._seen, base + len(text) - 1)

    def _add_part(self, part: str) -> None:
        self._inner.add(part)
        core = part.rstrip()
        self._trailing = part[len(core) :] if core else self._trailing + part

    def html(self, partial: str, final: bool) -> str:
        return self._whole(self._rest(partial, final))

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """(how much of the HTML last returned is still its start, the HTML after it)."""
        rest = self._rest(partial, False)
        if not shown or not self._inner.size:
            return 0, self._whole(rest)
        start, added = self._inner.unread()
        if not start:
            return 0, self._whole(rest)
        trailing, self._trailing_read = self._trailing_read, self._trailing
        # "<p>" and the parts before the white space that ended them are as shown.
        return 3 + start - len(trailing), self._joined(trailing + added, rest)

    def _rest(self, partial: str, final: bool) -> str:
        """The HTML of the text after the last cut."""
        if partial:
            self._scan(partial)
        rest_text = (self._text + partial)[self._start - self._base :]
        return self._live.final(rest_text) if final else self._live.html(rest_text)

    def _whole(self, rest: str) -> str:
        if not self._inner.size:
            return rest
        self._trailing_read = self._trailing
        return "<p>" + self._joined(self._inner.text(), rest)

    def _joined(self, inner: str, rest: str) -> str:
        """`inner`, the end of the parts' HTML (with at least their trailing white space),
        and the rest's HTML, after "<p>"."""
        if rest.startswith("<p>"):
            return inner + rest[3:]
        head = inner[: len(inner) - len(self._trailing)] + "</p>"
        return head + ("\n" + rest if rest else "")
