"""`streamchat doctor`: send one real request and tell why an endpoint does not stream.

Half of streaming trouble lives on the server side: a proxy that buffers, gzip
that waits for a full buffer, HTTP/2 that resets the stream, a body cut before
its terminal chunk. Little of it shows in the headers; it shows in *when* the
bytes arrive. So `diagnose` sends the request the chat client would send,
timestamps every raw network chunk, decodes the body the way the client does,
and hands the recorded `Measurements` to `analyse`, a pure function that turns
them into a verdict and findings, each with its fix. Only `diagnose` does I/O:
`analyse` and the renderings work on recorded numbers, so they are tested on
synthetic timelines. docs/nginx.md explains the fixes at length.
"""

from __future__ import annotations

import contextlib
import html
import math
import re
import socket
import ssl
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx

from ._framing import Framer, Payload
from ._secrets import Secrets, mask_url
from ._validation import request_problem
from .deltas import Delta, Done, StreamError
from .providers import (
    MEDIA_TYPES,
    ChatRequest,
    build_request,
    key_variables,
    make_parser,
    wire_format,
)
from .sse import FrameTooLong
from .transport import Limits, server_message

__all__ = [
    "Diagnosis",
    "Finding",
    "Measurements",
    "analyse",
    "bursts",
    "diagnose",
    "held_events",
    "offered_protocol",
    "sparkline",
]

Verdict = Literal["ok", "buffered", "incomplete", "not-streaming", "error"]
# How the measured exchange ended: the body's end was reached ("complete"), the
# connection closed inside the body ("cut"), the doctor's time ran out ("timeout"),
# no response came ("connect"), the status was an error ("http"), or the body could
# not be decompressed ("undecodable").
Ending = Literal["complete", "cut", "timeout", "connect", "http", "undecodable"]

# The doctor asks for what a browser asks for, less `br` and `zstd`, which the
# standard library cannot decode. A server compresses only when asked, and
# compression is one of the things that holds a stream back: asking for `identity`
# as the chat client does would hide the problem the doctor is looking for.
# HTTP's "deflate" is the zlib format, so one zlib decoder with automatic header
# detection (32 + MAX_WBITS) reads both: https://www.rfc-editor.org/rfc/rfc9110#section-8.4.1
ACCEPT_ENCODING = "gzip, deflate"
_ZLIB_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})

# Events that arrive within 10 ms of a burst's first event were released together:
# a token generator and a reader cannot be told apart at that scale.
BURST_WINDOW = 0.010
# A burst of at least 4 events after at least 0.2 s without any was held back:
# a model's first token may be slow, but it does not come with three more at once.
HELD_BURST = 4
HELD_SILENCE = 0.2
# Streams shorter than this, or with fewer events, look the same buffered or not.
MIN_DURATION = 0.5
MIN_EVENTS = 5

_SAMPLE_LIMIT = 64 * 1024
REPORTED_HEADERS = (
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "content-length",
    "x-accel-buffering",
    "cache-control",
    "server",
    "via",
    "alt-svc",
)

_BLOCKS = " ▁▂▃▄▅▆▇█"


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


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The verdict on one endpoint, the findings behind it and the measurements."""

    verdict: Verdict
    findings: tuple[Finding, ...]
    measurements: Measurements

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(finding.id for finding in self.findings)

    def to_json(self) -> dict[str, Any]:
        m = self.measurements
        return {
            "verdict": self.verdict,
            "findings": [finding.to_json() for finding in self.findings],
            "url": m.url,
            "provider": m.provider,
            "ending": m.ending,
            "http_version": m.http_version,
            "status": m.status,
            "headers": {name: m.header(name) for name in REPORTED_HEADERS},
            "alpn": m.alpn,
            "time_to_headers": _round(m.headers_at),
            "time_to_first_byte": _round(m.first_byte),
            "time_to_first_event": _round(m.first_event),
            "total": _round(m.total),
            "bytes": m.byte_count,
            "event_count": m.event_count,
            "bursts": len(bursts(m.events)),
            "chunks": [[_round(t), size] for t, size in m.chunks],
            "events": [[_round(t), count] for t, count in m.events],
        }

    def render_text(self, width: int = 48) -> str:
        """The terminal report: verdict, headers, timings, a chart of arrivals, findings."""
        m = self.measurements
        lines = [f"streamchat doctor: {_printable(m.url)} ({m.provider})"]
        lines += [f"verdict: {self.verdict}", ""]
        if m.status is not None:
            lines.append(f"  {m.http_version} {m.status} {_printable(m.reason)}".rstrip())
            lines += [
                f"  {_title(name):<20}{_printable(m.header(name) or '-')}"
                for name in REPORTED_HEADERS
                if m.header(name) is not None or name in _ALWAYS_SHOWN
            ]
            lines.append("")
        lines += [f"  {label:<20}{value}" for label, value in _timings(m)]
        if m.chunks:
            lines += ["", *_chart(m, width)]
        for finding in self.findings:
            lines += ["", _wrap(f"[{finding.id}] {finding.message}", "", "  ")]
            lines.append(_wrap(finding.fix, "  fix: ", "       "))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The same report for notebooks, with an inline SVG of arrival times (no scripts)."""
        m = self.measurements
        esc = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{esc(_title(name))}</th>"
            f"<td><code>{esc(m.header(name) or '-')}</code></td></tr>"
            for name in REPORTED_HEADERS
            if m.header(name) is not None or name in _ALWAYS_SHOWN
        )
        rows += "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{esc(label)}</th>"
            f"<td>{esc(value)}</td></tr>"
            for label, value in _timings(m)
        )
        findings = "".join(
            f"<li><b>{esc(f.id)}</b>: {esc(f.message)}<br><i>fix:</i> {esc(f.fix)}</li>"
            for f in self.findings
        )
        status = f"{m.http_version} {m.status} {m.reason}" if m.status is not None else m.ending
        return (
            "<div class='streamchat-doctor' style='font-family:sans-serif'>"
            f"<p><b>streamchat doctor</b>: <code>{esc(m.url)}</code> ({esc(m.provider)})<br>"
            f"verdict: <b>{esc(self.verdict)}</b> &middot; {esc(status)}</p>"
            f"{_svg(m)}<table>{rows}</table><ul>{findings}</ul></div>"
        )


_ALWAYS_SHOWN = frozenset({"content-type", "x-accel-buffering", "cache-control"})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _printable(text: str) -> str:
    """Server-controlled text must not drive the terminal (escape sequences, bells)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", text)


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(_printable(text), 88, initial_indent=first, subsequent_indent=rest)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _timings(m: Measurements) -> list[tuple[str, str]]:
    return [
        ("headers after", _seconds(m.headers_at)),
        ("first byte after", _seconds(m.first_byte)),
        ("first event after", _seconds(m.first_event)),
        ("total", _seconds(m.total)),
        ("reads", f"{len(m.chunks)} ({_plural(m.byte_count, 'byte')})"),
        ("events", f"{m.event_count} in {_plural(len(bursts(m.events)), 'burst')}"),
    ]


# -- the chart ---------------------------------------------------------------------------


def sparkline(points: Sequence[tuple[float, int]], span: float, width: int) -> str:
    """`points` (time, amount) summed into `width` equal time buckets over [0, span].

    Each bucket is drawn as a block whose height is its share of the fullest
    bucket (at least the lowest block when not empty), a space when empty.
    """
    buckets = [0] * width
    for t, amount in points:
        index = min(width - 1, int(t / span * width)) if span > 0 else width - 1
        buckets[index] += amount
    top = max(buckets) or 1
    return "".join(
        _BLOCKS[max(1, math.ceil(value / top * 8))] if value else " " for value in buckets
    )


def _axis(span: float, width: int) -> str:
    """A time axis under a `width`-wide chart: 0, the middle (when it fits) and `span`."""
    end, middle = f"{span:.2f} s", f"{span / 2:.2f}"
    line = list("0".ljust(width))
    start = width // 2 - len(middle) // 2
    if start > 1 and start + len(middle) < width - len(end):
        line[start : start + len(middle)] = middle
    line[width - len(end) :] = end
    return "".join(line)


def _chart(m: Measurements, width: int) -> list[str]:
    span = max(m.total, 1e-3)
    return [
        f"  bytes  |{sparkline(m.chunks, span, width)}|",
        f"  events |{sparkline(m.events, span, width)}|",
        f"          {_axis(span, width)}",
    ]


def _svg(m: Measurements) -> str:
    """Chunk arrivals as bars (height ~ bytes), event arrivals as dots, over a time axis."""
    left, right, span = 40.0, 470.0, max(m.total, 1e-3)

    def x(t: float) -> float:
        return left + (right - left) * min(t, span) / span

    top = max((size for _, size in m.chunks), default=1)
    bars = "".join(
        f"<rect x='{x(t):.1f}' y='{50 - 40 * size / top:.1f}' width='2'"
        f" height='{40 * size / top:.1f}' fill='#4c78a8'>"
        f"<title>{t:.3f} s: {size} bytes</title></rect>"
        for t, size in m.chunks
    )
    dots = "".join(
        f"<circle cx='{x(t):.1f}' cy='62' r='{min(6.0, 1.5 + math.sqrt(count)):.1f}'"
        f" fill='#f58518'><title>{t:.3f} s: {count} events</title></circle>"
        for t, count in m.events
    )
    ticks = "".join(
        f"<text x='{x(t):.1f}' y='88' font-size='10' text-anchor='middle'>{t:.2f} s</text>"
        for t in (0.0, span / 2, span)
    )
    return (
        "<svg xmlns='http://www.w3.org/2000/svg' width='480' height='95' role='img'"
        " aria-label='arrival times of chunks (bars) and events (dots)'>"
        "<text x='2' y='35' font-size='10'>bytes</text>"
        "<text x='2' y='65' font-size='10'>events</text>"
        f"<line x1='{left}' y1='74' x2='{right}' y2='74' stroke='#888'/>"
        f"{bars}{dots}{ticks}</svg>"
    )


# -- analysis (pure) --------------------------------------------------------------------


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


def held_events(arrivals: Sequence[tuple[float, int]]) -> int:
    """How many events arrived in held bursts: >= 4 events after >= 0.2 s of silence.

    Such a burst is events that were ready earlier and released together by a
    buffer; the silence is counted from the request's start for the first burst.
    """
    held, previous = 0, 0.0
    for t, count in bursts(arrivals):
        if count >= HELD_BURST and t - previous >= HELD_SILENCE:
            held += count
        previous = t
    return held


def analyse(m: Measurements) -> Diagnosis:
    """The verdict and findings for recorded measurements (no I/O; see module docstring).

    Verdicts, most serious first: `error` (no response, an error status, or an
    error reported inside the stream), `not-streaming` (one JSON or HTML document,
    or a body with no events and no stream content type), `incomplete` (cut before
    the terminal chunk, no completion marker, or still running at the timeout),
    `buffered` (see `_buffering`), else `ok`.
    """
    findings = tuple(finding for check in _CHECKS for finding in check(m))
    return Diagnosis(_verdict(m, findings), findings, m)


def _verdict(m: Measurements, findings: tuple[Finding, ...]) -> Verdict:
    ids = {finding.id for finding in findings}
    if ids & {"connect", "http-status", "provider-error", "content-encoding"} or (
        "timeout" in ids and not m.events
    ):
        return "error"
    if not _is_stream(m):
        return "not-streaming"
    if m.ending != "complete" or not m.complete:
        return "incomplete"
    return "buffered" if "buffering" in ids else "ok"


def _is_stream(m: Measurements) -> bool:
    if m.wire not in MEDIA_TYPES or _protocol_error(m):
        return False
    return bool(m.events) or m.media_type in MEDIA_TYPES[m.wire]


def _protocol_error(m: Measurements) -> str | None:
    error = m.stream_error
    return error.message if error is not None and error.kind == "protocol" else None


def _failure(m: Measurements) -> Iterator[Finding]:
    if m.ending == "connect":
        yield Finding("connect", f"no response: {m.error}", FIX_CONNECT)
    elif m.ending == "http":
        message = f"HTTP {m.status} {m.reason}".rstrip() + (f": {m.error}" if m.error else "")
        yield Finding("http-status", message, _status_fix(m.status or 0))
    elif m.ending == "undecodable":
        yield Finding("content-encoding", m.error, FIX_COMPRESSION)
    elif m.stream_error is not None and m.stream_error.kind == "provider":
        message = f"the server reported an error inside the stream: {m.stream_error.message}"
        yield Finding("provider-error", message, FIX_PROVIDER_ERROR)


def _status_fix(status: int) -> str:
    if status < 400:
        return (
            "Use the URL it redirects to (see Location): clients do not follow a POST's redirect."
        )
    if status in (401, 403):
        return (
            f"Check the API key: {' / '.join(key_variables())} are sent"
            " only to their provider's own host over https; for any other server pass"
            " --header 'Authorization: Bearer ...'."
        )
    if status == 404:
        return "Check the URL's path and the model name (--model)."
    if status == 429:
        return "Rate limited or out of quota: wait (see Retry-After), or check the account."
    if status in (502, 503, 504):
        return (
            "A proxy could not get an answer from the upstream: check that the upstream"
            " runs, and raise the proxy's read timeout (nginx: proxy_read_timeout)."
        )
    return "Read the server's message above; a 400 usually names the field it rejects."


def _content_type(m: Measurements) -> Iterator[Finding]:
    if m.status is None or m.ending not in ("complete", "cut", "timeout"):
        return
    shown = m.header("content-type") or "no Content-Type"
    if not _is_stream(m):
        detail = _protocol_error(m) or server_message(m.sample, m.media_type)
        message = f"the answer is not a stream ({shown})" + (f": {detail}" if detail else "")
        yield Finding("content-type", message, FIX_NOT_STREAMING)
    elif m.wire in MEDIA_TYPES and m.media_type not in MEDIA_TYPES[m.wire]:
        expected = MEDIA_TYPES[m.wire][0]
        message = f"the stream is served as {shown}, not {expected}"
        yield Finding("content-type", message, FIX_CONTENT_TYPE)


def _buffering(m: Measurements) -> Iterator[Finding]:
    """Buffered: a stream of >= 0.5 s and >= 5 events whose events mostly came held back.

    Precisely: at least half of the events arrived in held bursts (`held_events`).
    When the first event comes does not count on its own: a model may think for
    seconds before its first token, and then stream normally.
    """
    count = m.event_count
    if m.total < MIN_DURATION or count < MIN_EVENTS or 2 * held_events(m.events) < count:
        return
    groups = bursts(m.events)
    biggest = max(groups, key=lambda group: group[1])
    message = (
        f"the {count} events arrived in {_plural(len(groups), 'burst')} over {m.total:.2f} s;"
        f" the largest held {biggest[1]} events at {biggest[0]:.2f} s, and the first came after"
        f" {m.first_event:.2f} s: something between the model and here holds them back"
    )
    if _compressed(m):
        message += (
            f" (the body is {m.header('content-encoding')}-compressed, and a compressor"
            " that is not flushed after each event waits for a full buffer)"
        )
    yield Finding("buffering", message, FIX_BUFFERING)


def _compressed(m: Measurements) -> bool:
    return (m.header("content-encoding") or "identity").strip().lower() != "identity"


def _compression(m: Measurements) -> Iterator[Finding]:
    if _is_stream(m) and _compressed(m) and m.ending != "undecodable":
        message = (
            f"the stream is compressed (Content-Encoding: {m.header('content-encoding')});"
            " compressors hold bytes back until their buffer fills unless flushed after every"
            " event, and every proxy on the way must then pass the flushes on"
        )
        yield Finding("compression", message, FIX_COMPRESSION)


def _content_length(m: Measurements) -> Iterator[Finding]:
    length = m.header("content-length")
    if length is not None and _is_stream(m):
        message = (
            f"the stream came with Content-Length: {length}: whoever sent it had the whole"
            " answer before sending the first byte"
        )
        yield Finding("content-length", message, FIX_CONTENT_LENGTH)


def _ending(m: Measurements) -> Iterator[Finding]:
    # A chunked body ends with a zero-length last-chunk; without it the body was cut:
    # https://www.rfc-editor.org/rfc/rfc9112#section-7.1
    if m.ending == "cut":
        message = (
            "the connection closed inside the body, before the terminating zero-length"
            f" chunk ({m.error}); browsers report ERR_INCOMPLETE_CHUNKED_ENCODING"
        )
        if _offers_http2(m):
            message += ", or ERR_HTTP2_PROTOCOL_ERROR when they use HTTP/2"
        yield Finding("incomplete-chunked", message, FIX_INCOMPLETE)
    elif m.ending == "timeout":
        got = f"{m.event_count} events" if m.events else "nothing after the headers"
        if m.status is None:
            got = "not even the response headers"
        message = f"the answer did not end within the doctor's {m.timeout:g} s ({got} so far)"
        yield Finding("timeout", message, FIX_TIMEOUT)
    if m.unterminated:
        message = "the body ended inside an event: its last event lacks the blank line that ends it"
        yield Finding("unterminated-event", message, FIX_UNTERMINATED)
    if m.ending == "complete" and _is_stream(m) and not m.complete:
        message = "the body ended cleanly but without the format's completion marker"
        if m.stream_error is not None and m.stream_error.kind == "incomplete":
            message = m.stream_error.message
        yield Finding("no-end-marker", message, FIX_END_MARKER)


def _offers_http2(m: Measurements) -> bool:
    alt_svc = m.header("alt-svc") or ""
    return m.http_version == "HTTP/2" or m.alpn == "h2" or bool(re.search(r"\bh[23]\b", alt_svc))


def _http2(m: Measurements) -> Iterator[Finding]:
    if m.http_version == "HTTP/2":
        how = "the answer came over HTTP/2"
    elif m.alpn == "h2":
        how = "the server offers HTTP/2 in its TLS handshake (ALPN h2), so browsers use it"
    elif _offers_http2(m):
        how = f"the server advertises HTTP/2 or HTTP/3 (Alt-Svc: {m.header('alt-svc')})"
    else:
        return
    message = (
        f"{how}; a stream that a proxy resets or cuts then fails in browsers as"
        " ERR_HTTP2_PROTOCOL_ERROR, and connection-specific headers forwarded from an HTTP/1.1"
        " upstream (Transfer-Encoding, Connection) are protocol errors in HTTP/2 (RFC 9113 8.2.2)"
    )
    yield Finding("http2", message, FIX_HTTP2)


def _advice(m: Measurements) -> Iterator[Finding]:
    """Advice for streams that work: what keeps them working when the setup changes."""
    if not _is_stream(m) or m.ending != "complete":
        return
    cache = (m.header("cache-control") or "").lower()
    if "no-cache" not in cache and "no-store" not in cache:
        message = f"the stream's Cache-Control is {m.header('cache-control') or 'missing'}"
        yield Finding("cache-control", message, FIX_CACHE_CONTROL)
    proxied = "nginx" in (m.header("server") or "").lower() or m.header("via") is not None
    if proxied and m.header("x-accel-buffering") is None:
        message = (
            "the answer passed a proxy (nginx hides X-Accel-Buffering from the client, so"
            " whether the upstream sends it cannot be seen from here)"
        )
        yield Finding("no-accel-header", message, FIX_ACCEL)
    if m.total < MIN_DURATION or m.event_count < MIN_EVENTS:
        message = (
            f"the answer was short ({m.event_count} events in {m.total:.2f} s): too short to"
            " tell a buffered stream from a live one"
        )
        yield Finding("short-stream", message, FIX_SHORT)


_CHECKS: tuple[Callable[[Measurements], Iterator[Finding]], ...] = (
    _failure,
    _content_type,
    _ending,
    _buffering,
    _compression,
    _content_length,
    _http2,
    _advice,
)

FIX_CONNECT = (
    "Check the URL (scheme, host, port), that the server runs and listens there, and for"
    " https its certificate."
)
FIX_PROVIDER_ERROR = (
    "Read the provider's message: a wrong model name, an exhausted quota or a rejected"
    " parameter. The transport worked."
)
FIX_NOT_STREAMING = (
    'Ask for a stream and serve it as one: OpenAI-style APIs need "stream": true in the body'
    " (streamchat sends it; a server that ignores it answers with one JSON document), Gemini"
    " the :streamGenerateContent?alt=sse URL. Answer with Content-Type: text/event-stream"
    " (NDJSON: application/x-ndjson). An HTML page is usually a login or error page of a proxy."
)
FIX_CONTENT_TYPE = (
    "Send Content-Type: text/event-stream (NDJSON: application/x-ndjson): proxies and CDNs"
    " decide by type whether to buffer and compress, and browsers' EventSource refuses any"
    " other type."
)
FIX_BUFFERING = (
    "Turn buffering off in every layer between the model and the client. nginx: send"
    " X-Accel-Buffering: no from the upstream, or proxy_buffering off; in the streaming"
    " location, and gzip off; there (docs/nginx.md). Apache: ProxyPass ... flushpackets=on and"
    " SetEnv no-gzip 1. The app must flush after each event (a streaming response, not a body"
    " built and returned at the end; no buffering compression middleware)."
)
FIX_COMPRESSION = (
    "Do not compress event streams: nginx gzip off; in the streaming location, or leave"
    " text/event-stream out of gzip_types; make compression middleware skip"
    " text/event-stream. Send Cache-Control: no-transform so intermediaries leave it alone."
)
FIX_CONTENT_LENGTH = (
    "Stream with chunked encoding: remove the layer that buffers the body and sets"
    " Content-Length (a buffering proxy, a compression middleware, a serverless platform that"
    " buffers responses)."
)
FIX_INCOMPLETE = (
    "Find what closed the connection: the upstream crashed or timed out (nginx's error log says"
    " 'upstream prematurely closed connection'), or a proxy's idle timeout fired: raise nginx"
    " proxy_read_timeout (60 s by default) and send an SSE comment line (': ping') every 15 s."
)
FIX_TIMEOUT = (
    "If the answer is genuinely long, raise --timeout. If nothing arrived, a proxy may be"
    " holding the whole answer (see buffering), or the model is slow to start."
)
FIX_UNTERMINATED = (
    "End every SSE event with a blank line, the last one too: clients drop an unterminated"
    " event (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream)."
)
FIX_END_MARKER = (
    "End the stream with the format's completion marker (OpenAI: data: [DONE]; Anthropic:"
    ' message_stop; Ollama: a line with "done": true), or at least a finish_reason, so'
    " clients can tell a finished answer from a cut one."
)
FIX_HTTP2 = (
    "Serve the stream over HTTP/1.1: nginx: a separate server block (its own port or name)"
    " whose listen has no http2, for the streaming endpoint, and proxy_http_version 1.1 to"
    " the upstream; never forward Connection or Transfer-Encoding headers over HTTP/2."
)
FIX_CACHE_CONTROL = (
    "Send Cache-Control: no-cache (no-transform too, which also tells intermediaries not to"
    " compress): a cache that stores a stream waits for its end."
)
FIX_ACCEL = (
    "Send X-Accel-Buffering: no from the upstream on streaming responses: nginx then never"
    " buffers them, whatever its proxy_buffering setting."
)
FIX_SHORT = "Use a prompt with a longer answer, such as 'Count from 1 to 100, one per line.'"


# -- measuring (I/O) --------------------------------------------------------------------


class _Recorder:
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
            zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding in _ZLIB_ENCODINGS else None
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
            raise _TooLarge(f"the body inflates to more than {self._max_body:,} bytes")
        return data

    def end(self, t: float, clean: bool) -> None:
        """The body ended (`clean`: at its proper end) at time `t`."""
        if self._inflate is not None:
            self._decode(t, self._inflate.flush(self._max_body - self._inflated + 1))
        if not self._whole:
            self._count(t, self._framer.end())
        elif len(self.sample) < _SAMPLE_LIMIT:
            self._take(self._parser.feed(self.sample.decode("utf-8", "replace")))
        if clean:
            self._take(self._parser.end(clean=True))

    def _decode(self, t: float, data: bytes) -> None:
        if len(self.sample) < _SAMPLE_LIMIT:
            self.sample += data[: _SAMPLE_LIMIT - len(self.sample)]
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


def diagnose(
    url: str,
    *,
    prompt: str = "Say hello.",
    provider: str = "auto",
    model: str | None = None,
    headers: dict[str, str] | None = None,
    system: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    http2: bool = False,
    verify: ssl.SSLContext | bool = True,
    limits: Limits = Limits(),
    progress: Callable[[int, int], None] | None = None,
    options: dict[str, Any] | None = None,
    max_tokens: int | None = None,
) -> Diagnosis:
    """Send the chat request the client would send and diagnose how its answer arrives.

    HTTP/1.1 by default, the protocol the fixes are written for; `http2=True` asks
    for HTTP/2 the way a browser would (needs the `h2` package). For https URLs a
    separate TLS handshake asks which protocol the server prefers, since browsers
    take HTTP/2 whenever it is offered. `verify` is httpx's (a CA context for tests).
    `limits.body` caps the decompressed body, `limits.line` one event or line.
    Reports are pasted into issues: every secret of the request is redacted from it.
    `progress(bytes, events)` is called after each read, so a caller can show that the
    measurement is alive (it can take as long as the answer). `options` and
    `max_tokens` are build_request's: a small model told to stop early answers sooner.
    """
    request = build_request(
        url,
        [{"role": "user", "content": prompt}],
        provider=provider,
        model=model,
        system=system,
        api_key=api_key,
        headers=headers,
        options=options,
        max_tokens=max_tokens,
    )
    sent = dict(request.headers)
    if not any(name.lower() == "accept-encoding" for name in headers or {}):
        sent = {k: v for k, v in sent.items() if k.lower() != "accept-encoding"}
        sent["Accept-Encoding"] = ACCEPT_ENCODING
    secrets = Secrets.of(request.url, request.headers)
    problem = request_problem(request.url, request.headers)
    if problem is not None:
        base = Measurements(mask_url(request.url), request.provider, timeout)
        return analyse(replace(base, ending="connect", error=secrets.redact(problem)))
    alpn = offered_protocol(request.url, timeout) if request.url.startswith("https:") else None
    with (
        secrets.active(),
        httpx.Client(http1=True, http2=http2, timeout=timeout, verify=verify) as client,
    ):
        measured = _measure(client, request, sent, _Budget(timeout, limits, secrets, progress))
    return analyse(_redacted(replace(measured, alpn=alpn), secrets))


@dataclass(frozen=True, slots=True)
class _Budget:
    """What bounds one measurement: its time, its sizes, and what it must not show."""

    timeout: float
    limits: Limits
    secrets: Secrets
    progress: Callable[[int, int], None] | None = None


class _TooLarge(Exception):
    pass


def _redacted(m: Measurements, secrets: Secrets) -> Measurements:
    """The measurements with every secret of the request masked, wherever a server echoed it."""
    error = m.stream_error
    return replace(
        m,
        error=secrets.redact(m.error),
        headers=tuple((name, secrets.redact(value)) for name, value in m.headers),
        stream_error=error and replace(error, message=secrets.redact(error.message)),
        sample=secrets.redact(m.sample.decode("utf-8", "replace")).encode(),
    )


def offered_protocol(url: str, timeout: float) -> str | None:
    """The protocol a TLS server picks when offered h2 and http/1.1 (ALPN), None if unknown.

    Nothing is sent after the handshake, so the certificate is not checked here:
    this only asks what a browser would be given (RFC 7301).
    """
    parsed = httpx.URL(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with (
            socket.create_connection((parsed.host, parsed.port or 443), timeout) as raw,
            context.wrap_socket(raw, server_hostname=parsed.host) as tls,
        ):
            return tls.selected_alpn_protocol()
    except (OSError, ssl.SSLError):
        return None


def _measure(
    client: httpx.Client, request: ChatRequest, headers: dict[str, str], budget: _Budget
) -> Measurements:
    start = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - start

    # Reports are pasted into issues: no key from the URL or echoed in a server message.
    base = Measurements(mask_url(request.url), request.provider, budget.timeout)
    watchdog = _Watchdog(budget.timeout)
    try:
        with (
            watchdog,
            client.stream(
                request.method,
                request.url,
                headers=headers,
                json=request.json,
                extensions={"trace": watchdog.trace},
            ) as response,
        ):
            measured = _read(response, replace(base, **_head(response, clock())), clock, budget)
    except httpx.HTTPError as exc:
        return replace(base, total=clock(), **_failure_of(exc, watchdog.fired, budget.timeout))
    if watchdog.fired and measured.ending == "cut":
        return replace(measured, ending="timeout", error="")
    return measured


def _failure_of(exc: httpx.HTTPError, timed_out: bool, timeout: float) -> dict[str, str]:
    """The ending and error of an exchange that failed before its response head."""
    if timed_out:
        return {"ending": "timeout", "error": f"no complete response head in {timeout:g} s"}
    if isinstance(exc, httpx.TimeoutException):
        return {"ending": "timeout", "error": str(exc) or type(exc).__name__}
    if isinstance(exc, httpx.RemoteProtocolError):
        return {"ending": "connect", "error": f"the response is not valid HTTP: {exc}"}
    return {"ending": "connect", "error": str(exc) or type(exc).__name__}


class _Watchdog:
    """Shut the connection's socket when the doctor's time is up.

    httpx bounds each read, not the whole exchange: a server that sends its headers
    one byte a second never trips a read timeout. The socket comes from httpcore's
    `trace` extension (https://www.encode.io/httpcore/extensions/#trace); shutting
    it down ends the blocked read at once.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self._socket = info["return_value"].get_extra_info("socket")

    def _fire(self) -> None:
        self.fired = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _head(response: httpx.Response, t: float) -> dict[str, Any]:
    return {
        "http_version": response.http_version,
        "status": response.status_code,
        "reason": response.reason_phrase,
        "headers": tuple((name.lower(), value) for name, value in response.headers.multi_items()),
        "headers_at": t,
    }


def _read(
    response: httpx.Response, m: Measurements, clock: Callable[[], float], budget: _Budget
) -> Measurements:
    content_type = response.headers.get("content-type")
    if response.status_code >= 300:
        error = _error_message(response, budget.secrets)
        return replace(m, ending="http", error=error, total=clock())
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _ZLIB_ENCODINGS | {"identity"}:
        error = f"the body is {encoding}-encoded although the doctor asked for {ACCEPT_ENCODING}"
        return replace(m, ending="undecodable", error=error, total=clock())
    recorder = _Recorder(m.provider, content_type, encoding, budget.limits)
    ending, error = _pump(response, recorder, clock, m.timeout, budget.progress)
    end = clock()
    try:
        recorder.end(end, clean=ending == "complete")
    except zlib.error as exc:
        ending, error = "undecodable", f"the {encoding} body is corrupt: {exc}"
    except (_TooLarge, FrameTooLong) as exc:
        ending, error = "undecodable", f"{exc}, the doctor's limit"
    return replace(
        m,
        ending=ending,
        error=error,
        wire=recorder.wire,
        chunks=tuple(recorder.chunks),
        events=tuple(recorder.events),
        total=end,
        complete=recorder.complete,
        unterminated=recorder.unterminated,
        stream_error=recorder.error,
        sample=bytes(recorder.sample),
    )


def _error_message(response: httpx.Response, secrets: Secrets) -> str:
    """The server's own explanation of an error status, or where it redirects."""
    if response.is_redirect:
        return f"redirects to {mask_url(response.headers.get('location', '?'))}"
    body = bytearray()
    for piece in response.iter_raw():  # raw: a compressed error page is not inflated
        body += piece
        if len(body) >= _SAMPLE_LIMIT:
            break
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"(a {encoding}-compressed error body)"
    return server_message(bytes(body), response.headers.get("content-type", ""), secrets)


def _pump(
    response: httpx.Response,
    recorder: _Recorder,
    clock: Callable[[], float],
    timeout: float,
    progress: Callable[[int, int], None] | None,
) -> tuple[Ending, str]:
    """Read the body into `recorder` until it ends, breaks or the time is up."""
    received = 0
    try:
        for raw in response.iter_raw():
            recorder.feed(clock(), raw)
            received += len(raw)
            if progress is not None:
                progress(received, recorder.event_total)
            if clock() > timeout:
                return "timeout", ""
    except httpx.TimeoutException:
        return "timeout", ""
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return "cut", str(exc) or type(exc).__name__
    except zlib.error as exc:
        return "undecodable", f"the compressed body is corrupt: {exc}"
    except (_TooLarge, FrameTooLong) as exc:
        return "undecodable", f"{exc}, the doctor's limit"
    return "complete", ""
