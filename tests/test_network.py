"""The sockets under the transport: `_network.AsyncioBackend` and `new_client`'s TLS context.

Real servers on 127.0.0.1 (the loopback server, over TLS too, and raw sockets for what
it cannot do: close a kept-alive connection, send megabytes at once).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamchat import _frames
from streamchat._network import _HIGH_WATER, AsyncioBackend, _Reader
from streamchat._pacing import type_out
from streamchat.deltas import Delta, Done, StreamError
from streamchat.providers import build_request
from streamchat.transport import Timeouts, new_client, stream_deltas
from streamchat.typewriter import Typewriter

from answers import NO_RETRIES, collect, text_of
from conftest import wake_ups
from loopback import LoopbackServer, Script, sse

PATH = "/v1/chat/completions"
PIECES = ["one ", "two ", "three ", "four ", "five"]
STREAM = sse(*({"choices": [{"index": 0, "delta": {"content": p}}]} for p in PIECES), "[DONE]")
# Complete at the body's end (a finish reason, no [DONE]): the response is read to its
# end, so its connection goes back to the pool (an answer closed at [DONE] closes it).
WHOLE = [*STREAM[:-1], *sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]


def test_new_client_reads_through_the_asyncio_backend_with_one_tls_context() -> None:
    async def run() -> tuple[object, object, object]:
        async with new_client() as first, new_client() as second:
            pools = first._transport._pool, second._transport._pool
            return pools[0]._network_backend, pools[0]._ssl_context, pools[1]._ssl_context

    backend, first_context, second_context = asyncio.run(run())
    assert isinstance(backend, AsyncioBackend)  # fails if an httpx upgrade moves the pool
    assert first_context is second_context


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[LoopbackServer, Path]]:
    """The loopback server behind TLS, with a self-signed certificate for 127.0.0.1."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = LoopbackServer()
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    server.start()
    try:
        yield server, cert
    finally:
        server.close()


def test_https_answer_streams_whole(
    tls_server: tuple[LoopbackServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way httpx reads it
    deltas = collect(server.route(PATH, Script(STREAM)))
    assert text_of(deltas) == "".join(PIECES)
    assert isinstance(deltas[-1], Done)


def test_https_with_an_untrusted_certificate_is_refused(
    tls_server: tuple[LoopbackServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    (error,) = collect(server.route(PATH, Script(STREAM)))
    assert isinstance(error, StreamError)
    assert error.kind == "connect"
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert not server.received


# 120 events 5 ms apart: 0.6 s, about 22 frames.
FAST = sse(*({"choices": [{"index": 0, "delta": {"content": "ab"}}]} for _ in range(120)), "[DONE]")


def deliveries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, bytes]]:
    """What sockets deliver from now on and when (the loop's clock), filled in as they do."""
    delivered: list[tuple[float, bytes]] = []
    original = _Reader.data_received

    def data_received(reader: _Reader, data: bytes) -> None:
        delivered.append((reader.loop.time(), data))
        original(reader, data)

    monkeypatch.setattr(_Reader, "data_received", data_received)
    return delivered


def reads_of(url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[float], int]:
    """The answer's text, when its socket delivered data (the loop's clock), and how
    many times the loop's thread (this one) woke up meanwhile."""
    delivered = deliveries(monkeypatch)
    before = wake_ups(threading.get_native_id())
    text = text_of(collect(url))
    return text, [t for t, _ in delivered], wake_ups(threading.get_native_id()) - before


def assert_read_once_a_frame(delivered: list[float], woken: int) -> None:
    frames = (delivered[-1] - delivered[0]) / _frames.PERIOD + 2
    assert len(delivered) <= frames, f"{len(delivered)} reads in {frames:.0f} frames"
    # After the first read (and the headers), each is on a frame: the socket was not
    # watched in between.
    late = [t for t in delivered[2:] if t - _frames.frame_at(t - _frames.PERIOD / 2) > 0.01]
    assert len(late) <= max(2, len(delivered) // 4), late  # a busy machine's late wake-ups
    # The thread slept between frames (plus the connection's set-up and close).
    assert woken <= frames + 10, f"{woken} wake-ups in {frames:.0f} frames"


def test_a_socket_that_delivered_data_is_read_again_at_the_next_frame(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 events a second would wake the loop thread 200 times; frames: 36.
    text, delivered, woken = reads_of(server.route(PATH, Script(FAST, pause=0.005)), monkeypatch)
    assert text == "ab" * 120
    assert_read_once_a_frame(delivered, woken)


def test_under_tls_the_tcp_socket_is_held_until_the_next_frame_too(
    tls_server: tuple[LoopbackServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    text, delivered, woken = reads_of(server.route(PATH, Script(FAST, pause=0.005)), monkeypatch)
    assert text == "ab" * 120
    assert_read_once_a_frame(delivered, woken)


def typed(url: str, speed: float) -> str:
    """The answer at `url`, typed out at `speed` by `_pacing.type_out`, as the chat does."""
    request = build_request(url, [{"role": "user", "content": "hi"}])
    shown: list[str] = []

    async def run() -> None:
        deltas = stream_deltas(request, retries=NO_RETRIES)
        await type_out(deltas, Typewriter(speed, max_lag=None), shown.append)

    asyncio.run(run())
    return "".join(shown)


# The first token 30 ms after the headers, then three more 5 ms apart.
FIRST = Script(FAST[:4] + FAST[-1:], pause=[0.03, 0.005, 0.005, 0.005, 0.0])


@pytest.mark.parametrize("speed", [400.0, 0.0])
def test_the_first_token_is_read_at_the_next_frame(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, speed: float
) -> None:
    """Until text came, every frame's data is wanted: the first token is not held back
    to a batch, even while a typewriter paces the text.

    After the headers the socket is held until the next frame (at most 28 ms), so the
    token, 30 ms later, is read as it comes (30-45 ms measured on a loaded machine);
    held to a batch, it would wait for the third frame, 56-83 ms after the headers.
    Counted over answers, not read off one gap: on a loaded 2-core machine one wake-up
    can be late, while a token held to a batch is late each time.
    """
    url = server.route(PATH, FIRST)
    reads = deliveries(monkeypatch)
    waits = []
    for _ in range(6):
        reads.clear()
        assert typed(url, speed) == "ab" * 4
        # A late loop thread reads the headers and the token at once: no wait at all.
        headers = next(t for t, data in reads if data.startswith(b"HTTP/1.1"))
        token = next(t for t, data in reads if b'"ab"' in data)
        waits.append(token - headers)
    print("first token after the headers (s):", sorted(waits))
    late = [wait for wait in waits if wait >= 0.05]  # held to a batch: 56 ms or more
    assert len(late) <= 2, sorted(waits)


@pytest.mark.parametrize(("speed", "every"), [(400.0, _frames.BATCH_FRAMES), (0.0, 1)])
def test_while_a_typewriter_paces_the_text_its_socket_is_read_once_a_batch(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, speed: float, every: int
) -> None:
    # 240 characters at 400 chars/s: 0.6 s of typing either way. Typed at a pace, the
    # frames go out a batch at a time (`_answer.Framed`), so the socket is read once a
    # batch; shown as it comes (speed 0), every frame's data is wanted at once.
    url = server.route(PATH, Script(FAST, pause=[0.03] + [0.005] * (len(FAST) - 1)))
    delivered = deliveries(monkeypatch)
    assert typed(url, speed) == "ab" * 120
    gaps = sorted(b - a for (a, _), (b, _) in itertools.pairwise(delivered[1:]))
    median = gaps[len(gaps) // 2]
    assert median == pytest.approx(every * _frames.PERIOD, abs=0.006), gaps


def test_frames_are_one_grid() -> None:
    period = _frames.PERIOD
    assert _frames.frame_at(100 * period) == 100 * period
    assert _frames.frame_at(100 * period + 1e-7) == 100 * period  # the clock read between
    assert _frames.frame_at(100 * period + 1e-4) == 101 * period
    assert _frames.frame_after(100 * period) == 101 * period
    assert _frames.frame_after(100 * period - 1e-4) == 100 * period
    assert 30 <= 1 / period <= 40  # smooth typing, the fewest wake-ups


@pytest.mark.slow
def test_idle_timeout_counts_from_the_last_chunk(server: LoopbackServer) -> None:
    # Chunks 0.25 s apart for 1.5 s, longer than the idle timeout, then silence: the
    # read timer (armed once, re-armed when it fires early) must not fire in between.
    url = server.route(PATH, Script([*STREAM[:-1], b": keep\n\n"], pause=0.25, hang=30))
    started = time.monotonic()
    deltas = collect(url, Timeouts(idle=0.8))
    elapsed = time.monotonic() - started
    assert text_of(deltas) == "".join(PIECES)
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].kind == "timeout"
    assert "idle" in deltas[-1].message
    assert 6 * 0.25 + 0.8 - 0.1 < elapsed < 6 * 0.25 + 0.8 + 5


def test_a_shorter_idle_timeout_on_a_reused_connection_applies(server: LoopbackServer) -> None:
    url = server.route(PATH, Script(WHOLE), Script(STREAM[:1], hang=30))

    async def run() -> tuple[list[Delta], list[Delta], float]:
        async with new_client() as client:
            request = build_request(url, [{"role": "user", "content": "hi"}])
            first = stream_deltas(request, timeouts=Timeouts(idle=60), client=client)
            done = [delta async for delta in first]
            assert len(client._transport._pool.connections) == 1  # kept alive: reused next
            started = time.monotonic()
            second = stream_deltas(request, timeouts=Timeouts(idle=0.3), client=client)
            cut = [delta async for delta in second]
            elapsed = time.monotonic() - started
            return done, cut, elapsed

    done, cut, elapsed = asyncio.run(run())
    assert isinstance(done[-1], Done)
    assert text_of(cut) == PIECES[0]
    assert isinstance(cut[-1], StreamError) and "idle" in cut[-1].message
    assert elapsed < 5  # not the first request's 60 s


class RawServer:
    """Answers each connection's one request with `response`, then closes it."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                conn.sendall(self.response)
            self.closed.set()  # closed without "Connection: close": as an idle timeout does

    def close(self) -> None:
        self.listener.close()


def test_a_kept_alive_connection_the_server_closed_is_not_reused() -> None:
    body = b"".join(WHOLE)
    server = RawServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    url = f"http://127.0.0.1:{server.port}{PATH}"
    request = build_request(url, [{"role": "user", "content": "hi"}])

    async def run() -> list[list[Delta]]:
        answers = []
        async with new_client() as client:
            for _ in range(2):
                server.closed.clear()
                answers.append([d async for d in stream_deltas(request, client=client)])
                assert await asyncio.to_thread(server.closed.wait, 10)
        return answers

    try:
        answers = asyncio.run(run())
    finally:
        server.close()
    assert [text_of(answer) for answer in answers] == ["".join(PIECES)] * 2
    assert all(isinstance(answer[-1], Done) for answer in answers)
    assert server.connections == 2


def test_a_fast_body_is_buffered_up_to_a_bound_then_read_whole() -> None:
    payload = bytes(range(256)) * (4 * _HIGH_WATER // 256)  # 4 MiB
    server = RawServer(payload)

    async def run() -> tuple[bytes, int]:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        reader = stream._reader
        deadline = time.monotonic() + 10
        while reader.transport.is_reading():  # nobody reads: the socket must be paused
            assert time.monotonic() < deadline, "reading was never paused"
            await asyncio.sleep(0.01)
        held = reader.size
        received = bytearray()
        while chunk := await stream.read(65536, timeout=5):
            received += chunk
        await stream.aclose()
        return bytes(received), held

    try:
        received, held = asyncio.run(run())
    finally:
        server.close()
    assert _HIGH_WATER < held <= _HIGH_WATER + 1024 * 1024
    assert received == payload
