"""The edge that touches the network: one streaming HTTP request in, typed deltas out.

Everything after the socket is sans-I/O (`sse`, `ndjson`, `providers`); this module
only moves bytes from httpx into those decoders and turns network failures into a
final `StreamError`, so the caller keeps every delta that arrived before the failure.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from html import unescape

import httpx

from ._framing import Framer, Payload
from .deltas import Delta, Done, StreamError
from .providers import ChatRequest, StreamParser, make_parser, wire_format

__all__ = ["Retries", "Timeouts", "redact", "retry_after", "server_message", "stream_deltas"]

# An error body is read for its message only; a misbehaving server must not make us
# buffer megabytes of HTML.
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 16 * 1024 * 1024
# Statuses that say "try again later" (RFC 9110 §15.5.9, §15.6.3-5; 529: Anthropic overloaded).
_TRANSIENT = frozenset({408, 429, 502, 503, 504, 529})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `idle` is the longest silence between two chunks, `total` the whole answer.

    A stalled stream is the common failure of streamed LLM answers (a proxy holding
    the connection open with nothing to send), so idle time is bounded separately
    from the answer's total length, which is legitimately long.
    """

    connect: float = 10.0
    idle: float = 60.0
    total: float = 600.0

    def httpx_timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect, read=self.idle, write=self.idle, pool=self.connect
        )


@dataclass(frozen=True, slots=True)
class Retries:
    """Retry a request that failed before its first byte: exponential backoff, full jitter.

    Only failures that produced no output are retried (connection errors, 429 and
    the transient 5xx: a gateway's 502/503/504, Anthropic's 529, any with
    `Retry-After`), so a retry can never duplicate text on screen. A plain 500 is
    the handler's own exception (the AI SDK route given a body it cannot read):
    the same request fails the same way, so it is shown at once. A `Retry-After` longer than
    `max_wait` is not waited out: the error is shown instead, with its advice.
    See https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3 for `Retry-After`.
    """

    attempts: int = 2
    backoff: float = 0.5
    max_wait: float = 20.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, error: StreamError) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None for no retry."""
        status = error.status or 0
        retryable = error.kind == "connect" or (
            error.kind == "http"
            and (status in _TRANSIENT or (status >= 500 and error.retry_after is not None))
        )
        if not retryable or attempt >= self.attempts:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_wait else None
        return min(self.max_wait, self.backoff * 2**attempt) * self.jitter()


async def stream_deltas(
    request: ChatRequest,
    *,
    timeouts: Timeouts = Timeouts(),
    retries: Retries = Retries(),
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[Delta]:
    """Stream one chat answer as deltas; the last one is always `Done` or `StreamError`.

    Cancelling the consuming task closes the connection at once (the `async with`
    blocks below exit on `CancelledError`), which is how Stop reaches the server.
    """
    own_client = client is None
    if client is None:
        client = httpx.AsyncClient(http1=True, http2=False, timeout=timeouts.httpx_timeout())
    session = _Session(deadline=time.monotonic() + timeouts.total)
    try:
        attempt = 0
        while True:
            first = True
            async for delta in _stream(client, request, timeouts, session):
                wait = (
                    retries.delay(attempt, delta)
                    if first and isinstance(delta, StreamError)
                    else None
                )
                first = False
                if wait is None and isinstance(delta, StreamError):
                    wait = session.reconnect_delay(request, delta)
                if wait is not None:
                    await retries.sleep(wait)
                    break
                yield delta
            else:
                return
            attempt += 1
    finally:
        if own_client:
            await client.aclose()


@dataclass
class _Session:
    """What outlives one connection: the parser, the SSE reconnection state, the deadline.

    A plain GET event stream is resumable by design: after a dropped connection the
    client waits `retry` ms and reconnects with `Last-Event-ID`, and the server
    continues from there. See
    https://html.spec.whatwg.org/multipage/server-sent-events.html#reestablish-the-connection
    A chat request (POST) is not: re-sending it would start a new, different answer.
    """

    deadline: float
    parser: StreamParser | None = None
    last_event_id: str = ""
    retry_ms: int = 3000
    events: int = 0  # events received since the last (re)connection

    def reconnect_delay(self, request: ChatRequest, error: StreamError) -> float | None:
        if request.method != "GET" or error.kind not in ("incomplete", "network"):
            return None
        if not self.events:  # no progress since the last reconnection: give up
            return None
        self.events = 0
        return self.retry_ms / 1000

    def headers(self, request: ChatRequest) -> dict[str, str]:
        if not self.last_event_id:
            return request.headers
        return {**request.headers, "Last-Event-ID": self.last_event_id}


async def _stream(
    client: httpx.AsyncClient, request: ChatRequest, timeouts: Timeouts, session: _Session
) -> AsyncIterator[Delta]:
    try:
        async with client.stream(
            request.method,
            request.url,
            headers=session.headers(request),
            json=request.json,
            timeout=timeouts.httpx_timeout(),
        ) as response:
            if response.status_code >= 400:
                yield await _http_error(response, request)
                return
            content_type = response.headers.get("content-type")
            if session.parser is None:
                session.parser = make_parser(request.provider, content_type, response.headers)
            parser = session.parser
            wire = wire_format(request.provider, content_type)
            chunks = _with_deadline(response.aiter_raw(), session.deadline)
            if wire == "json":
                deltas = _read_json_body(chunks, parser, content_type)
            else:
                deltas = _read_stream(chunks, session, wire)
            async for delta in deltas:
                yield delta
                if isinstance(delta, (Done, StreamError)):
                    return
            for delta in parser.end(clean=True):
                yield delta
    except httpx.ConnectError as exc:
        yield StreamError("connect", f"could not connect to {_origin(request.url)}: {exc}")
    except httpx.ConnectTimeout:
        yield StreamError(
            "timeout", f"could not connect to {_origin(request.url)} in {timeouts.connect:g} s"
        )
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        yield _from_partial(
            session.parser, "timeout", f"no data for {timeouts.idle:g} s (idle timeout)"
        )
    except _TotalTimeout:
        yield _from_partial(
            session.parser, "timeout", f"the answer took longer than {timeouts.total:g} s"
        )
    except httpx.RemoteProtocolError as exc:
        yield _from_partial(
            session.parser,
            "incomplete",
            "the connection closed before the stream ended (incomplete chunked encoding,"
            f" what browsers call ERR_INCOMPLETE_CHUNKED_ENCODING): {exc}",
        )
    except (httpx.ReadError, httpx.WriteError, httpx.NetworkError) as exc:
        yield _from_partial(session.parser, "network", f"the connection broke mid-stream: {exc!r}")
    except httpx.DecodingError as exc:
        yield StreamError("protocol", f"could not decode the response body: {exc}")


def _from_partial(parser: StreamParser | None, kind: str, message: str) -> Delta:
    """A failure after the answer's completion marker loses nothing: report it as done."""
    if parser is not None and parser.done:
        return Done()
    return StreamError(kind, message)  # type: ignore[arg-type]


class _TotalTimeout(Exception):
    pass


async def _with_deadline(chunks: AsyncIterator[bytes], deadline: float) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _TotalTimeout
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), remaining)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise _TotalTimeout from None
        yield chunk


async def _read_stream(
    chunks: AsyncIterator[bytes], session: _Session, wire: str
) -> AsyncIterator[Delta]:
    parser = session.parser
    assert parser is not None
    framer = Framer(wire)
    async for chunk in chunks:
        for payload in framer.feed(chunk):
            session.events += 1
            for delta in _parse(parser, payload):
                yield delta
        session.last_event_id = framer.sse.last_event_id or session.last_event_id
        session.retry_ms = framer.sse.retry if framer.sse.retry is not None else session.retry_ms
    for payload in framer.end():
        for delta in _parse(parser, payload):
            yield delta


def _parse(parser: StreamParser, payload: Payload) -> list[Delta]:
    if payload.event is None:
        return parser.feed_text(payload.data)
    return parser.feed(payload.data, payload.event)


async def _read_json_body(
    chunks: AsyncIterator[bytes], parser: StreamParser, content_type: str | None
) -> AsyncIterator[Delta]:
    """A server that answers with one JSON document instead of a stream.

    Many servers ignore `stream: true` or return an error object with status 200;
    the parser sees the document as a single payload so its message is not lost.
    """
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > _JSON_BODY_LIMIT:
            yield StreamError("protocol", "the JSON answer is larger than 16 MiB")
            return
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        yield StreamError("protocol", f"empty {content_type or 'untyped'} response")
        return
    for delta in parser.feed(text):
        yield delta


async def _http_error(response: httpx.Response, request: ChatRequest) -> StreamError:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    detail = server_message(bytes(body), response.headers.get("content-type", ""))
    message = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if detail:
        message += f": {detail}"
    return StreamError(
        "http",
        redact(message, request),
        status=response.status_code,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


def server_message(body: bytes, content_type: str) -> str:
    """The server's own explanation, from a JSON error object, an HTML page or plain text."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if "json" in content_type or text[:1] in "{[":
        try:
            found = _json_message(json.loads(text))
        except ValueError:
            found = None
        if found:
            return _shorten(found)
    if "html" in content_type or text.lstrip().startswith("<"):
        return _shorten(_html_text(text))
    return _shorten(text)


def _json_message(payload: object) -> str | None:
    # OpenAI/Anthropic: {"error": {"message": ...}}; Ollama: {"error": "..."};
    # FastAPI: {"detail": ...}; Gemini: [{"error": {...}}] or {"error": {...}}.
    if isinstance(payload, list) and payload:
        return _json_message(payload[0])
    if not isinstance(payload, dict):
        return None
    for key in ("error", "message", "detail", "msg"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            found = _json_message(value)
            if found:
                return found
    return None


def _html_text(html: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", html, re.I | re.S)
    if title and title.group(1).strip():
        return unescape(" ".join(title.group(1).split()))
    stripped = re.sub(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", " ", html, flags=re.I | re.S)
    return unescape(" ".join(stripped.split()))


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact(message: str, request: ChatRequest) -> str:
    """Servers sometimes echo the credential they rejected; it must not reach the screen."""
    for name, value in request.headers.items():
        if name.lower() in ("authorization", "x-api-key", "x-goog-api-key", "api-key"):
            secret = value.split(" ", 1)[-1]
            if len(secret) >= 8:
                message = message.replace(secret, "[redacted]")
    return message


def retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
