"""Pacing for people: words per minute, and breaths where a reader takes them.

A typewriter at a steady rate races through the end of a paragraph and into a code
block; a room reading along on a projector needs the pauses a speaker makes. Two
pieces, both sans-I/O like the typewriter they serve:

* `PauseMarks` reads the answer's Markdown as it arrives and says where the reveal
  should halt and for how long: a short pause after a sentence's end, a longer one at a
  paragraph's end and before a code block (a fence line) or a table (its first row).
  Nothing inside a code block pauses. Work per push is proportional to the new text.
* `PausingTypewriter` is a `Typewriter` whose clock stops during a pause: it cuts what
  its schedule reveals at the next mark, holds the rest, and shifts the schedule by the
  pause, so the text after a pause keeps the typewriter's pace (no burst of what fell
  due meanwhile). Speed 0 (the Instant button) drops every pause still ahead.

`chars_per_second(wpm)` converts a reading pace to the typewriter's unit.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from .typewriter import Typewriter

__all__ = [
    "CHARS_PER_WORD",
    "PauseMarks",
    "Pauses",
    "PausingTypewriter",
    "chars_per_second",
    "words_per_minute",
]

# An English word is ~4.7 letters on average, plus its space: words per minute times six
# is characters per minute (the typing-test convention uses five, which reads too fast).
CHARS_PER_WORD = 6


def chars_per_second(wpm: float) -> float:
    """The typewriter speed (grapheme clusters per second) for `wpm` words per minute."""
    if not (wpm > 0 and math.isfinite(wpm)):
        raise ValueError(f"wpm must be a positive number, got {wpm!r}")
    return wpm * CHARS_PER_WORD / 60


def words_per_minute(speed: float) -> float:
    """The reading pace of a typewriter `speed` (the inverse of `chars_per_second`)."""
    return speed * 60 / CHARS_PER_WORD


@dataclass(frozen=True)
class Pauses:
    """How long the reveal halts (seconds) at each kind of break."""

    sentence: float = 0.25
    paragraph: float = 0.6
    block: float = 0.8  # before a code block or a table


# A sentence ends at . ! ? (or an ellipsis), maybe closed by quotes, brackets or emphasis
# markers, then a space: the pause comes after the space, before the next word.
_SENTENCE = re.compile(r"[.!?\u2026][\"'\u2019\u201d)\]*_]*[ \t]")
_FENCE = re.compile(r" {0,3}(?:```|~~~)")
_FENCE_LINES = re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE)
# Code points of one push scanned line by line for marks; past them a burst (a generator
# yielding a megabyte at once) is only followed (code or not), at regex speed: 500,000
# short lines scanned in Python held the loop thread for 0.6 s.
_SCANNED = 16_384
_TABLE = re.compile(r" {0,3}\|")


class PauseMarks:
    """Where to pause in a stream of Markdown: `feed(text)` returns (position, seconds)
    marks, a position being code points of the whole text shown before the pause.

    Lines are classified by their first characters once enough of them arrived: a
    fence line opens or closes a code block, a line starting with "|" after a line that
    did not is a table's first row. https://github.github.com/gfm/#fenced-code-blocks
    """

    def __init__(self, pauses: Pauses = Pauses()) -> None:
        self._pauses = pauses
        self._end = 0  # code points fed so far
        self._line_start = 0
        self._head = ""  # the current line's first characters (up to 8)
        self._decided = False  # the current line's kind is known
        self._kind = "text"  # "fence", "table", "blank", "text"
        self._last = ""  # the current line's last characters, for a sentence across feeds
        self._previous = "blank"  # the kind of the line before
        self._in_code = False

    def feed(self, text: str) -> list[tuple[int, float]]:
        if len(text) <= _SCANNED:
            return self._scan(text)
        marks = self._scan(text[:_SCANNED])
        self._follow(text[_SCANNED:])
        return marks

    def _scan(self, text: str) -> list[tuple[int, float]]:
        marks: list[tuple[int, float]] = []
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                self._end += 1  # the newline
                self._end_line(marks)
            self._add(piece, marks)
        return marks

    def _add(self, piece: str, marks: list[tuple[int, float]]) -> None:
        start = self._end
        self._end += len(piece)
        if len(self._head) < 8:
            self._head += piece[: 8 - len(self._head)]
            self._decide(marks, final=False)
        if not self._in_code and self._kind != "fence" and piece:
            context = self._last
            for match in _SENTENCE.finditer(context + piece):
                if match.end() > len(context):
                    marks.append((start + match.end() - len(context), self._pauses.sentence))
            self._last = (context + piece)[-4:]

    def _decide(self, marks: list[tuple[int, float]], *, final: bool) -> None:
        """Classify the current line once its head tells (or it ended)."""
        if self._decided:
            return
        head = self._head
        if _FENCE.match(head):
            self._decided, self._kind = True, "fence"
            if not self._in_code:
                marks.append((self._line_start, self._pauses.block))
            self._in_code = not self._in_code
            return
        if self._in_code:
            self._decided = final or len(head) >= 4
            return
        if _TABLE.match(head):
            self._decided, self._kind = True, "table"
            if self._previous != "table":
                marks.append((self._line_start, self._pauses.block))
            return
        stripped = head.lstrip(" ")
        if final or len(stripped) >= 3 or (stripped and stripped[0] not in "`~|"):
            self._decided = True
            self._kind = "text" if head.strip() else ("blank" if final else "text")

    def _follow(self, text: str) -> None:
        """Keep up with `text` without marking it: whether a code block is open, and the
        state of the line it ends in."""
        first, last = text.find("\n"), text.rfind("\n")
        if first < 0:
            self._head = (self._head + text[:8])[:8]
            self._last = (self._last + text)[-4:]
            self._end += len(text)
            return
        self._head = (self._head + text[:first][:8])[:8]
        self._end += first + 1
        self._end_line([])
        lines = text[first + 1 : last + 1]  # whole lines
        if lines:
            fences = len(_FENCE_LINES.findall(lines))
            self._in_code ^= fences % 2 == 1
            final = lines[:-1].rsplit("\n", 1)[-1]
            fenced = bool(_FENCE.match(final))
            self._previous = (
                "fence"
                if fenced
                else "table"
                if _TABLE.match(final)
                else "text"
                if final.strip()
                else "blank"
            )
            self._end += len(lines)
            self._line_start = self._end
        tail = text[last + 1 :]
        self._head, self._last = tail[:8], tail[-4:]
        self._end += len(tail)

    def _end_line(self, marks: list[tuple[int, float]]) -> None:
        self._decide(marks, final=True)
        kind = "blank" if not self._head.strip() and self._kind != "fence" else self._kind
        if kind == "blank" and self._previous not in ("blank", "fence") and not self._in_code:
            marks.append((self._end, self._pauses.paragraph))
        self._previous = kind
        self._line_start = self._end
        self._head, self._last, self._decided, self._kind = "", "", False, "text"


class PausingTypewriter(Typewriter):
    """A `Typewriter` that halts at the marks `PauseMarks` finds (see the module).

    Its schedule runs on a clock that stops while a pause lasts: every time it passes
    to the schedule is `now - offset`, `offset` the pauses so far.
    """

    def __init__(
        self, speed: float = 120.0, step: int = 1, *, pauses: Pauses = Pauses(), **options: object
    ) -> None:
        super().__init__(speed, step, **options)  # type: ignore[arg-type]
        self._scanner = PauseMarks(pauses)
        self._marks: deque[tuple[int, float]] = deque()  # sorted by position
        self._shown = 0  # code points handed on
        self._held = ""  # taken from the schedule but not handed on: after a pause
        self._offset = 0.0
        self._until = -math.inf  # the pause in progress ends then
        self._instant = False

    @Typewriter.speed.setter  # type: ignore[attr-defined, misc, untyped-decorator]
    def speed(self, value: float) -> None:
        Typewriter.speed.fset(self, value)  # type: ignore[attr-defined]
        # Speed 0 is "show the rest at once": no pause may hold it back any more.
        self._instant = value == 0
        if self._instant:
            self._marks.clear()
            self._until = -math.inf

    @property
    def pending(self) -> int:
        return super().pending + len(self._held)

    @property
    def finished(self) -> bool:
        return super().finished and not self._held

    def push(self, text: str, now: float) -> None:
        marks = self._scanner.feed(text)
        for mark in () if self._instant else marks:
            if self._marks and mark < self._marks[-1]:  # a line's kind decided late
                self._marks = deque(sorted([*self._marks, mark]))
            else:
                self._marks.append(mark)
        super().push(text, now - self._offset)

    def close(self, now: float) -> None:
        super().close(now - self._offset)

    def take(self, now: float) -> str:
        if now < self._until:
            return ""
        text, self._held = self._held + super().take(now - self._offset), ""
        while self._marks and self._marks[0][0] < self._shown:
            self._marks.popleft()  # a mark found after its place was shown: too late
        if self._marks and self._marks[0][0] <= self._shown + len(text) and text:
            position, seconds = self._marks.popleft()
            while self._marks and self._marks[0][0] == position:  # one pause, the longest
                seconds = max(seconds, self._marks.popleft()[1])
            cut = position - self._shown
            text, self._held = text[:cut], text[cut:]
            self._until = now + seconds
            self._offset += seconds
        self._shown += len(text)
        return text

    def next_deadline(self) -> float | None:
        if self._held:
            return self._until
        deadline = super().next_deadline()
        if deadline is None:
            return None
        return max(deadline + self._offset, self._until)
