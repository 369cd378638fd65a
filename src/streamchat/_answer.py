"""One answer's life on the kernel side: its state, and its way to the browser.

`Answer` holds an answer in progress (pipeline stages, timings, what was typed);
`Outbox` renders what the typewriter reveals into patches and sends them within the
send budget (`_budget`), and `Framed` wakes the typewriter no sooner than the outbox
may send.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _messages
from ._budget import LIVE, min_interval
from ._frames import BATCH, LEAD, PERIOD, frame_after, frame_at
from ._pacing import Lockstep, Wake
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

# What a render gives: (play time, None: at once; part; patches; characters rendered).
Rendered = tuple[float | None, str, list[Patch], int]
# At a Stop the text of the frames sent but not played yet is dropped by every view, and
# forgotten by the answer (`Answer.rewind`): its source is rendered again without it, at
# once, when it is this long at most (~50 ms of CPU); a longer one keeps that text, up
# to `_frames.LEAD` of typing.
REWIND_LIMIT = 20_000


class Outbox:
    """One answer's way to the browser: rendered and sent no faster than the budget allows.

    Lives on the loop thread. Text comes in two ways. Text shown as it comes (reasoning,
    an answer at speed 0) is queued as text and rendered only when a message can go:
    `MarkdownStream.append` re-renders the open block, so a long code block costs its
    whole size per call, and a tick that the rate limit would merge into the next
    message anyway should not pay for it; a timer sends what came too soon, so the
    message rate is bounded however fast text arrives. Typed text comes as frames, each
    with its play time (`add(..., at=)`), from the scheduler (`Framed`), which sends
    them with `flush()`: each frame is rendered on its own and they travel together, in
    one "frames" message. A message renders a bounded piece of a part (`PER_MESSAGE`);
    the rest is carried to the next one (the timer's), so no burst of text stalls the
    loop.
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
        # [part, text, play time]: None for text shown as soon as it is sent.
        self._queue: deque[list[Any]] = deque()
        self._limit = dict.fromkeys(streams, PER_MESSAGE)  # characters the next render takes
        self._tools: list[_messages.ToolCall] | None = None
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.last_frame = -math.inf  # play time of the last frame sent
        self._dropped = False
        # (play time, part, characters) of frames sent ahead of their time; what was not
        # played yet at a Stop, by part.
        self._ahead: deque[tuple[float, str, int]] = deque()
        self.unplayed: dict[str, int] = {}
        # Answers in lockstep send their frames on the lockstep's grid, with delays from
        # one instant, so their frames travel in one message and play together.
        self.lockstep: Lockstep | None = None

    def add(self, part: str, text: str, at: float | None = None) -> None:
        """Queue `text` of `part`: shown at once (`at` None, sent as soon as the budget
        allows), or as a frame to be shown at `at` (sent by the next `flush`)."""
        if not text:
            return
        last = self._queue[-1] if self._queue else None
        if last is not None and last[0] == part and last[2] == at:
            last[1] += text
        else:
            self._queue.append([part, text, at])
        if at is None:
            self._schedule()

    def tools(self, calls: list[_messages.ToolCall]) -> None:
        self._tools = calls
        self._schedule()

    @property
    def carried(self) -> int:
        """Characters queued and not rendered yet."""
        return sum(len(entry[1]) for entry in self._queue)

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_at(self._next, self.flush)

    def _render(self, *, final: bool = False) -> list[Rendered]:
        """Render the queue, a bounded piece of each part (all of it when `final`):
        (play time, part, patches) in the queue's order.

        One render per frame, so the patches of a frame are already as small as its
        change: `MarkdownStream` makes them against what it last gave the views.
        """
        rendered: list[Rendered] = []
        room = dict(self._limit)
        while self._queue:
            entry = self._queue[0]
            part, queued, at = entry
            limit = len(queued) if final else room[part]
            if limit <= 0:
                break
            text, rest = queued[:limit], queued[limit:]
            room[part] -= len(text)
            stream = self._streams[part]
            cpu = time.thread_time()  # the work, not a loaded machine's waits
            patches = stream.append(text)
            if len(text) >= SMALLEST and not final:
                rate = len(text) / max(time.thread_time() - cpu, 1e-4)
                self._limit[part] = min(LARGEST, max(SMALLEST, int(rate * RENDER_CPU)))
            if patches:
                rendered.append((at, part, patches, len(text)))
            if rest:
                entry[1] = rest
                break
            self._queue.popleft()
        if final:
            for part, stream in self._streams.items():
                if patches := stream.finish():
                    # After the frames a view still has to play: never before them.
                    at = self.last_frame if part == "body" and self.last_frame > -math.inf else None
                    rendered.append((at, part, patches, 0))
        return rendered

    def _messages(self, rendered: list[Rendered], now: float) -> list[Any]:
        """One patch message per run of a part's text shown at once, one frames message
        per run of a part's frames (offsets in ms from now, when it is sent)."""
        messages: list[tuple[str, str, list[Any]]] = []
        for at, part, patches, chars in rendered:
            kind = "patch" if at is None or part != "body" else "frames"  # the body types
            if not messages or messages[-1][:2] != (kind, part):
                messages.append((kind, part, []))
            items = messages[-1][2]
            if at is None or kind == "patch":
                items += patches
                continue
            delay = max(0, round((at - now) * 1000))
            if items and items[-1][0] == delay:
                items[-1][1].extend(patches)
            else:
                items.append((delay, list(patches)))
            self.last_frame = max(self.last_frame, at)
            if at > now:
                self._ahead.append((at, part, chars))
        return [
            _messages.patch(self.turn_id, part, items)  # type: ignore[arg-type]
            if kind == "patch"
            else _messages.frames(self.turn_id, items)
            for kind, part, items in messages
        ]

    def flush(self, *, final: bool = False) -> None:
        # The loop thread's CPU, not the wall clock: on a loaded machine the wall time
        # of a 2 ms render was 10-15 ms, and the budget (`_budget`), a share of a core,
        # held four race lanes under 30 messages a second and made lanes miss a round.
        started = time.thread_time()
        loop = asyncio.get_running_loop()
        rendered = self._render(final=final)
        now = loop.time()
        while self._ahead and self._ahead[0][0] <= now:
            self._ahead.popleft()
        sent = now if self.lockstep is None else self.lockstep.tick(now)
        messages = self._messages(rendered, sent)
        if self._tools is not None:
            messages.append(_messages.tools(self.turn_id, self._tools))
        self._tools = None
        self._cancel_timer()
        for message in messages:
            self._emit(message)
        if messages:
            size = sum(len(p.html) for _, _, patches, _ in rendered for p in patches)
            cost = time.thread_time() - started
            wait = min_interval(len(LIVE), len(messages), size, cost)
            paced = any(at is not None and at > now for at, _, _, _ in rendered)
            # Paced: BATCH frames on (the wake-up came at a frame, `now` is just after it);
            # else one message a frame at most.
            gap = frame_at(now + BATCH - PERIOD / 2) if paced else frame_after(now)
            self._next = max(gap, now + wait)
            if paced and self.lockstep is not None:
                self._next = self.lockstep.send_at(now + max(wait, PERIOD / 2))
        if self.carried and not final:  # the rest goes with the next message
            self._timer = loop.call_at(self._next, self.flush)

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
        self.drop()
        self._queue.clear()
        self._tools = None
        self._cancel_timer()

    def drop(self) -> None:
        """(Stop) Tell every view at once to drop the frames it holds: what each shows
        at that moment is what stays. Once."""
        if self.last_frame > -math.inf and not self._dropped:
            self._dropped = True
            self._emit(_messages.frames(self.turn_id, [], stop=True))
            now = asyncio.get_running_loop().time()
            for at, part, chars in self._ahead:
                if at > now:
                    self.unplayed[part] = self.unplayed.get(part, 0) + chars
            self._ahead.clear()

    def retime(self, now: float, speed: float, step: int = 1) -> float:
        """(A speed or step change) Tell every view at once to play the frames it holds
        at `speed` (characters a second; 0: at once) from now, not as they were typed;
        return how far the last frame moved (seconds, < 0: sooner).

        The held frames were typed at the old pace, up to `LEAD` ahead, so the new one
        shows from the next frame, not a `LEAD` later. A larger `step`: held frames play
        together (one play time) until together they reveal `step` characters. A smaller
        step or a slower speed: a held frame that reveals more than `step` characters
        over more than a frame is split into pieces, as many as the new pace would type
        it in (`_split`); each view cuts its HTML where the cut shows well-formed text
        (widget.js, `splitFrame`)."""
        held = [chars for at, part, chars in self._ahead if at > now and part == "body"]
        if not held:
            return 0.0
        plays: list[float] = []
        typed, group, grouped = 0, 0, 0  # characters typed; frames and characters grouped
        for index, chars in enumerate(held):
            typed, group, grouped = typed + chars, group + 1, grouped + chars
            if grouped >= step or index == len(held) - 1:
                plays += [now + (typed / speed if speed else 0.0)] * group
                group, grouped = 0, 0
        delays: list[int | list[int]] = []
        ahead: list[tuple[float, str, int]] = []
        for before, play, chars in zip([now, *plays], plays, held, strict=False):
            pieces = _split(chars, play - before, step)
            times = [before + (play - before) * (k + 1) / pieces for k in range(pieces)]
            ahead += [
                (at, "body", chars * (k + 1) // pieces - chars * k // pieces)
                for k, at in enumerate(times)
            ]
            ms = [round((at - now) * 1000) for at in times]
            delays.append(ms[0] if pieces == 1 else ms)
        self._ahead.clear()
        self._ahead.extend(ahead)
        moved = plays[-1] - self.last_frame
        self.last_frame = plays[-1]
        self._emit(_messages.frames(self.turn_id, [], retime=delays))
        # The frames at the new pace go at the next frame, not a BATCH later: the views
        # may run out of the retimed ones sooner.
        self._next = min(self._next, frame_after(now))
        return moved

    @property
    def playing(self) -> bool:
        """Whether a frame sent is still to be played (the views' clock is the loop's)."""
        return self.last_frame > asyncio.get_running_loop().time()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def finish(self) -> None:
        """Render the rest as final and send it at once; return once the views played
        every frame sent (the turn's end must not overtake the text).

        A view that applied every patch then already shows the final HTML and keeps
        its DOM (and the person's text selection). Text carried past a message's piece
        goes first, a message at a time, so the last render is bounded too.
        """
        loop = asyncio.get_running_loop()
        while any(len(entry[1]) > self._limit[entry[0]] for entry in self._queue):
            self._cancel_timer()  # these are the last messages: they take the timer's place
            delay = self._next - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.flush()
        self._cancel_timer()
        self.flush(final=True)
        delay = self.last_frame - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def _split(chars: int, span: float, step: int) -> int:
    """How many pieces a held frame of `chars` characters, played over `span` seconds at
    a new pace, is shown in: one per `step` characters, a frame apart at least."""
    return max(1, min(math.ceil(chars / max(step, 1)), int(span / PERIOD + 1e-6)))


class Framed:
    """The one scheduler of a typed answer: when text is typed, rendered and sent.

    `type_out` sees it as the answer's typewriter. While the answer types at a pace it
    renders, at each wake-up, every frame (`PERIOD` apart) due in the next `LEAD`
    seconds and sends them in one message, then sleeps until the next message may go
    (`BATCH`): the loop thread wakes and the kernel sends 4.5 times a second, and the
    views still show 36 frames a second.

    The typewriter runs `LEAD` behind the stream from the first frame on: text read now
    is typed from `LEAD` from now, so the frames of the next `LEAD` seconds are always
    known. Text is held here with that time and given to the typewriter only when the
    frames are rendered, in time order, because the typewriter's clock never goes back:
    text given to it at now + `LEAD` would make its next take reveal as of then. The
    first frame plays at once: the first token is not held back. At speed 0 text is
    shown as it comes, a message a frame at most.

    In `lockstep` with other answers (a race at equal speed), the text is held until the
    lockstep's start and the frames are on the frame grid (`_pacing.Lockstep`).
    """

    def __init__(
        self,
        typewriter: Typewriter,
        outbox: Outbox,
        typed: Callable[[str, float | None], None] | None = None,
        lockstep: Lockstep | None = None,
    ) -> None:
        self._typewriter = typewriter
        self._outbox = outbox
        self._typed = typed or (lambda text, at: outbox.add("body", text, at))
        self._lockstep = lockstep
        self._settled = lockstep is None  # whether the lockstep heard we are ready
        outbox.lockstep = lockstep
        typewriter.keeps_time = lockstep is not None  # a starved answer rejoins the others
        self._early = 0  # characters read before the lockstep heard of us
        self._ahead = 0.0  # when text read now plays, minus now: LEAD after a frame
        # A frame's play time minus the typewriter's time: moved by a speed or step
        # change, which plays the frames sent already at the new pace (`Outbox.retime`).
        self._shift = 0.0
        self._pace = (typewriter.speed, typewriter.step)
        self._last = -math.inf  # play time of the last frame
        # (the typewriter's time, None: the lockstep's start; text, None: the end)
        self._inbox: deque[tuple[float | None, str | None]] = deque()

    @property
    def finished(self) -> bool:
        return not self._inbox and self._typewriter.finished

    @property
    def speed(self) -> float:
        return self._typewriter.speed

    @property
    def pending(self) -> int:
        """Text held back: the typewriter's, and what the outbox carries to later
        messages (a Python source is read no further while it is high: `_frames.BACKLOG`)."""
        held = sum(len(text) for _, text in self._inbox if text)
        return held + self._typewriter.pending + self._outbox.carried

    def push(self, text: str, now: float) -> None:
        if not self._settled:
            # Ready once what it holds lasts until text read later can be typed: the
            # socket is read a message apart, and that text plays `LEAD` after it.
            self._early += len(text)
            if self._early >= self._typewriter.speed * (BATCH + LEAD):
                self._settle(now)
        self._inbox.append((self._when(now), text))

    def close(self, now: float) -> None:
        if not self._settled:
            self._settle(now)
        self._inbox.append((self._when(now), None))

    def _settle(self, now: float) -> None:
        """Tell the lockstep this answer is ready: with text, or ended without."""
        assert self._lockstep is not None
        self._settled = True
        if self._early:
            self._lockstep.arrived(now)
        else:
            self._lockstep.left(now)

    def _when(self, now: float) -> float | None:
        """The typewriter's time for what is read `now` (None: the lockstep's start)."""
        when = now + self._ahead - self._shift
        if self._lockstep is None:
            return when
        start = self._lockstep.started(now)
        return None if start is None else max(when, start - self._shift)

    def _time(self, when: float | None) -> float:
        """An inbox time: text held for the lockstep's start is given at it (inf while
        it is not known; at once, -inf, once the answer left the lockstep)."""
        if when is not None:
            return when
        if self._lockstep is None:
            return -math.inf
        start = self._lockstep.start
        return math.inf if start is None else start - self._shift

    def _held(self) -> float:
        """When the first text held is given to the typewriter (inf: none)."""
        return self._time(self._inbox[0][0]) if self._inbox else math.inf

    def _feed(self, until: float) -> None:
        """Give the typewriter the text held for times up to `until`."""
        typewriter = self._typewriter
        while self._inbox and (when := self._held()) <= until:
            text = self._inbox.popleft()[1]
            if text is None:
                typewriter.close(when)
            else:
                typewriter.push(text, when)

    def take(self, now: float) -> str:
        """Text revealed by `now` (speed 0), or "" once the frames of the next `LEAD`
        seconds went to the outbox and were sent."""
        typewriter = self._typewriter
        if (typewriter.speed, typewriter.step) != self._pace:
            self._retime(now)
        if typewriter.speed == 0:
            self._lockstep = self._outbox.lockstep = None  # shown as it comes: no lockstep
            typewriter.keeps_time = False
            self._feed(math.inf)
            return typewriter.take(now + self._ahead - self._shift)
        if self._lockstep is not None:
            self._lockstep.started(now)  # (the grace may have run out)
            now = self._lockstep.tick(now)  # the answers of a round on one clock
        if now < self._outbox.next_send:
            return ""  # woken early (by text that may wait): no message may go yet
        # In the typewriter's time: the end of the next LEAD, the last frame's time.
        horizon, last = now + LEAD - self._shift, self._last - self._shift
        while True:
            self._feed(last)
            deadline = typewriter.next_deadline()
            held = self._held()
            if deadline is None or held <= max(deadline, last + PERIOD):
                if held > horizon:
                    break
                self._feed(held)  # the text it may reveal first
                continue
            at = max(deadline, now - self._shift, last + PERIOD)
            if self._lockstep is not None:  # the answers in lockstep change on one grid
                at = frame_at(at + self._shift) - self._shift
            if at > horizon:
                break
            text = typewriter.take(at)
            if text:
                last = at
                self._last = at + self._shift
                self._typed(text, self._last)
                self._ahead = LEAD
            elif typewriter.next_deadline() == deadline:
                break  # nothing to reveal until more text comes
        self._outbox.flush()
        return ""

    def next_deadline(self) -> float | None:
        """When the loop is to wake next (its clock): when the first frame not sent yet
        is `LEAD` ahead (at once at speed 0), or the next message may go, whichever is
        later."""
        deadline = self._typewriter.next_deadline()
        if self._inbox:
            held = self._held()
            if held == math.inf and deadline is None:  # held for the lockstep's start
                # It wakes this loop at the start; this is when the grace runs out (None:
                # no answer is ready yet, and this one's text wakes it when it is).
                grace = self._lockstep.deadline  # type: ignore[union-attr]
                return None if grace == math.inf else max(grace, self._outbox.next_send)
            deadline = held if deadline is None else min(deadline, held)
        if deadline is None:
            return None
        lead = LEAD if self._typewriter.speed else self._ahead
        return max(deadline + self._shift - lead, self._outbox.next_send)

    def _retime(self, now: float) -> None:
        """A speed or step change: the frames the views hold play at the new pace from
        now (`Outbox.retime`), and the next ones follow them."""
        self._pace = (self._typewriter.speed, self._typewriter.step)
        moved = self._outbox.retime(now, self._typewriter.speed, self._typewriter.step)
        self._shift += moved
        self._last += moved


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
    tool_calls: list[_messages.ToolCall] = field(default_factory=list)
    # Characters of answer text received before each tool call's first fragment, so the
    # view shows calls and text in the order they came.
    tool_after: dict[int, int] = field(default_factory=dict)
    reasoning_last: float | None = None  # when the last reasoning arrived
    reasoning_end: float | None = None  # when the answer itself followed the reasoning
    stream_started: bool = False
    # Set on the loop thread; created there lazily because asyncio.Event binds a loop.
    wake: Wake | None = None
    lockstep: Lockstep | None = None  # typed side by side with others (a race at equal speed)
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
        self.outbox.drop()  # every view stops playing now, not when the task has ended
        if self.task is not None:
            self.task.cancel()

    def rewind(self, allow_images: bool) -> None:
        """(loop thread, a stopped answer) Forget the text of the frames that no view
        played: the answer is what the views showed at the Stop, in the history, the
        turn and the saved notebook too. Before `body.finish()`."""
        cut = self.outbox.unplayed.get("body", 0)
        text = self.body.text
        if not cut or len(text) > REWIND_LIMIT:
            return
        body = MarkdownStream(allow_images=allow_images)
        body.append(text[: len(text) - cut])
        self.body = body

    def type(self, text: str, at: float | None = None) -> None:
        """(loop thread) The typewriter reveals `text`, to be shown at `at` (None: now):
        time it, and send it on."""
        when = time.monotonic() if at is None else at
        self.first_typed = self.first_typed or when
        self.last_typed = when
        self.typed += len(text)
        self.outbox.add("body", text, at)

    def stats(self) -> _messages.Stats:
        stats = _messages.Stats(chars=self.received)
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
            usage = self.usage
            counts = ("input_tokens", usage.input_tokens), ("output_tokens", usage.output_tokens)
            for name, value in (*counts, ("reasoning_tokens", usage.reasoning_tokens)):
                if value is not None:
                    stats[name] = value  # type: ignore[literal-required]
        if self.finish_reason:
            stats["finish_reason"] = self.finish_reason
        return stats
