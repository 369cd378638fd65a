"""httpcore's network layer on plain asyncio: the socket reads of a streamed answer, cheaply.

httpcore reads through anyio by default. For each read of a streamed body (one per
event, 50 a second for a model typing at 200 chars/s) anyio enters a cancel scope
for the read timeout (a timer, and a look-up of the running async library), and
resumes, then pauses, the socket's reading (two `epoll_ctl` system calls). On
the kernel's one loop thread that was most of the cost of receiving an event.

Here the socket reads into a buffer, a read waits on one future, and the read
timeout is one timer per connection, re-armed lazily: a read only notes its
deadline, and the timer, when it fires early, sleeps again until the latest one.
The socket is paused when the buffer is full (the server is then held back by TCP)
and, with `frames`, after each delivery until a later frame (`_frames`): one pause
and one resume a frame, not one wake-up of the loop thread per event.

The contract is httpcore's `AsyncNetworkBackend`; its errors are httpcore's
(`ConnectError`, `ReadTimeout`, ...), which httpx maps to its own as for anyio.
https://www.encode.io/httpcore/network-backends/
"""

from __future__ import annotations

import asyncio
import math
import select
import ssl
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore

from ._frames import PERIOD, READ_EVERY, frame_after
from ._timeout import within

__all__ = ["AsyncioBackend", "AsyncioStream"]

# httpcore's `SOCKET_OPTION`: the arguments of one `socket.setsockopt` call.
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)
# anyio's delay before trying a host's next address (RFC 8305), kept as it was.
_HAPPY_EYEBALLS = 0.25

_HIGH_WATER = 1024 * 1024  # bytes buffered before the socket stops being read


class _Reader(asyncio.Protocol):
    """What the socket delivered, and the one read waiting for it, if any.

    With `frames`, a socket that delivered data is not watched again before the next
    frame (`_frames`): a model's events, 50 a second, are then read in the typing
    loop's wake-ups instead of each in its own; for `READ_EVERY` frames when the
    reading task's consumer says it can wait. Under TLS the TCP transport is paused
    too (`raw`): pausing the TLS transport only stops the decrypted data, and the
    socket would still wake the loop for every record.
    """

    def __init__(self, frames: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.frames = frames
        self.held: asyncio.TimerHandle | None = None  # resumes reading when the hold ends
        self.raw: asyncio.Transport | None = None  # the TCP transport under TLS
        self.read_every = READ_EVERY.get()  # frames to hold; set again by each read
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.size = 0  # bytes in `chunks`
        self.eof = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[bool] | None = None  # True: woken by data or the end
        self.drained: asyncio.Future[None] | None = None  # pending while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        transport = self.transport
        if transport is not None:
            if self.size > _HIGH_WATER or self.frames:
                transport.pause_reading()  # TCP holds the server back until a read
            if self.frames:
                if self.raw is not None:
                    self.raw.pause_reading()
                if self.held is None:
                    release = frame_after(self.loop.time() + (self.read_every() - 1) * PERIOD)
                    self.held = self.loop.call_at(release, self._release)
        self._wake()

    def _release(self) -> None:
        self.held = None
        self._resume()

    def _resume(self) -> None:
        transport = self.transport
        if (
            self.size <= _HIGH_WATER
            and self.held is None
            and transport is not None
            and not transport.is_reading()
            and not transport.is_closing()
        ):
            if self.raw is not None:
                self.raw.resume_reading()
            transport.resume_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self.held is not None:
            self.held.cancel()
            self.held = None
        self.eof = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None

    def take(self, max_bytes: int) -> bytes:
        chunk = self.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            self.chunks.appendleft(rest)
        self.size -= len(chunk)
        self._resume()
        return chunk

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, reader: _Reader) -> None:
        self._transport = transport
        self._reader = reader
        reader.transport = transport
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = math.inf  # when the read in progress times out

    def abort_at(self, deadline: float) -> asyncio.TimerHandle:
        """Drop the connection at `deadline` (a `time.monotonic()` time); cancel to keep it.

        A read waiting then ends (what was already received is still read first), so
        a whole answer's time limit costs one timer, not one per read.
        """
        loop = self._reader.loop
        return loop.call_at(loop.time() + deadline - time.monotonic(), self._transport.abort)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        reader = self._reader
        reader.read_every = READ_EVERY.get()  # the reading task's (see _frames)
        if not reader.chunks and not reader.eof:
            await self._wait(timeout)
        if reader.chunks:
            return reader.take(max_bytes)
        if reader.error is not None:
            raise httpcore.ReadError(str(reader.error) or repr(reader.error)) from reader.error
        return b""  # the end of the stream, as httpcore expects it

    async def _wait(self, timeout: float | None) -> None:
        reader = self._reader
        loop = reader.loop
        waiter = reader.waiter = loop.create_future()
        if timeout is not None:
            self._deadline = deadline = loop.time() + timeout
            timer = self._timer
            if timer is None or timer.when() > deadline:  # else it fires first, then re-arms
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._expire)
        try:
            woken = await waiter
        finally:
            reader.waiter = None
            self._deadline = math.inf
        if not woken:
            raise httpcore.ReadTimeout(f"no data for {timeout:g} s")

    def _expire(self) -> None:
        """The timer: time out the read in progress if its deadline has come, else sleep on."""
        self._timer = None
        waiter = self._reader.waiter
        if waiter is None or waiter.done() or self._deadline == math.inf:
            return  # no read waits: the next one arms the timer again
        loop = self._reader.loop
        if loop.time() >= self._deadline:
            waiter.set_result(False)
        else:
            self._timer = loop.call_at(self._deadline, self._expire)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        reader = self._reader
        if reader.error is not None or self._transport.is_closing():
            raise httpcore.WriteError(f"the connection is closed: {reader.error!r}")
        self._transport.write(buffer)
        drained = reader.drained
        if drained is not None:
            done, _ = await asyncio.wait({drained}, timeout=timeout)
            if not done:
                raise httpcore.WriteTimeout(f"could not send for {timeout:g} s")
            if reader.error is not None:
                raise httpcore.WriteError(str(reader.error)) from reader.error

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        if transport.is_closing():
            return
        try:
            transport.close()
            await asyncio.sleep(0)  # let the loop close the socket now
        finally:
            transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = self._reader.loop
        upgrade = loop.start_tls(
            self._transport, self._reader, ssl_context, server_hostname=server_hostname
        )
        try:
            transport = await within(upgrade, timeout)
        except asyncio.TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout(f"no TLS handshake in {timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc)) from exc
        assert transport is not None
        self._reader.raw = self._transport
        return AsyncioStream(transport, self._reader)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":  # the pool asks this of an idle connection before reuse
            reader = self._reader
            return (
                bool(reader.chunks)
                or reader.eof
                or transport.is_closing()
                or _readable(transport.get_extra_info("socket"))
            )
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend for the asyncio loop, without anyio in the read path.

    `frames`: read each socket at most once a frame after data came (see `_Reader`).
    """

    def __init__(self, *, frames: bool = False) -> None:
        self._frames = frames

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        connect = loop.create_connection(
            lambda: _Reader(self._frames),
            host,
            port,
            local_addr=local,
            happy_eyeballs_delay=_HAPPY_EYEBALLS,
        )
        try:
            transport, reader = await within(connect, timeout)
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection in {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        _set_options(transport, socket_options)
        return AsyncioStream(transport, reader)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _set_options(transport: asyncio.BaseTransport, options: Iterable[SocketOption] | None) -> None:
    sock = transport.get_extra_info("socket")
    for option in options or ():
        sock.setsockopt(*option)


def _readable(sock: Any) -> bool:
    """Whether a socket has data or its end waiting (an idle connection the server closed)."""
    if sock is None or sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):  # no FD_SETSIZE limit: a kernel may hold many descriptors
        poll = select.poll()
        poll.register(sock.fileno(), select.POLLIN)
        return bool(poll.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
