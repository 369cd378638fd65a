"""The verdict and findings for recorded measurements.

Pure: no I/O and no clock, so it is tested on synthetic timelines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from ..providers import MEDIA_TYPES
from ..transport import server_message
from ._fixes import (
    FIX_ACCEL,
    FIX_BUFFERING,
    FIX_CACHE_CONTROL,
    FIX_COMPRESSION,
    FIX_CONNECT,
    FIX_CONTENT_LENGTH,
    FIX_CONTENT_TYPE,
    FIX_END_MARKER,
    FIX_HTTP2,
    FIX_INCOMPLETE,
    FIX_NOT_STREAMING,
    FIX_PROVIDER_ERROR,
    FIX_SHORT,
    FIX_TIMEOUT,
    FIX_UNTERMINATED,
    status_fix,
)
from ._model import Finding, Measurements, Verdict, bursts
from ._report import Diagnosis, plural

__all__ = ["HELD_BURST", "HELD_SILENCE", "MIN_DURATION", "MIN_EVENTS", "analyse", "held_events"]


# A burst of at least 4 events after at least 0.2 s without any was held back:
# a model's first token may be slow, but it does not come with three more at once.
HELD_BURST = 4
HELD_SILENCE = 0.2
# Streams shorter than this, or with fewer events, look the same buffered or not.
MIN_DURATION = 0.5
MIN_EVENTS = 5


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
    """The verdict and findings for recorded measurements (no I/O: see `streamchat.doctor`).

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


def _stream_types(m: Measurements) -> tuple[str, ...]:
    """The media types of the body's framing: () for a JSON document or an undecided body."""
    return MEDIA_TYPES.get(m.wire or "", ())


def _is_stream(m: Measurements) -> bool:
    types = _stream_types(m)
    if not types or _protocol_error(m):
        return False
    return bool(m.events) or m.media_type in types


def _protocol_error(m: Measurements) -> str | None:
    error = m.stream_error
    return error.message if error is not None and error.kind == "protocol" else None


def _failure(m: Measurements) -> Iterator[Finding]:
    if m.ending == "connect":
        yield Finding("connect", f"no response: {m.error}", FIX_CONNECT)
    elif m.ending == "http":
        message = f"HTTP {m.status} {m.reason}".rstrip() + (f": {m.error}" if m.error else "")
        yield Finding("http-status", message, status_fix(m.status or 0))
    elif m.ending == "undecodable":
        yield Finding("content-encoding", m.error, FIX_COMPRESSION)
    elif m.stream_error is not None and m.stream_error.kind == "provider":
        message = f"the server reported an error inside the stream: {m.stream_error.message}"
        yield Finding("provider-error", message, FIX_PROVIDER_ERROR)


def _content_type(m: Measurements) -> Iterator[Finding]:
    if m.status is None or m.ending not in ("complete", "cut", "timeout"):
        return
    shown = m.header("content-type") or "no Content-Type"
    if not _is_stream(m):
        detail = _protocol_error(m) or server_message(m.sample, m.media_type)
        message = f"the answer is not a stream ({shown})" + (f": {detail}" if detail else "")
        yield Finding("content-type", message, FIX_NOT_STREAMING)
    elif (types := _stream_types(m)) and m.media_type not in types:
        message = f"the stream is served as {shown}, not {types[0]}"
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
        f"the {count} events arrived in {plural(len(groups), 'burst')} over {m.total:.2f} s;"
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
