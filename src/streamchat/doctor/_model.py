"""What one measurement recorded, what was found in it, and how its events bunch up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..deltas import StreamError

__all__ = ["BURST_WINDOW", "Ending", "Finding", "Measurements", "Verdict", "bursts"]


Verdict = Literal["ok", "buffered", "incomplete", "not-streaming", "error"]
# How the measured exchange ended: the body's end was reached ("complete"), the
# connection closed inside the body ("cut"), the doctor's time ran out ("timeout"),
# no response came ("connect"), the status was an error ("http"), or the body could
# not be decompressed ("undecodable").
Ending = Literal["complete", "cut", "timeout", "connect", "http", "undecodable"]

# Events that arrive within 10 ms of a burst's first event were released together:
# a token generator and a reader cannot be told apart at that scale.
BURST_WINDOW = 0.010


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found wrong (or worth changing), with what to do about it."""

    id: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "message": self.message, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class Measurements:
    """What one request recorded; times are seconds since the request started.

    `chunks` are the raw reads as (time, bytes on the wire after de-chunking, before
    decompression); `events` are (time, SSE events or NDJSON lines that read
    completed), for the reads that completed any.
    """

    url: str
    provider: str
    timeout: float = 30.0
    ending: Ending = "complete"
    error: str = ""
    http_version: str | None = None
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    headers_at: float | None = None
    wire: str | None = None
    chunks: tuple[tuple[float, int], ...] = ()
    events: tuple[tuple[float, int], ...] = ()
    total: float = 0.0
    complete: bool = False
    unterminated: bool = False
    stream_error: StreamError | None = None
    alpn: str | None = None
    sample: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """A response header's value (repeated ones joined by ", "), None when absent."""
        values = [value for key, value in self.headers if key == name.lower()]
        return ", ".join(values) if values else None

    @property
    def media_type(self) -> str:
        return (self.header("content-type") or "").partition(";")[0].strip().lower()

    @property
    def event_count(self) -> int:
        return sum(count for _, count in self.events)

    @property
    def byte_count(self) -> int:
        return sum(size for _, size in self.chunks)

    @property
    def first_byte(self) -> float | None:
        return self.chunks[0][0] if self.chunks else None

    @property
    def first_event(self) -> float | None:
        return self.events[0][0] if self.events else None


def bursts(
    arrivals: Sequence[tuple[float, int]], window: float = BURST_WINDOW
) -> list[tuple[float, int]]:
    """Group (time, count) arrivals into bursts: those within `window` of a burst's first.

    A fixed window from the burst's start, not a chain of small gaps: a fast model
    whose events come 2 ms apart must not merge into one long "burst".
    """
    groups: list[tuple[float, int]] = []
    for t, count in arrivals:
        if groups and t - groups[-1][0] <= window:
            groups[-1] = (groups[-1][0], groups[-1][1] + count)
        else:
            groups.append((t, count))
    return groups
