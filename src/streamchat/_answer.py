"""One answer's life on the kernel side: its state, and its way to the browser.

`Answer` holds an answer in progress (pipeline stages, timings, what was typed);
`Outbox` renders what the typewriter reveals into patches and sends them within the
send budget (`_budget`), and `Framed` wakes the typewriter no sooner than the outbox
may send.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _messages
from ._budget import LIVE, min_interval
from ._frames import frame_after
from ._pacing import Wake
from .deltas import ToolCallDelta, Usage
from .render import MarkdownStream, Patch
from .typewriter import Typewriter

__all__ = ["Answer", "Framed", "Outbox"]

# Characters of a part rendered in one message at most: at speed 0 the typewriter hands
# on all it is given, and a megabyte rendered in one `MarkdownStream.append` held the
# loop thread (every chat of the kernel) for 1.5 s and more. The rest is carried to the
# next message. A message starts at `PER_MESSAGE` (8 K of prose costs ~5-20 ms of
# CPU, of a code block ~50 ms), then takes what its part rendered in ~`RENDER_CPU`
# last time, between `SMALLEST` and `LARGEST`. (The byte budget, `_budget`, lets about
# 250 K of HTML a second go: a megabyte of prose shows in ~5 s.)
PER_MESSAGE = 8 * 1024
RENDER_CPU = 0.02
SMALLEST = 2 * 1024
LARGEST = 32 * 1024


class Outbox:
    """One answer's way to the browser: rendered and sent no faster than the budget allows.

    Lives on the loop thread. Revealed text is queued as text and rendered only when
    a message can go: `MarkdownStream.append` re-renders the open block, so a long
    code block costs its whole size per call, and a tick that the rate limit would
    merge into the next message anyway should not pay for it. A timer sends what
    came too soon, so the message rate is bounded however fast text arrives. A message
    renders a bounded piece of a part (`PER_MESSAGE`); the rest is carried to the
    next one (the timer's), so no burst of text stalls the loop.
    """

    def __init__(
        self,
        emit: Callable[[Any], None],
        turn_id: int,
        streams: dict[str, MarkdownStream],
    ) -> None:
        self._emit = emit
        self.turn_id = turn_id
        self._streams = streams
        self._text = dict.fromkeys(streams, "")
        self._limit = dict.fromkeys(streams, PER_MESSAGE)  # characters the next render takes
        self._tools: list[dict[str, Any]] | None = None
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, part: str, text: str) -> None:
        if text:
            self._text[part] += text
            self._schedule()

    def tools(self, calls: list[dict[str, Any]]) -> None:
        self._tools = calls
        self._schedule()

    @property
    def carried(self) -> int:
        """Characters queued and not rendered yet."""
        return sum(map(len, self._text.values()))

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_at(self._next, self.flush)

    def _render(self, *, final: bool = False) -> dict[str, list[Patch]]:
        """Render the queued text, a bounded piece of each part (all of it when
        `final`): the patches per part.

        One render per message, so the patches of a part are already as small as its
        change: `MarkdownStream` makes them against what it last gave the views.
        """
        rendered = {}
        for part, stream in self._streams.items():
            queued = self._text[part]
            limit = len(queued) if final else self._limit[part]
            text, self._text[part] = queued[:limit], queued[limit:]
            cpu = time.thread_time()  # the work, not a loaded machine's waits
            patches = stream.append(text) if text else []
            if len(text) >= SMALLEST and not final:
                rate = len(text) / max(time.thread_time() - cpu, 1e-4)
                self._limit[part] = min(LARGEST, max(SMALLEST, int(rate * RENDER_CPU)))
            if final:
                patches += stream.finish()
            if patches:
                rendered[part] = patches
        return rendered

    def flush(self, *, final: bool = False) -> None:
        started = time.perf_counter()
        rendered = self._render(final=final)
        messages: list[Any] = [
            _messages.patch(self.turn_id, part, ops)  # type: ignore[arg-type]
            for part, ops in rendered.items()
        ]
        if self._tools is not None:
            messages.append(_messages.tools(self.turn_id, self._tools))
        self._tools = None
        self._cancel_timer()
        for message in messages:
            self._emit(message)
        if messages:
            size = sum(len(patch.html) for patches in rendered.values() for patch in patches)
            cost = time.perf_counter() - started
            wait = min_interval(len(LIVE), len(messages), size, cost)
            now = asyncio.get_running_loop().time()
            self._next = max(frame_after(now), now + wait)  # one message a frame at most
        if self.carried and not final:  # the rest goes with the next message
            self._timer = asyncio.get_running_loop().call_at(self._next, self.flush)

    @property
    def next_send(self) -> float:
        """When the next message may go (the loop's clock, time.monotonic)."""
        return self._next

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """What a view that joined late needs, (frozen, live) HTML per part: queued text
        is rendered into it, not sent (the snapshot goes to every view); what is carried
        past a message's piece goes to every view with the next message."""
        self._render()
        if self.carried and self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(self._next, self.flush)
        return {part: stream.shown for part, stream in self._streams.items()}

    def discard(self) -> None:
        """Forget what is queued (the answer was stopped)."""
        self._text = dict.fromkeys(self._text, "")
        self._tools = None
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def finish(self) -> None:
        """Render the rest as final and send it as soon as the budget allows.

        A view that applied every patch then already shows the final HTML and keeps
        its DOM (and the person's text selection). Text carried past a message's piece
        goes first, a message at a time, so the last render is bounded too.
        """
        loop = asyncio.get_running_loop()
        while True:
            self._cancel_timer()  # these are the last messages: they take the timer's place
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if all(len(self._text[part]) <= self._limit[part] for part in self._text):
                break
            self.flush()
        self.flush(final=True)


class Framed:
    """The answer's typewriter as `type_out` sees it: woken no sooner than the outbox
    may send again.

    Characters revealed before then would only wait in the outbox, so at 200 chars/s
    the loop wakes about as often as messages go (tens of times a second) instead of
    once per character; what the reader sees is the same.
    """

    def __init__(self, typewriter: Typewriter, outbox: Outbox) -> None:
        self._typewriter = typewriter
        self._outbox = outbox

    @property
    def finished(self) -> bool:
        return self._typewriter.finished

    @property
    def speed(self) -> float:
        return self._typewriter.speed

    @property
    def pending(self) -> int:
        """Text held back: the typewriter's, and what the outbox carries to later
        messages (a Python source is read no further while it is high: `_frames.BACKLOG`)."""
        return self._typewriter.pending + self._outbox.carried

    def push(self, text: str, now: float) -> None:
        self._typewriter.push(text, now)

    def close(self, now: float) -> None:
        self._typewriter.close(now)

    def take(self, now: float) -> str:
        return self._typewriter.take(now)

    def next_deadline(self) -> float | None:
        deadline = self._typewriter.next_deadline()
        return None if deadline is None else max(deadline, self._outbox.next_send)


@dataclass(eq=False)
class Answer:
    """One assistant answer in progress: its pipeline stages and its bookkeeping."""

    turn: int
    typewriter: Typewriter
    body: MarkdownStream
    reasoning: MarkdownStream
    outbox: Outbox
    started: float = field(default_factory=time.monotonic)
    first: float | None = None
    last: float | None = None
    received: int = 0
    # What the typewriter revealed: its pace, told apart from the network's.
    typed: int = 0
    first_typed: float | None = None
    last_typed: float | None = None
    # Why it was stopped, when not by Stop (shown under the answer).
    note: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_deltas: list[ToolCallDelta] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # Characters of answer text received before each tool call's first fragment, so the
    # view shows calls and text in the order they came.
    tool_after: dict[int, int] = field(default_factory=dict)
    reasoning_last: float | None = None  # when the last reasoning arrived
    reasoning_end: float | None = None  # when the answer itself followed the reasoning
    stream_started: bool = False
    # Set on the loop thread; created there lazily because asyncio.Event binds a loop.
    wake: Wake | None = None
    stream_closed: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """(loop thread) Stop the answer, whether or not its task has started yet.

        Once only: a second Stop (another thread, a click during the first) must not
        cancel the task again while it is ending the turn, or the turn never ends.
        """
        if self.stop_requested:
            return
        self.stop_requested = True
        if self.task is not None:
            self.task.cancel()

    def type(self, text: str) -> None:
        """(loop thread) The typewriter reveals `text`: time it, and send it on."""
        now = time.monotonic()
        self.first_typed = self.first_typed or now
        self.last_typed = now
        self.typed += len(text)
        self.outbox.add("body", text)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"chars": self.received}
        if self.first_typed is not None and self.last_typed is not None:
            span = self.last_typed - self.first_typed
            if span > 0:
                stats["typed_per_second"] = round(self.typed / span, 1)
        if self.first is not None:
            stats["ttft"] = round(self.first - self.started, 4)
            span = (self.last or self.first) - self.first
            if span > 0:
                stats["chars_per_second"] = round(self.received / span, 1)
        stats["duration"] = round(time.monotonic() - self.started, 4)
        if self.reasoning_last is not None:
            thought = (self.reasoning_end or self.reasoning_last) - self.started
            stats["reasoning_seconds"] = round(thought, 1)
        if self.usage is not None:
            for name in ("input_tokens", "output_tokens", "reasoning_tokens"):
                value = getattr(self.usage, name)
                if value is not None:
                    stats[name] = value
        if self.finish_reason:
            stats["finish_reason"] = self.finish_reason
        return stats
