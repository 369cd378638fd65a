"""Typewriter: reveal streamed text at a steady pace, one grapheme cluster at a time.

Sans-I/O: the caller passes the clock in as `now` floats (seconds, any monotonic
origin) and decides how to wait; `next_deadline()` says when to call `take()` next.

Why it is built this way:

* Characters are extended grapheme clusters (UAX #29), so a flag, an emoji ZWJ
  family or a letter with its combining accent is revealed whole, never as a
  broken half. Segmentation is incremental: only the last, still open cluster is
  segmented again when more text arrives, so a long answer costs O(n) overall.
  https://www.unicode.org/reports/tr29/#Grapheme_Cluster_Boundary_Rules
* The pace is deadline-based: the count due at `now` is computed from the time
  elapsed since an anchor, never by summing intervals, so late wake-ups do not
  make the rate drift.
* Wake-ups are coalesced: two non-empty takes are at least `1 / max_rate` apart;
  at high speed one take reveals several steps, still on the same schedule.
* The backlog is held as text, not as one string per cluster (76 bytes per CJK
  character): chunks of text, and cluster boundaries only for chunks where a
  cluster is more than one code point (`_Backlog`). Most text of any script needs
  no segmentation at all: a code point joins its neighbour only if it is one of the
  few classes `_JOINS` names, so text without them is one cluster per code point.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import deque
from dataclasses import dataclass, replace

import regex

__all__ = ["Typewriter"]

_CLUSTER = regex.compile(r"\X")
# GB4/GB5: a break always follows a control or LF, so only those clusters are final.
# Any other cluster can still take an Extend or ZWJ (GB9), a CR can take an LF (GB3).
# https://www.unicode.org/reports/tr29/#GB4
_SEALED = regex.compile(r"[\p{GCB=Control}\p{GCB=LF}]\Z")
# The code points that can share a cluster with a neighbour: every rule of UAX #29 that
# does not break between two code points (GB3, GB6-GB9c, GB11-GB13) has one of these
# on one side (a Hangul L before an LV or LVT; CR before LF). Text without any is one
# cluster per code point. https://www.unicode.org/reports/tr29/#Grapheme_Cluster_Boundary_Rules
_JOINS = regex.compile(
    r"[\r\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}"
    r"\p{GCB=Regional_Indicator}\p{GCB=L}\p{GCB=V}\p{GCB=T}]"
)
# Pieces of the backlog are joined into chunks of at least this many code points, so
# a stream of small pieces costs a few bytes per character, not an object per piece.
_CHUNK = 4096

# A chunk of the backlog: its text and the end (in code points) of each of its
# clusters, or None when each code point is a cluster.
_Chunk = tuple[str, "array[int] | None"]


def _clusters(text: str) -> _Chunk:
    """`text` as a chunk: its cluster ends only where a cluster is longer than 1."""
    if not _JOINS.search(text):
        return text, None
    ends = array("I", itertools.accumulate(map(len, _CLUSTER.findall(text))))
    return (text, None) if len(ends) == len(text) else (text, ends)


def _size(chunk: _Chunk) -> int:
    """Clusters in `chunk`."""
    text, ends = chunk
    return len(text) if ends is None else len(ends)


class _Backlog:
    """Final clusters not yet taken, compactly: a few bytes per character of any script.

    Pieces are kept as they came until they add up to `_CHUNK` code points, then
    joined into one chunk; `take` slices clusters off the first chunk.
    """

    def __init__(self) -> None:
        self._chunks: deque[_Chunk] = deque()
        self._open: list[_Chunk] = []  # the last pieces, not yet joined into a chunk
        self._open_chars = 0
        self._first = 0  # clusters of the first chunk already taken

    def add(self, chunk: _Chunk) -> None:
        self._open.append(chunk)
        self._open_chars += len(chunk[0])
        if self._open_chars >= _CHUNK:
            self._join()

    def _join(self) -> None:
        pieces, self._open, self._open_chars = self._open, [], 0
        if len(pieces) == 1:
            self._chunks.append(pieces[0])
            return
        text = "".join(piece for piece, _ in pieces)
        if all(ends is None for _, ends in pieces):
            self._chunks.append((text, None))
            return
        ends = array("I")
        offset = 0
        for piece, piece_ends in pieces:
            if piece_ends is None:
                ends.extend(range(offset + 1, offset + len(piece) + 1))
            else:
                ends.extend(offset + end for end in piece_ends)
            offset += len(piece)
        self._chunks.append((text, ends))

    def take(self, count: int) -> str:
        """The next `count` clusters' text (there are at least that many)."""
        parts = []
        while count > 0:
            if not self._chunks:
                self._join()
            text, ends = chunk = self._chunks[0]
            first = self._first
            taken = min(count, _size(chunk) - first)
            if ends is None:
                parts.append(text[first : first + taken])
            else:
                parts.append(text[ends[first - 1] if first else 0 : ends[first + taken - 1]])
            count -= taken
            if first + taken == _size(chunk):
                self._chunks.popleft()
                self._first = 0
            else:
                self._first = first + taken
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Step j (j >= 0) reveals clusters up to `base + (j + 1) * step` at `anchor + j * interval`.

    `rate` is in clusters per second; 0 means every available cluster is due at once.
    `anchor` is None until text first arrives: nothing is due before that.
    """

    rate: float
    step: int
    anchor: float | None = None
    base: int = 0

    @property
    def interval(self) -> float:
        return self.step / self.rate

    def deadline(self, j: int) -> float:
        """When step j is due. The one formula `steps_due` agrees with, float for float."""
        assert self.anchor is not None
        return self.anchor + j * self.interval

    def steps_due(self, now: float) -> int:
        """How many steps have a deadline <= now (exactly consistent with `deadline`)."""
        if self.anchor is None or now < self.anchor:
            return 0
        j = int((now - self.anchor) / self.interval)
        while self.deadline(j + 1) <= now:
            j += 1
        while j > 0 and self.deadline(j) > now:
            j -= 1
        return j + 1

    def due(self, now: float) -> float:
        """Clusters due by `now` (an int, or infinity at rate 0)."""
        if self.rate == 0:
            return math.inf
        return self.base + self.step * self.steps_due(now)

    def whole_steps(self, count: int) -> int:
        """The largest count <= `count` that ends on a step boundary."""
        if self.rate == 0:
            return count
        return self.base + self.step * ((count - self.base) // self.step)


class Typewriter:
    """A pacing buffer between a text stream and a display.

    `speed` is grapheme clusters per second (0 = show text as it arrives) and `step`
    clusters are revealed per tick (ignored at speed 0). Both are settable; a change
    applies from the next `take`/`push`, re-anchoring the schedule there.

    `max_lag` (seconds, off by default) turns on catch-up. The lag is how long the
    text received but not yet due (the backlog) would take to reveal at `speed`.
    Rule: while the lag exceeds max_lag, the effective speed is
    `speed * lag / max_lag`, i.e. the backlog is paced to be shown within max_lag
    seconds; it is re-evaluated at every push and take. After a burst the lag
    shrinks smoothly (exponentially, time constant max_lag, no jump) back to
    max_lag, in about `max_lag * ln(lag / max_lag)` seconds, and the pace is
    `speed` again. Under a sustained supply faster than `speed`, the display keeps
    up with the supply, each cluster appearing about max_lag seconds after it
    arrived.

    `max_backlog` (clusters, None for no limit) bounds the text held back: when
    more than that is waiting, the typewriter drops to speed 0 and shows all of it
    at the next take, then resumes its pace. A stream far faster than `speed`
    (a 100 MB answer at 10 chars/s) would otherwise be held in memory whole.

    `keeps_time` (off by default): a typewriter that ran out of text keeps its
    schedule instead of starting a new one when text comes: what is overdue shows at
    once. Answers typed side by side on one schedule (a race at equal speed,
    `_pacing.Lockstep`) so stay at the same place; one whose text came late rejoins the
    others instead of typing behind them for the rest of the answer.

    While the stream is open the last cluster is held back if a later push could
    still extend it (every cluster that does not end in a control or LF, e.g. "e"
    before U+0301, or a lone regional indicator); `close()` releases it.
    """

    def __init__(
        self,
        speed: float = 120.0,
        step: int = 1,
        *,
        max_lag: float | None = None,
        max_rate: float = 60.0,
        max_backlog: int | None = 200_000,
    ) -> None:
        if max_lag is not None and not max_lag > 0:
            raise ValueError(f"max_lag must be > 0 or None, got {max_lag!r}")
        if not (max_rate > 0 and math.isfinite(max_rate)):
            raise ValueError(f"max_rate must be a positive number, got {max_rate!r}")
        self._speed = _check_speed(speed)
        self._step = _check_step(step)
        self._max_lag = max_lag
        self._max_backlog = max_backlog
        self._min_gap = 1.0 / max_rate
        self._backlog = _Backlog()  # final clusters not yet taken
        self._tail = ""  # the last cluster while it may still grow
        self._available = 0  # clusters taken + clusters in the backlog
        self._taken = 0
        self._closed = False
        self._now = -math.inf  # latest clock value seen; the clock never goes back
        self._last_reveal = -math.inf
        self._schedule = _Schedule(self._speed, self._step)
        self._settings_changed = False
        self.keeps_time = False

    # -- settings -----------------------------------------------------------------

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._speed = _check_speed(value)
        self._settings_changed = True

    @property
    def step(self) -> int:
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = _check_step(value)
        self._settings_changed = True

    # -- state --------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Clusters received but not yet taken (including a held-back last cluster)."""
        return self._available - self._taken + (1 if self._tail else 0)

    @property
    def finished(self) -> bool:
        """True once the stream is closed and every cluster has been taken."""
        return self._closed and self._taken == self._available

    # -- input --------------------------------------------------------------------

    def push(self, text: str, now: float) -> None:
        """Add text received at `now`."""
        if self._closed:
            raise RuntimeError("push() after close(): the stream has ended")
        self._sync(now)
        text, ends = _clusters(self._tail + text)
        if not text:
            return
        # The last cluster is held back while it may still grow.
        start = len(text) - 1 if ends is None else (ends[-2] if len(ends) > 1 else 0)
        last = text[start:]
        if _SEALED.search(last):
            self._tail = ""
        else:
            self._tail = last
            text = text[:start]
            if ends is not None:
                ends = ends[:-1]
        self._add((text, ends))

    def close(self, now: float) -> None:
        """The stream has ended: the rest is drained at the same pace. Idempotent."""
        if self._closed:
            return
        self._sync(now)
        tail, self._tail = self._tail, ""
        self._add((tail, array("I", [len(tail)]) if len(tail) > 1 else None))
        self._closed = True

    # -- output -------------------------------------------------------------------

    def take(self, now: float) -> str:
        """Return the text due by `now` that was not taken yet ("" if none or too soon)."""
        self._sync(now)
        if self._now < self._gate():
            return ""
        target = int(min(self._schedule.due(self._now), self._reachable()))
        if target <= self._taken:
            return ""
        text = self._backlog.take(target - self._taken)
        self._taken = target
        self._last_reveal = self._now
        return text

    def next_deadline(self) -> float | None:
        """When `take` will next return text; None until more text is pushed (or close).

        A time in the past means "now". After a speed/step change it is the last
        clock value seen, so the caller takes at once and the change applies.
        """
        if self._reachable() <= self._taken:
            return None
        if self._settings_changed:
            return self._now
        return max(self._gate(), self._due_time())

    # -- internals ----------------------------------------------------------------

    def _add(self, chunk: _Chunk) -> None:
        """Make final clusters available, restarting the schedule if it ran dry."""
        if not chunk[0]:
            return
        self._restart_if_starved()
        self._backlog.add(chunk)
        self._available += _size(chunk)
        self._sync(self._now)

    def _restart_if_starved(self) -> None:
        """Re-anchor at `now` if the step waiting for this text is already overdue.

        The network, not the reader, was late: revealing everything the schedule
        "owes" would be a burst, so the new text starts its own schedule now.
        """
        s = self._schedule
        if s.rate == 0:
            return
        waiting = (self._available - s.base) // s.step  # first step not fully available
        if s.anchor is None or (not self.keeps_time and s.deadline(waiting) < self._now):
            self._schedule = replace(s, anchor=self._now, base=s.base + waiting * s.step)

    def _sync(self, now: float) -> None:
        """Advance the clock; re-anchor if the settings or the catch-up speed changed."""
        self._now = max(self._now, now)
        rate = self._wanted_rate()
        if self._settings_changed or rate != self._schedule.rate:
            self._retime(rate)

    def _wanted_rate(self) -> float:
        if self._max_backlog is not None and self.pending > self._max_backlog:
            return 0.0
        if self._max_lag is None or self._speed == 0:
            return self._speed
        backlog = max(0.0, self._available - self._schedule.due(self._now))
        return max(self._speed, backlog / self._max_lag)

    def _retime(self, rate: float) -> None:
        """Start a new schedule at `rate`, keeping what is already due due.

        The first new step comes one new interval after the last tick, or now if that
        is already past: slowing down never reveals early, speeding up applies at once.
        """
        old = self._schedule
        base = int(min(old.due(self._now), self._reachable()))
        new = _Schedule(rate, self._step, base=base)
        anchor = self._now if rate == 0 else max(self._now, self._last_tick(old) + new.interval)
        self._schedule = replace(new, anchor=anchor)
        self._settings_changed = False

    def _last_tick(self, old: _Schedule) -> float:
        """When the old schedule last revealed (or would have revealed) a step."""
        if old.rate == 0:
            return self._last_reveal
        if old.anchor is None:
            return -math.inf
        return old.deadline(old.steps_due(self._now) - 1)

    def _reachable(self) -> int:
        """How far a take may reveal: whole steps while open, everything once closed."""
        if self._closed:
            return self._available
        return self._schedule.whole_steps(self._available)

    def _gate(self) -> float:
        """Earliest time of the next non-empty take (coalescing to max_rate)."""
        return self._last_reveal + self._min_gap

    def _due_time(self) -> float:
        """When the first untaken cluster is due under the current schedule."""
        s = self._schedule
        if s.rate == 0 or self._taken < s.base:
            return self._now
        return s.deadline((self._taken - s.base) // s.step)


def _check_speed(speed: float) -> float:
    if not (speed >= 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a finite number >= 0, got {speed!r}")
    return float(speed)


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    return step
