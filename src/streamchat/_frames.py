"""The loop thread's frames: one grid of instants that its timed wake-ups share.

Waking a sleeping thread is the dearest thing the loop thread does. On the virtual
machines notebooks often run on, a wake-up after 20 ms of sleep costs ~90 us of CPU
before any Python runs (measured with /proc/<tid>/schedstat), and the code after it
runs on cold caches, several times slower than warm. An answer typed at 200 chars/s
woke the loop thread 85 times a second: a socket read per event and a timer per
typing step. So the typing loop sleeps until a frame, and a socket that delivered
data is not watched again before the next frame: whatever arrived meanwhile is read
in the same wake-up as a typing step (33 wake-ups a second). Every answer of every
chat shares the grid, so twenty chats typing at once still wake the thread once per
frame.

36 frames a second: typing reads as smooth from 30 updates a second, and a frame that
has nothing new to show (the text is a link's address, say) sends nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar

__all__ = [
    "BACKLOG",
    "BATCH",
    "BATCH_FRAMES",
    "LEAD",
    "PERIOD",
    "READ_EVERY",
    "frame_after",
    "frame_at",
]

PERIOD = 1 / 36  # _messages.FRAME_MS says it in ms for the wire
# A deadline this close after a frame belongs to it: the clock read between computing
# a deadline and arming its timer must not push a wake-up to the next frame.
_SLACK = 1e-6

# Frames batched per message. While an answer types at a pace, the scheduler
# (`_answer.Framed`) renders the frames of the next `LEAD` seconds at once, each with the
# time it is to be shown, and the outbox sends them in one message every `BATCH`
# seconds; each view plays them out on its animation frames (widget.js, `FramePlayer`).
# Jupyter costs the kernel about 1 ms of CPU and 84 bytes of envelope per comm message:
# at 36 messages a second that was most of an answer's cost (bench_kernel_cost). Eight
# frames a message (4.5 a second) keep an answer within 8 IOPub bytes a character even
# where its HTML is 3 bytes a character (a highlighted code block, a table; 6 a second
# left them at 8.7-9.2). `LEAD` exceeds `BATCH` by a frame: the next message's first
# frame is two frames away when it is sent, the slack a late message has before a view
# runs out of frames to play.
BATCH_FRAMES = 8
BATCH = BATCH_FRAMES * PERIOD  # between two messages of an answer typed at a pace: 4.5/s
LEAD = (BATCH_FRAMES + 1) * PERIOD  # how far ahead of its time a frame is sent (0.25 s)


# How many frames a socket that delivered data stays unread: 1, every frame, unless the
# task that reads it says otherwise. The typing loop sets it for the task that reads its
# answer (`_pacing.type_out`): while a typewriter paces the text, the socket is read
# once a message (`BATCH_FRAMES`): what a read brings is typed from `LEAD` after it, so
# the frames stay as smooth, for an eighth of the reads. A callable, read at each hold,
# so that a speed changed mid-answer applies. A context variable because the reads
# happen deep inside httpx, in that task: the network backend reads it there
# (`_network.AsyncioStream.read`).
READ_EVERY: ContextVar[Callable[[], int]] = ContextVar("streamchat_read_every", default=lambda: 1)

# How much text the typing loop holds that it has not shown yet (grapheme clusters), for
# the task that reads its answer; 0 where nothing types (`source_deltas` read on its
# own). A Python source is read no further while this is high: a generator can produce
# far faster than a typewriter shows, and without this backpressure an endless one fills
# the memory (`_sources`). A socket needs none: the typewriter's `max_backlog` bounds it.
BACKLOG: ContextVar[Callable[[], int]] = ContextVar("streamchat_backlog", default=lambda: 0)


def frame_at(when: float) -> float:
    """The first frame at or after `when` (a `time.monotonic()` time)."""
    return math.ceil((when - _SLACK) / PERIOD) * PERIOD


def frame_after(when: float) -> float:
    """The first frame strictly after `when`."""
    return (math.floor(when / PERIOD + _SLACK / PERIOD) + 1) * PERIOD
