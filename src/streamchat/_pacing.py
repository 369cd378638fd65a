"""The one place where deltas meet the clock: feed a Typewriter and reveal text on time.

Shared by the CLI and the widget so both type at the same pace. The typewriter is
sans-I/O; this coroutine owns the waiting: it sleeps until the typewriter's next
deadline or until new text arrives, whichever comes first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable

from ._frames import BACKLOG, BATCH, BATCH_FRAMES, PERIOD, READ_EVERY, frame_at
from .deltas import Delta, Done, StreamError, TextDelta
from .typewriter import Typewriter

__all__ = ["GRACE", "Lockstep", "Wake", "type_out"]

# How long answers in lockstep that have text wait for the others' first text before
# they start without them (`Lockstep`): a lane whose model is slow to answer must not
# hold the race for ever, nor one that is a little slower start on its own.
GRACE = 2.0


class Wake:
    """A flag the typing loop sleeps on until it is set or a delay passes.

    Like `asyncio.Event`, but a timed wait ends by a timer that resolves the waiter,
    not by cancelling it (`asyncio.timeout`): at ~30 timed waits a second the
    cancellation's exception was a noticeable share of the loop's work.
    Loop thread only.
    """

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, until: float | None = None) -> None:
        """Return once set, or at the first frame at or after `until` (the loop's clock,
        None: no limit): the answer's socket reads wake on frames too (`_frames`)."""
        if self._set:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None if until is None else loop.call_at(frame_at(until), _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


class Lockstep:
    """One start for answers typed side by side at one pace (a race at equal speed).

    A typewriter's schedule is anchored at the first text it is given, and anchored
    again when it runs out of text. Answers given their first text at different times
    (each its own first token), or starved at different times (the first token is a
    word, the next read a message later) type at one pace but apart: a race's lanes were
    12-98 characters apart at 240 chars/s. So each answer in lockstep holds its text
    (`_answer.Framed`) until it has enough to type until its next read arrives, and all
    wait for one start: the first frame after the last of them was ready. Their
    typewriters then share an anchor and reveal the same count at the same time, and
    their frames are on the same grid (`_frames`), so the views change together.

    Nothing waits for ever: an answer that ends without text (an error, a Stop) leaves,
    and `grace` seconds after the first was ready the others start without the late
    ones, which then type from their own first text, behind. An answer whose text comes
    slower than the pace falls behind the same way (its typewriter re-anchors when
    starved). Loop thread only.
    """

    def __init__(self, grace: float = GRACE) -> None:
        self._grace = grace
        self._awaited = 0  # answers joined that have neither text nor an end yet
        self._first: float | None = None  # when the first text came
        self.start: float | None = None  # when typing starts (the loop's clock)
        self._sent: float | None = None  # this loop tick's time (`tick`)
        self._wakers: list[Callable[[], None]] = []

    def join(self, wake: Callable[[], None]) -> None:
        """One more answer to wait for; `wake` wakes its typing loop at the start."""
        self._awaited += 1
        self._wakers.append(wake)

    def arrived(self, now: float) -> None:
        """An answer has text enough to start (once per answer)."""
        if self._first is None:
            self._first = now
        self._settled(now)

    def left(self, now: float) -> None:
        """An answer ended without text (once per answer): it is not waited for."""
        self._settled(now)

    def _settled(self, now: float) -> None:
        self._awaited -= 1
        if self._awaited <= 0 and self._first is not None:
            self._begin(now)

    def _begin(self, now: float) -> None:
        if self.start is None:
            self.start = frame_at(now + PERIOD)  # a frame ahead: every answer is in time
            for wake in self._wakers:
                wake()
            self._wakers.clear()

    def started(self, now: float) -> float | None:
        """The start, or None while answers are awaited and the grace has not run out."""
        if self.start is None and self._first is not None and now >= self._first + self._grace:
            self._begin(now)
        return self.start

    def send_at(self, when: float) -> float:
        """The first of the lockstep's sending instants at or after `when`: a message
        `BATCH` apart from the frame before the start, about when the answers' first
        frames went. Every answer's outbox sends its frames at them (`Outbox.lockstep`), so
        they travel in one message and reach a view together (`race._flush`): sent a
        frame apart, a loaded page played them some frames apart."""
        if self.start is None:
            return when
        origin = self.start - PERIOD
        return origin + math.ceil((when - origin - 1e-6) / BATCH) * BATCH

    def tick(self, now: float) -> float:
        """This loop tick's time: the clock as the first answer of the tick read it.
        The answers of a round run one after another in one tick, each after the one
        before rendered (milliseconds apart, 60 ms for a first render), and their
        messages go as one at its end (`race._flush`). Each one's own clock gave them
        different first frames and different delays for the same frame, and a view
        played them on different animation frames."""
        if self._sent is None:
            self._sent = now
            asyncio.get_running_loop().call_soon(self._tick_ended)
        return self._sent

    def _tick_ended(self) -> None:
        self._sent = None

    @property
    def deadline(self) -> float:
        """When the grace runs out (inf before any text came)."""
        return math.inf if self._first is None else self._first + self._grace


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def type_out(
    deltas: AsyncIterator[Delta],
    typewriter: Typewriter,
    on_text: Callable[[str], None],
    on_delta: Callable[[Delta], None] = lambda delta: None,
    *,
    wake: Wake | None = None,
) -> Done | StreamError:
    """Reveal the answer through `typewriter`; return the stream's terminal delta.

    Non-text deltas go to `on_delta` as they arrive (reasoning is not paced). The
    terminal delta is returned only after the typewriter has drained, so an error
    message never overtakes the text before it. `wake` lets a caller that changes
    `typewriter.speed` from outside make the change apply at once.
    """
    wake = wake or Wake()
    clock = asyncio.get_running_loop().time  # the typewriter's times are the timers' times
    terminal: list[Done | StreamError] = []
    # When the consumer wakes by itself (inf: only when woken); -inf while it runs.
    # Text that does not make the next reveal come sooner needs no extra wake-up:
    # at 50 events a second that would be a loop turn per event for nothing.
    asleep_until = -math.inf
    # Whether the last delta was text the typewriter paces: the reads may then wait for
    # the frames of a message (`_frames.READ_EVERY`, `BATCH_FRAMES`). Before the first
    # token, during reasoning (not paced) and at speed 0 (shown as it comes), every
    # frame's data is wanted.
    paced = False

    async def produce() -> None:
        nonlocal paced
        # Whatever ends the stream (its end, a bug in a stage, an exception nobody
        # mapped), the typewriter is closed and the consumer woken: a producer that
        # died silently would leave the consumer waiting for ever.
        try:
            async for delta in deltas:
                paced = isinstance(delta, TextDelta)
                if isinstance(delta, TextDelta):  # (`paced` does not narrow the type)
                    typewriter.push(delta.text, clock())
                    deadline = typewriter.next_deadline()
                    if deadline is not None and deadline < asleep_until:
                        wake.set()
                elif isinstance(delta, (Done, StreamError)):
                    terminal.append(delta)
                    wake.set()
                else:
                    on_delta(delta)
        except Exception as exc:  # the terminal delta the stream failed to give
            terminal.append(StreamError("protocol", f"{type(exc).__name__}: {exc}"))
        finally:
            typewriter.close(clock())
            wake.set()

    reads = READ_EVERY.set(lambda: BATCH_FRAMES if paced and typewriter.speed > 0 else 1)
    held = BACKLOG.set(lambda: typewriter.pending)
    try:
        producer = asyncio.ensure_future(produce())  # runs in a copy of this context
    finally:
        BACKLOG.reset(held)
        READ_EVERY.reset(reads)
    try:
        while not typewriter.finished:
            deadline = typewriter.next_deadline()
            if deadline is None or deadline > clock():
                asleep_until = math.inf if deadline is None else deadline
                try:
                    await wake.wait(deadline)
                finally:
                    asleep_until = -math.inf
            else:
                # Due already: still yield to the loop once. A take that waits for the
                # loop's tick to end (a race's lanes share one clock per tick, `Lockstep`)
                # would otherwise be asked again and again in the same tick, for ever,
                # and every chat in the kernel would stop with it.
                await asyncio.sleep(0)
            wake.clear()
            text = typewriter.take(clock())
            if text:
                on_text(text)
        await producer
    finally:
        producer.cancel()
    return terminal[0] if terminal else StreamError("incomplete", "the stream ended early")
