"""Bytes of a streamed body in, payloads out, whatever its framing; sans-I/O.

An event stream gives SSE events, NDJSON gives lines, and an unframed text body
(`text/plain`: FastAPI's `StreamingResponse`, the AI SDK's `toTextStreamResponse()`)
gives its text as it arrives. A body whose Content-Type does not say (`text/plain`,
none at all, `application/octet-stream`) is framed the way its first characters
show: servers label event streams and NDJSON as `text/plain` too.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

from .ndjson import NDJSONDecoder
from .sse import EventStreamDecoder

__all__ = ["Framer", "Payload"]

# A line that opens an event stream: a field name and a colon, or a comment.
# https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
_SSE_OPENINGS = ("data:", "event:", "id:", "retry:", ":")
_HOLD_LIMIT = 4096  # blank bytes before the body is taken for text
_BLANK = b" \t\r\n\xef\xbb\xbf"  # whitespace and the UTF-8 BOM's bytes


class Payload(NamedTuple):
    """One piece of the answer: SSE data with its event name, an NDJSON line, or text.

    `event` is None for a piece of an unframed text body: it is answer text as is,
    never JSON or a marker to interpret.
    """

    data: str
    event: str | None = "message"


class Framer:
    """Feed it the body's bytes; it returns the payloads they complete.

    `wire` is "sse", "ndjson" or "text" ("text": not known yet, decided by the
    first non-blank characters; it then becomes "sse", "ndjson" or "plain").
    `max_frame` caps one event or line (see `sse.FrameSplitter`).
    """

    def __init__(self, wire: str, max_frame: int | None = None) -> None:
        self.wire = wire
        self.sse = EventStreamDecoder(max_frame)
        self._lines = NDJSONDecoder(max_frame)
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = b""  # the opening bytes of an undecided body, all blank so far

    def feed(self, data: bytes) -> list[Payload]:
        if self.wire == "text":
            self._held += data
            opening = self._held.lstrip(_BLANK).decode("utf-8", "replace")
            if _undecided(opening) and len(self._held) < _HOLD_LIMIT:
                return []
            data, self._held = self._held, b""
            self.wire = _framing_of(opening)
        return self._split(data)

    def end(self) -> list[Payload]:
        """The body ended: what its unfinished end still holds (an NDJSON line, text)."""
        if self.wire == "text":
            held, self._held = self._held, b""
            self.wire = _framing_of(held.lstrip(_BLANK).decode("utf-8", "replace"))
            payloads = self._split(held)
        else:
            payloads = []
        if self.wire == "sse":
            self.sse.end()
        elif self.wire == "ndjson":
            payloads += [Payload(line) for line in self._lines.end()]
        else:
            rest = self._text.decode(b"", final=True)
            payloads += [Payload(rest, None)] if rest else []
        return payloads

    def _split(self, data: bytes) -> list[Payload]:
        if self.wire == "sse":
            return [Payload(event.data, event.event) for event in self.sse.feed(data)]
        if self.wire == "ndjson":
            return [Payload(line) for line in self._lines.feed(data)]
        text = self._text.decode(data)
        return [Payload(text, None)] if text else []


def _framing_of(opening: str) -> str:
    if opening.startswith(_SSE_OPENINGS):
        return "sse"
    # A JSON object per line; an answer that merely starts with "{" is rare in prose.
    return "ndjson" if opening.startswith("{") else "plain"


def _undecided(opening: str) -> bool:
    """Whether the first characters could still open either an event stream or text."""
    return not opening or (
        len(opening) < 6 and any(start.startswith(opening) for start in _SSE_OPENINGS)
    )
