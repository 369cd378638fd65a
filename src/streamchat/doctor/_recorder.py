"""Sans-I/O: the timeline of one body's reads, decoded the way the chat client decodes it."""

from __future__ import annotations

import zlib

from .._framing import Framer, Payload
from ..deltas import Delta, Done, StreamError
from ..providers import make_parser, wire_format
from ..transport import Limits

__all__ = ["ACCEPT_ENCODING", "SAMPLE_LIMIT", "ZLIB_ENCODINGS", "Recorder", "TooLarge"]


# The doctor asks for what a browser asks for, less `br` and `zstd`, which the
# standard library cannot decode. A server compresses only when asked, and
# compression is one of the things that holds a stream back: asking for `identity`
# as the chat client does would hide the problem the doctor is looking for.
# HTTP's "deflate" is the zlib format, so one zlib decoder with automatic header
# detection (32 + MAX_WBITS) reads both: https://www.rfc-editor.org/rfc/rfc9110#section-8.4.1
ACCEPT_ENCODING = "gzip, deflate"
ZLIB_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})

SAMPLE_LIMIT = 64 * 1024


class Recorder:
    """Sans-I/O: takes (time, raw bytes) reads and keeps the timeline of chunks and events."""

    def __init__(
        self, provider: str, content_type: str | None, encoding: str, limits: Limits
    ) -> None:
        wire = wire_format(provider, content_type)
        self._whole = wire == "json"
        # The same framing as the transport's, so both read a body the same way.
        self._framer = Framer(wire, max_frame=limits.line)
        self.chunks: list[tuple[float, int]] = []
        self.events: list[tuple[float, int]] = []
        self.sample = bytearray()
        self.error: StreamError | None = None
        self.complete = False
        self.event_total = 0
        self._parser = make_parser(provider, content_type)
        self._inflate = (
            zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding in ZLIB_ENCODINGS else None
        )
        self._max_body = limits.body
        self._inflated = 0

    @property
    def wire(self) -> str:
        """ "sse", "ndjson", "plain" (unframed text), "json", or "text" while undecided."""
        return "json" if self._whole else self._framer.wire

    @property
    def unterminated(self) -> bool:
        return self._framer.sse.discarded

    def feed(self, t: float, raw: bytes) -> None:
        self.chunks.append((t, len(raw)))
        self._decode(t, self._inflated_part(raw) if self._inflate else raw)

    def _inflated_part(self, raw: bytes) -> bytes:
        """Decompress at most the room left under the limit: a gzip bomb stops there.

        (1 MB of gzip can inflate to 1 GB; asking zlib for at most the room left
        keeps the rest of the input unread.)
        """
        assert self._inflate is not None
        data = self._inflate.decompress(raw, self._max_body - self._inflated + 1)
        self._inflated += len(data)
        if self._inflated > self._max_body:
            self._inflate = None  # nothing more is inflated, not even at the end
            raise TooLarge(f"the body inflates to more than {self._max_body:,} bytes")
        return data

    def end(self, t: float, clean: bool) -> None:
        """The body ended (`clean`: at its proper end) at time `t`."""
        if self._inflate is not None:
            self._decode(t, self._inflate.flush(self._max_body - self._inflated + 1))
        if not self._whole:
            self._count(t, self._framer.end())
        elif len(self.sample) < SAMPLE_LIMIT:
            self._take(self._parser.feed(self.sample.decode("utf-8", "replace")))
        if clean:
            self._take(self._parser.end(clean=True))

    def _decode(self, t: float, data: bytes) -> None:
        if len(self.sample) < SAMPLE_LIMIT:
            self.sample += data[: SAMPLE_LIMIT - len(self.sample)]
        if not self._whole:
            self._count(t, self._framer.feed(data))

    def _count(self, t: float, payloads: list[Payload]) -> None:
        if payloads:
            self.events.append((t, len(payloads)))
            self.event_total += len(payloads)
        for data, event in payloads:
            deltas = (
                self._parser.feed_text(data) if event is None else self._parser.feed(data, event)
            )
            self._take(deltas)

    def _take(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            if isinstance(delta, Done):
                self.complete = True
            elif isinstance(delta, StreamError):
                self.error = delta


class TooLarge(Exception):
    pass
