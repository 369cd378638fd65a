"""A sans-I/O decoder for `text/event-stream` (Server-Sent Events): bytes in, events out.

It follows the WHATWG rules to the letter because LLM streams are where the usual
shortcuts break: a Chinese character split across two network chunks, a proxy that
rewrites line ends to CR, `data:` lines joined with the wrong separator. The decoder
never waits for more input than the spec needs, keeps no sockets or clocks, and gives
the same events whatever the chunking of the same bytes (the tests check this).

Spec: https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
"""

from __future__ import annotations

import codecs
import functools
import sys
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, NamedTuple, TypeVar

__all__ = ["EventStreamDecoder", "FrameTooLong", "ServerSentEvent"]

T = TypeVar("T")

_utf8_decode = codecs.utf_8_decode


class ServerSentEvent(NamedTuple):
    """One dispatched event (a NamedTuple: immutable and the cheapest to build per event).

    `id` is the stream's last event ID when the event was dispatched: it persists
    across events until the server sends another `id` field.
    https://html.spec.whatwg.org/multipage/server-sent-events.html#dispatchMessage
    `retry` is the reconnection time set by this event's own block, None if it set
    none; the decoder's `retry` keeps the current value.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


# tuple.__new__ skips the Python frame of the generated NamedTuple.__new__; the fast
# path below builds one event per `data:` block, so this is most of its cost.
_new_event = functools.partial(tuple.__new__, ServerSentEvent)

# Chunks inside a frame are appended without counting; the pieces are added up every
# this many appends, so a frame passes `max_frame` by at most this many chunks (64 KiB
# each at most from httpx) before `FrameTooLong`.
_CHECK_EVERY = 64


class FrameTooLong(ValueError):
    """An event (or NDJSON line) grew past the decoder's `max_frame` characters.

    Without a cap, a server that never ends its event (`data:` lines without the
    blank line) makes the decoder hold everything it sends.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event or line is longer than {limit:,} characters")
        self.limit = limit


class FrameSplitter(ABC, Generic[T]):
    """Incremental UTF-8 text, cut into frames at a separator once line ends are LF.

    Both wire formats are this: an event stream is blocks ended by a blank line, NDJSON
    is lines. Subclasses set `separator` (two line ends, or one), turn complete frames
    into values in `_frames` and say in `end` what an unfinished last frame means.

    Decoding: the stream is UTF-8 whatever charset the Content-Type names, invalid bytes
    become U+FFFD and exactly one leading BOM is dropped
    (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream:
    "streams must be decoded using the UTF-8 decode algorithm"). A character whose bytes
    are split across chunks is held back until it is whole.

    Line ends: CR, LF and CRLF, and nothing else: not U+2028 or U+0085, hence no
    `str.splitlines` (the `end-of-line` rule of the same section). They are all turned
    into LF so frames can be found with plain `str` searches. A CR ending a chunk is a
    line end at once, and an LF opening the next chunk is then the rest of that CRLF.

    `max_frame` (characters, None for no limit) caps the unfinished frame: `feed`
    raises `FrameTooLong` when it is passed.
    """

    separator: ClassVar[str]

    def __init__(self, max_frame: int | None = None) -> None:
        self._undecoded = b""  # the first bytes of a character that continues in the next chunk
        self._at_start = True  # no text yet: a BOM may still come
        self._plain = False  # neither of the above: a chunk can be decoded on its own
        self._after_cr = False  # the last text ended with CR: a leading LF belongs to it
        # The unfinished frame, in pieces so that a long line arriving in many small
        # chunks is joined once, not once per chunk. It never contains the separator.
        self._pending: list[str] = []
        self._max_frame = sys.maxsize if max_frame is None else max_frame
        self._clear_pending()
        self._separator = self.separator  # an instance attribute is quicker to look up

    def feed(self, data: bytes) -> list[T]:
        """Decode one chunk of the body; return what the frames it completed hold."""
        if self._plain:
            try:
                # Fast path: a chunk of whole, valid characters needs no incremental decoder.
                text = data.decode()
            except UnicodeDecodeError:  # a character cut by the chunk's end, or bad bytes
                text = self._decode(data)
        else:
            text = self._decode(data)
        if self._after_cr or "\r" in text:
            text = self._normalize_line_ends(text)
        elif "\n" not in text:
            # Fast path for a chunk inside a line: no line end, so no frame ends here.
            pending = self._pending
            pending.append(text)
            if len(pending) >= self._check_at:
                self._count_pending()
            return []
        if text[:1] == "\n" and self._pending_ends_lf():  # the separator straddles chunks
            text = "".join(self._pending) + text
            self._clear_pending()
        frames = text.split(self._separator)
        if len(frames) == 1:
            pending = self._pending
            pending.append(text)
            if len(pending) >= self._check_at:
                self._count_pending()
            return []
        frames[0] = "".join(self._pending) + frames[0]
        self._pending = [frames.pop()]
        if self._counted:
            self._clear_pending(self._pending)
        if len(frames[0]) > self._max_frame:
            raise FrameTooLong(self._max_frame)
        return self._frames(frames)

    # Sizes are added up lazily: the unfinished frame's pieces are counted once per
    # `_CHECK_EVERY` appends, so the paths taken for every chunk only compare a length.

    def _clear_pending(self, pieces: list[str] | None = None) -> None:
        self._pending = pieces or []
        self._counted = 0  # how many pieces `_pending_size` has added up
        self._pending_size = 0
        self._check_at = _CHECK_EVERY

    def _count_pending(self) -> None:
        """Add up the pieces not counted yet; raise `FrameTooLong` past `max_frame`."""
        pending = self._pending
        self._pending_size += sum(map(len, pending[self._counted :]))
        self._counted = len(pending)
        self._check_at = self._counted + _CHECK_EVERY
        if self._pending_size > self._max_frame:
            raise FrameTooLong(self._max_frame)

    def _pending_ends_lf(self) -> bool:
        """Whether the unfinished frame ends with LF: then a leading LF completes "\\n\\n"."""
        for piece in reversed(self._pending):
            if piece:
                return piece[-1] == "\n"
        return False

    @abstractmethod
    def end(self) -> list[T]:
        """The body ended: return what the unfinished last frame still yields, if anything."""

    @abstractmethod
    def _frames(self, frames: list[str]) -> list[T]:
        """Turn complete frames, in order, into values."""

    def _take_rest(self) -> str:
        """At the end of the body: the unfinished frame, a partial character as U+FFFD."""
        rest = "".join(self._pending) + _utf8_decode(self._undecoded, "replace", True)[0]
        self._undecoded = b""
        self._clear_pending()
        return rest

    def _decode(self, data: bytes) -> str:
        """The careful path: keep a cut character's bytes, drop the BOM, replace bad bytes."""
        if self._undecoded:
            data = self._undecoded + data
        text, used = _utf8_decode(data, "replace", False)
        self._undecoded = data[used:]
        if self._at_start and text:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
        self._plain = not (self._undecoded or self._at_start)
        return text

    def _normalize_line_ends(self, text: str) -> str:
        if not text:  # a chunk that held only part of a character: nothing changes
            return text
        if self._after_cr and text[0] == "\n":
            text = text[1:]
        self._after_cr = text[-1:] == "\r"
        return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


class EventStreamDecoder(FrameSplitter[ServerSentEvent]):
    """Feed it the response body's bytes as they arrive; it returns the finished events.

    The frames are blocks of lines ending at a blank line. The spec dispatches at every
    blank line and then starts again from empty buffers, so each block is interpreted on
    its own: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
    """

    separator = "\n\n"

    def __init__(self, max_frame: int | None = None) -> None:
        super().__init__(max_frame)
        self._last_event_id = ""
        self._retry: int | None = None
        self._discarded = False

    @property
    def last_event_id(self) -> str:
        """The ID to send as Last-Event-ID on reconnection ("" if the server set none)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds the server asked for, None if it did not."""
        return self._retry

    @property
    def discarded(self) -> bool:
        """True after `end()` if the stream stopped inside an event (or inside a line).

        Such an event is dropped, as the spec requires, so a caller can tell a stream
        that was cut short from one that ended cleanly.
        """
        return self._discarded

    def end(self) -> list[ServerSentEvent]:
        """The body ended: drop the unterminated block and return [] (nothing to dispatch).

        https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
        "Once the end of the file is reached, any pending data must be discarded. (If the
        file ends in the middle of an event, before the final empty line, the incomplete
        event is not dispatched.)" The block's complete lines were still processed as they
        arrived, so a `retry` among them counts; an `id` only counts at dispatch.
        """
        *lines, partial = self._take_rest().split("\n")
        self._discarded = bool(partial)
        for line in lines:
            if line and line[0] != ":":
                name, value = _parse_field(line)
                if name == "retry":
                    self._set_retry(value)
                elif name in ("data", "event", "id"):
                    self._discarded = True
        return []

    def _frames(self, frames: list[str]) -> list[ServerSentEvent]:
        events = []
        for block in frames:
            if block.startswith("data: ") and "\n" not in block:
                # Fast path for the block nearly every LLM event is: one `data: ` line.
                # It is what `_interpret` returns for it, minus the loop.
                events.append(_new_event(("message", block[6:], self._last_event_id, None)))
            else:
                event = self._interpret(block)
                if event is not None:
                    events.append(event)
        return events

    def _interpret(self, block: str) -> ServerSentEvent | None:
        """Process the lines of one block, then dispatch it.

        https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
        """
        event_type = ""
        data: list[str] = []
        retry = None
        for line in block.split("\n"):
            # An empty line here can only lead the block, right after the previous
            # dispatch: dispatching empty buffers again does nothing. A line starting
            # with a colon is a comment.
            if not line or line[0] == ":":
                continue
            name, value = _parse_field(line)
            if name == "data":
                data.append(value)
            elif name == "event":
                event_type = value
            elif name == "id":
                # "If the field value does not contain U+0000 NULL, then set the last event
                # ID buffer to the field value. Otherwise, ignore the field." Each block
                # ends in a dispatch, which copies the buffer into the last event ID.
                if "\0" not in value:
                    self._last_event_id = value
            elif name == "retry" and self._set_retry(value):
                retry = self._retry
            # Any other field name is ignored.
        # https://html.spec.whatwg.org/multipage/server-sent-events.html#dispatchMessage
        # "If the data buffer is an empty string, ... return": no event for a block
        # without `data` (a lone `id:` or comment), but `data` with an empty value counts.
        if not data:
            return None
        # Data lines are joined with LF (the buffer's trailing LF is removed); an empty
        # event type buffer means "message".
        return ServerSentEvent(event_type or "message", "\n".join(data), self._last_event_id, retry)

    def _set_retry(self, value: str) -> bool:
        """Apply a `retry` field; True if it was valid.

        https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
        "If the field value consists of only ASCII digits, then interpret the field value as
        an integer in base ten ... Otherwise, ignore the field." (An empty value has no
        digits and is ignored, as browsers do.)
        """
        if value.isascii() and value.isdigit():
            self._retry = int(value)
            return True
        return False


def _parse_field(line: str) -> tuple[str, str]:
    """Split a field line into name and value.

    https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
    The name ends at the first colon and one space after it is removed from the value;
    a line without a colon is a field name with an empty value.
    """
    name, _, value = line.partition(":")
    if value[:1] == " ":
        value = value[1:]
    return name, value
