"""The one place where deltas meet the clock: feed a Typewriter and reveal text on time.

Shared by the CLI and the widget so both type at the same pace. The typewriter is
sans-I/O; this coroutine owns the waiting: it sleeps until the typewriter's next
deadline or until new text arrives, whichever comes first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable

from ._frames import BACKLOG, BATCH_FRAMES, READ_EVERY, frame_at
from .deltas import Delta, Done, StreamError, TextDelta
from .typewriter import Typewriter

__all__ = ["Wake", "type_out"]


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
            wake.clear()
            text = typewriter.take(clock())
            if text:
                on_text(text)
        await producer
    finally:
        producer.cancel()
    return terminal[0] if terminal else StreamError("incomplete", "the stream ended early")
