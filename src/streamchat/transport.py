"""The edge that touches the network: one streaming HTTP request in, typed deltas out.

Everything after the socket is sans-I/O (`sse`, `ndjson`, `providers`); this module
only moves bytes from httpx into those decoders and turns network failures into a
final `StreamError`, so the caller keeps every delta that arrived before the failure.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from html import unescape
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TypeVar

import httpcore
import httpx

from ._framing import Framer, Payload
from ._network import AsyncioBackend, AsyncioStream
from ._secrets import Secrets, install_log_filter, mask_url
from ._timeout import within
from ._validation import request_problem
from .deltas import Delta, Done, ReasoningDelta, StreamError, TextDelta
from .providers import ChatRequest, StreamParser, make_parser, wire_format
from .sse import FrameTooLong

__all__ = [
    "Limits",
    "Retries",
    "Timeouts",
    "cap_answer",
    "new_client",
    "retry_after",
    "server_message",
    "stream_deltas",
]

T = TypeVar("T")

# An error body is read for its message only; a misbehaving server must not make us
# buffer megabytes of HTML.
_ERROR_BODY_LIMIT = 64 * 1024
# Statuses that say "try again later" (RFC 9110 §15.5.9, §15.6.3-5; 529: Anthropic overloaded).
_TRANSIENT = frozenset({408, 429, 502, 503, 504, 529})

install_log_filter()


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
class Limits:
    """The most an answer may make this process hold; raise them for unusual answers.

    `line`: characters in one SSE event or NDJSON line (a server that never ends an
    event would otherwise be held in full). `answer`: characters of text and
    reasoning in one answer (far above any model's output limit; the widget keeps
    the answer, its HTML and the history in memory). `body`: bytes of a whole-JSON
    answer, and of the decompressed body the doctor reads. Passing one ends the
    answer with a `StreamError` of kind "limit"; what arrived before stays.
    """

    line: int = 8 * 1024 * 1024
    answer: int = 8_000_000
    body: int = 16 * 1024 * 1024


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
    limits: Limits = Limits(),
    client: httpx.AsyncClient | None = None,
) -> AsyncGenerator[Delta, None]:
    """Stream one chat answer as deltas; the last one is always `Done` or `StreamError`.

    Nothing escapes as an exception: a request that cannot be sent is refused before
    any I/O, every failure of httpx (or below it) becomes a `StreamError`, and every
    error message is redacted of the request's secrets. Cancelling the consuming
    task closes the connection at once (the `async with` blocks below exit on
    `CancelledError`), which is how Stop reaches the server.
    """
    secrets = Secrets.of(request.url, request.headers)
    problem = request_problem(request.url, request.headers)
    if problem is not None:
        yield StreamError("request", secrets.redact(problem))
        return
    own_client = client is None
    if client is None:
        client = new_client()
    session = _Session(time.monotonic() + timeouts.total, limits, secrets)
    try:
        with secrets.active():
            attempts = _attempts(client, request, timeouts, retries, session)
            async with aclosing(cap_answer(attempts, limits.answer)) as deltas:
                async for delta in deltas:
                    if isinstance(delta, StreamError):
                        delta = replace(delta, message=secrets.redact(delta.message))
                    yield delta
    finally:
        if own_client:
            await client.aclose()


async def cap_answer(deltas: AsyncIterator[Delta], limit: int) -> AsyncGenerator[Delta, None]:
    """`deltas` until their text and reasoning pass `limit` characters, then a "limit" error.

    What came before the limit is delivered (the partial answer stays); the source is
    closed at once, so an HTTP answer's connection goes too. Any source of deltas
    can be capped: the transport's streams and the widget's Python sources.
    """
    size = 0
    try:
        async for delta in deltas:
            if isinstance(delta, (TextDelta, ReasoningDelta)):
                size += len(delta.text)
                if size > limit:
                    yield StreamError(
                        "limit",
                        f"the answer passed {limit:,} characters, the limit; what came so far"
                        " is kept (raise it with Limits(answer=...))",
                    )
                    return
            yield delta
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()


def new_client() -> httpx.AsyncClient:
    """An HTTP client for answers: HTTP/1.1, no connection cap, no cookie jar.

    Many answers may stream at once through one shared client (a notebook of
    chats): httpx's default pool of 100 connections would make the 101st wait and
    fail. Cookies are not kept: one endpoint's session cookie must not be sent by
    another widget to another endpoint. Timeouts are set per request. Proxies
    come from the environment, as for any httpx client; direct connections read
    their sockets with `_network.AsyncioBackend`. The TLS context is the process's
    one (`_tls_context`): building it is most of the cost of a new client.
    """
    client = httpx.AsyncClient(
        http1=True,
        http2=False,
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=20),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )
    # httpx has no option for httpcore's network backend, and passing a transport
    # would turn off its proxies from the environment: so the default transport's
    # pool gets ours. tests/test_network.py fails if an httpx upgrade moves it.
    pool = getattr(client._transport, "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool:  # not a proxy's pool
        pool._network_backend = AsyncioBackend(frames=True)
    return client


_tls_contexts: dict[tuple[str, ...], ssl.SSLContext] = {}


def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or SSL_CERT_FILE/SSL_CERT_DIR), built once.

    Loading the CA bundle takes tens of milliseconds of CPU; every client shares the
    result. A change of the variables httpx reads builds a new one, so `verify`
    means what it meant. The context is only read after it is built (all our
    clients speak HTTP/1.1, so httpcore sets the same ALPN list on it each time).
    """
    key = tuple(os.environ.get(name, "") for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"))
    context = _tls_contexts.get(key)
    if context is None:
        context = _tls_contexts[key] = httpx.create_ssl_context(verify=True, trust_env=True)
    return context


async def _attempts(
    client: httpx.AsyncClient,
    request: ChatRequest,
    timeouts: Timeouts,
    retries: Retries,
    session: _Session,
) -> AsyncGenerator[Delta, None]:
    # Each connection's generator is closed as soon as it is left (aclosing), so
    # its response is closed then, not when the garbage collector gets to it.
    for attempt in itertools.count():
        async with aclosing(_stream(client, request, timeouts, session)) as deltas:
            first = True
            async for delta in deltas:
                wait = None
                if isinstance(delta, StreamError):
                    wait = retries.delay(attempt, delta) if first else None
                    wait = wait if wait is not None else session.reconnect_delay(request, delta)
                first = False
                if wait is not None and time.monotonic() + wait < session.deadline:
                    break
                yield delta
                if isinstance(delta, (Done, StreamError)):
                    return
            else:
                return
        await retries.sleep(wait)


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
    limits: Limits
    secrets: Secrets
    parser: StreamParser | None = None
    last_event_id: str = ""
    retry_ms: int = 3000
    events: int = 0  # events received since the last (re)connection
    cut: bool = False  # the body ended inside an event

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
) -> AsyncGenerator[Delta, None]:
    response: httpx.Response | None = None
    try:
        sent = client.build_request(
            request.method,
            request.url,
            headers=session.headers(request),
            json=request.json,
            timeout=timeouts.httpx_timeout(),
        )
        # The deadline covers the wait for the headers too: a server that sends
        # one header byte a second never trips the idle timeout.
        response = await _before(session.deadline, client.send(sent, stream=True))
        refusal = await _refusal(response, request, session)
        if refusal is not None:
            yield refusal
            return
        async for delta in _body(response, request, session):
            yield delta
            if isinstance(delta, (Done, StreamError)):
                return
    except Exception as exc:
        yield _error_for(exc, request, timeouts, session, headers_seen=response is not None)
    finally:
        if response is not None:
            await response.aclose()


async def _refusal(
    response: httpx.Response, request: ChatRequest, session: _Session
) -> StreamError | None:
    """An error for a response that carries no answer: an error status, a redirect, gzip."""
    if response.status_code >= 400:
        return await _http_error(response, request, session)
    if response.is_redirect:
        location = mask_url(response.headers.get("location", "?"))
        return StreamError(
            "http",
            f"HTTP {response.status_code} {response.reason_phrase}: the endpoint moved to"
            f" {location}; use that URL (redirects are not followed: a POST would be re-sent)",
            status=response.status_code,
        )
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return StreamError(
            "protocol",
            f"the server compressed the answer ({encoding}) although the request asked for"
            " Accept-Encoding: identity; a compressed stream arrives in bursts: turn"
            " compression off for this endpoint (`streamchat doctor URL` shows where)",
        )
    return None


async def _body(
    response: httpx.Response, request: ChatRequest, session: _Session
) -> AsyncGenerator[Delta, None]:
    content_type = response.headers.get("content-type")
    if session.parser is None:
        session.parser = make_parser(request.provider, content_type, response.headers)
    parser = session.parser
    wire = wire_format(request.provider, content_type)
    chunks = _body_chunks(response, session.deadline)
    if wire == "json":
        deltas = _read_json_body(chunks, parser, content_type, session)
    else:
        deltas = _read_stream(chunks, session, wire)
    async for delta in deltas:
        yield delta
        if isinstance(delta, (Done, StreamError)):
            return
    for delta in parser.end(clean=not session.cut):
        yield delta


def _error_for(
    exc: Exception,
    request: ChatRequest,
    timeouts: Timeouts,
    session: _Session,
    *,
    headers_seen: bool,
) -> StreamError | Done:
    """Map any exception from the request to the `StreamError` a person can act on.

    Errors before the response's headers cannot have shown anything; errors after
    them keep the partial answer (`_from_partial`).
    """
    origin = _origin(request.url)
    parser = session.parser
    if isinstance(exc, httpx.ConnectTimeout):
        return StreamError("timeout", f"could not connect to {origin} in {timeouts.connect:g} s")
    if isinstance(exc, httpx.PoolTimeout):
        return StreamError(
            "timeout", f"no free connection to {origin} in {timeouts.connect:g} s (pool timeout)"
        )
    if isinstance(exc, httpx.ConnectError):
        return StreamError("connect", f"could not connect to {origin}: {exc}")
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout)):
        return _from_partial(parser, "timeout", f"no data for {timeouts.idle:g} s (idle timeout)")
    if isinstance(exc, _TotalTimeout):
        return _from_partial(parser, "timeout", f"the answer took longer than {timeouts.total:g} s")
    if isinstance(exc, FrameTooLong):
        return StreamError(
            "limit",
            f"{exc}, the limit; what came so far is kept (raise it with Limits(line=...))",
        )
    if isinstance(exc, httpx.RemoteProtocolError) and not headers_seen:
        if "buffer too long" in str(exc):  # h11's limit on an unfinished response head
            return StreamError(
                "protocol",
                f"{origin} sent response headers larger than httpx accepts (100 KiB):"
                " a misconfigured proxy or server",
            )
        return StreamError("protocol", f"{origin} sent a response that is not valid HTTP: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return _from_partial(
            parser,
            "incomplete",
            "the connection closed before the stream ended (incomplete chunked encoding,"
            f" what browsers call ERR_INCOMPLETE_CHUNKED_ENCODING): {exc}",
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        return StreamError("request", f"the request could not be sent: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return StreamError("protocol", f"could not decode the response body: {exc}")
    if isinstance(exc, (httpx.TransportError, OSError)) and headers_seen:
        return _from_partial(parser, "network", f"the connection broke mid-stream: {exc!r}")
    if isinstance(exc, (httpx.TransportError, OSError)):
        return StreamError("connect", f"could not reach {origin}: {exc!r}")
    return _from_partial(parser, "protocol", f"{type(exc).__name__}: {exc}")


def _from_partial(parser: StreamParser | None, kind: str, message: str) -> StreamError | Done:
    """A failure after the answer's completion marker loses nothing: report it as done."""
    if parser is not None and parser.done:
        return Done()
    return StreamError(kind, message)  # type: ignore[arg-type]


class _TotalTimeout(Exception):
    pass


async def _before(deadline: float, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, or raise `_TotalTimeout` at `deadline`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise _TotalTimeout
    try:
        return await within(awaitable, remaining)
    except asyncio.TimeoutError:
        raise _TotalTimeout from None


async def _body_chunks(response: httpx.Response, deadline: float) -> AsyncIterator[bytes]:
    """The body as it arrives, or `_TotalTimeout` at `deadline`.

    On our own sockets (`new_client`) one timer drops the connection at the deadline;
    a read then fails and is reported as the deadline. A stream arrives in many small
    reads (50 a second), and a timer around each read was a cost on the loop thread.
    """
    stream = response.extensions.get("network_stream")
    if not isinstance(stream, AsyncioStream):  # a client the caller passed in
        async for chunk in _with_deadline(response.aiter_raw(), deadline):
            yield chunk
        return
    timer = stream.abort_at(deadline)
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError:
        if time.monotonic() >= deadline:
            raise _TotalTimeout from None
        raise
    finally:
        timer.cancel()


async def _with_deadline(chunks: AsyncIterator[bytes], deadline: float) -> AsyncIterator[bytes]:
    iterator = chunks.__aiter__()
    while True:
        try:
            chunk = await _before(deadline, iterator.__anext__())
        except StopAsyncIteration:
            return
        yield chunk


async def _read_stream(
    chunks: AsyncIterator[bytes], session: _Session, wire: str
) -> AsyncGenerator[Delta, None]:
    parser = session.parser
    assert parser is not None
    framer = Framer(wire, max_frame=session.limits.line)
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
    session.cut = framer.wire == "sse" and framer.sse.discarded


def _parse(parser: StreamParser, payload: Payload) -> list[Delta]:
    if payload.event is None:
        return parser.feed_text(payload.data)
    return parser.feed(payload.data, payload.event)


async def _read_json_body(
    chunks: AsyncIterator[bytes], parser: StreamParser, content_type: str | None, session: _Session
) -> AsyncGenerator[Delta, None]:
    """A server that answers with one JSON document (or an HTML page) instead of a stream.

    Many servers ignore `stream: true` or return an error object with status 200;
    the parser sees the document as a single payload so its message is not lost.
    """
    limits = session.limits
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limits.body:
            yield StreamError(
                "limit",
                f"the {content_type or 'untyped'} answer is larger than {limits.body:,} bytes,"
                " the limit (raise it with Limits(body=...))",
            )
            return
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        yield StreamError("protocol", f"empty {content_type or 'untyped'} response")
        return
    if "html" in (content_type or ""):
        page = server_message(body, "text/html", session.secrets)
        yield StreamError(
            "protocol",
            f"expected a stream, got an HTML page: {page!r}"
            " (a login page, or a proxy's error page? check the URL and the credentials)",
        )
        return
    for delta in parser.feed(text):
        yield delta


async def _http_error(
    response: httpx.Response, request: ChatRequest, session: _Session
) -> StreamError:
    body = bytearray()
    async for chunk in _with_deadline(response.aiter_bytes(), session.deadline):
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    detail = server_message(bytes(body), response.headers.get("content-type", ""), session.secrets)
    message = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if detail:
        message += f": {detail}"
    if response.status_code == 401 and request.withheld_key:
        message += (
            f" ({request.withheld_key} is set, but it is sent only to its provider's own host"
            f" over https; pass the key for {_origin(request.url)} explicitly: api_key=..."
            " or --header)"
        )
    return StreamError(
        "http",
        message,
        status=response.status_code,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


def server_message(
    body: bytes | bytearray, content_type: str, secrets: Secrets | None = None
) -> str:
    """The server's own explanation, from a JSON error object, an HTML page or plain text.

    Secrets are redacted before the text is shortened, so no piece of one survives.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if secrets is not None:
        text = secrets.redact(text)
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
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return mask_url(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")
