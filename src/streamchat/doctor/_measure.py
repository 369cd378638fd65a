"""Measuring (the doctor's only I/O): send the chat request and timestamp every read."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from .._secrets import Secrets, mask_url
from .._validation import request_problem
from ..providers import ChatRequest, build_request
from ..sse import FrameTooLong
from ..transport import Limits, server_message
from ._analyse import analyse
from ._model import Ending, Measurements
from ._recorder import ACCEPT_ENCODING, SAMPLE_LIMIT, ZLIB_ENCODINGS, Recorder, TooLarge
from ._report import Diagnosis

__all__ = ["diagnose", "offered_protocol"]


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
        ending, error = _failure_of(exc, watchdog.fired, budget.timeout)
        return replace(base, total=clock(), ending=ending, error=error)
    if watchdog.fired and measured.ending == "cut":
        return replace(measured, ending="timeout", error="")
    return measured


def _failure_of(exc: httpx.HTTPError, timed_out: bool, timeout: float) -> tuple[Ending, str]:
    """The ending and error of an exchange that failed before its response head."""
    if timed_out:
        return "timeout", f"no complete response head in {timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", str(exc) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connect", f"the response is not valid HTTP: {exc}"
    return "connect", str(exc) or type(exc).__name__


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
    if encoding not in ZLIB_ENCODINGS | {"identity"}:
        error = f"the body is {encoding}-encoded although the doctor asked for {ACCEPT_ENCODING}"
        return replace(m, ending="undecodable", error=error, total=clock())
    recorder = Recorder(m.provider, content_type, encoding, budget.limits)
    ending, error = _pump(response, recorder, clock, m.timeout, budget.progress)
    end = clock()
    try:
        recorder.end(end, clean=ending == "complete")
    except zlib.error as exc:
        ending, error = "undecodable", f"the {encoding} body is corrupt: {exc}"
    except (TooLarge, FrameTooLong) as exc:
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
        if len(body) >= SAMPLE_LIMIT:
            break
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return f"(a {encoding}-compressed error body)"
    return server_message(bytes(body), response.headers.get("content-type", ""), secrets)


def _pump(
    response: httpx.Response,
    recorder: Recorder,
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
    except (TooLarge, FrameTooLong) as exc:
        return "undecodable", f"{exc}, the doctor's limit"
    return "complete", ""
