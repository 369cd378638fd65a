"""Bounded memory, measured: a peak RSS bound for each input that used to grow without end.

Each case runs in a child process that reports how far its peak resident size
(VmHWM) rose above its size before the work (VmRSS after imports), so the figure is
the work's own. The servers live in this (the parent) process. Before the limits:
`data:` lines without a blank line grew ~65 MB/s, the doctor inflated a 1 MB gzip
bomb to 1 GB, and the typewriter held 84 bytes per waiting CJK character.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

MB = 1024 * 1024
TESTS = Path(__file__).parent

PRELUDE = """
import json, sys
sys.path.insert(0, {tests!r})

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise LookupError(field)

def report(**values):
    values["growth"] = rss("VmHWM:") - BASE
    print(json.dumps(values))

"""


def run_child(setup: str, work: str) -> dict:
    """Run `setup` (imports), note the RSS, run `work`, return what it reported."""
    code = PRELUDE.format(tests=str(TESTS)) + setup + '\nBASE = rss("VmRSS:")\n' + work
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class EndlessServer:
    """Answers every request with `head`, then `body` repeated until the client leaves
    (or `limit` bytes went out): an endless stream no scripted server can hold."""

    def __init__(self, head: bytes, body: bytes, *, limit: int = 3 * 1024 * MB) -> None:
        self._head, self._body, self._limit = head, body, limit
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.sent = 0
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            length = int(
                next(
                    (
                        line.split(b":")[1]
                        for line in request.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    b"0",
                )
            )
            body = request.partition(b"\r\n\r\n")[2]
            while len(body) < length:
                body += connection.recv(65536)
            try:
                connection.sendall(self._head)
                sent = 0
                while sent < self._limit:
                    connection.sendall(self._body)
                    sent += len(self._body)
                    self.sent += len(self._body)
            except OSError:
                return

    def close(self) -> None:
        self._sock.close()


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_head(extra: str = "") -> bytes:
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        f"Transfer-Encoding: chunked\r\n{extra}\r\n"
    ).encode()


@pytest.fixture
def endless_lines() -> Iterator[EndlessServer]:
    """`data:` lines that never end their event: 64 KiB of them per chunk, for ever."""
    line = b"data: " + b"x" * 1018 + b"\n"
    server = EndlessServer(sse_head(), chunked(line * 64))
    yield server
    server.close()


STREAM = """
import asyncio
from streamchat.providers import build_request
from streamchat.transport import Retries, stream_deltas
"""


def test_an_event_that_never_ends_is_capped(endless_lines: EndlessServer) -> None:
    url = f"http://127.0.0.1:{endless_lines.port}/v1/chat/completions"
    work = f"""
async def main():
    request = build_request({url!r}, [{{"role": "user", "content": "hi"}}])
    return [d async for d in stream_deltas(request, retries=Retries(attempts=0))]
deltas = asyncio.run(main())
report(kind=deltas[-1].kind, message=deltas[-1].message)
"""
    result = run_child(STREAM, work)
    assert result["kind"] == "limit"
    assert "longer than 8,388,608 characters" in result["message"]
    # 8 Mi characters of pending text, held once and joined once, plus the decoder.
    assert result["growth"] < 80 * MB, result
    assert endless_lines.sent < 200 * MB


def test_an_answer_that_never_ends_is_capped() -> None:
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "' + b"y" * 990 + b'"}}]}\n\n'
    server = EndlessServer(sse_head(), chunked(event * 64))
    try:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        work = f"""
async def main():
    request = build_request({url!r}, [{{"role": "user", "content": "hi"}}])
    size, last = 0, None
    async for delta in stream_deltas(request, retries=Retries(attempts=0)):
        size += len(getattr(delta, "text", ""))
        last = delta
    return size, last
size, last = asyncio.run(main())
report(kind=last.kind, size=size)
"""
        result = run_child(STREAM, work)
    finally:
        server.close()
    assert result["kind"] == "limit"
    assert 7_990_000 < result["size"] <= 8_000_000  # the text before the limit was delivered
    assert result["growth"] < 60 * MB, result


def gzip_bomb(size: int) -> bytes:
    """`size` bytes of zeros, gzip-compressed (about size / 1000)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    parts = [compressor.compress(block) for _ in range(size // MB)]
    return b"".join([*parts, compressor.flush()])


def test_the_doctor_does_not_inflate_a_gzip_bomb() -> None:
    bomb = gzip_bomb(1024 * MB)
    assert len(bomb) < 2 * MB
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    server = EndlessServer(head, bomb, limit=len(bomb))
    try:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        work = f"""
diagnosis = diagnose({url!r}, timeout=60)
report(ending=diagnosis.measurements.ending, text=diagnosis.render_text())
"""
        result = run_child("from streamchat.doctor import diagnose", work)
    finally:
        server.close()
    assert result["ending"] == "undecodable"
    assert "inflates to more than 16,777,216 bytes" in result["text"]
    assert result["growth"] < 120 * MB, result


@pytest.mark.parametrize("character", ["a", "字"])
def test_the_typewriter_backlog_is_bounded(character: str) -> None:
    """A 30 M-character answer arriving at once, typed at 10 characters a second."""
    work = f"""
from streamchat.typewriter import Typewriter
typewriter = Typewriter(10)
now, shown = 0.0, 0
piece = {character!r} * 10_000
for _ in range(3_000):
    typewriter.push(piece, now)
    now += 0.01
    shown += len(typewriter.take(now))
report(shown=shown, pending=typewriter.pending)
"""
    result = run_child("", work)
    assert result["pending"] <= 200_000 + 10_000
    assert result["shown"] + result["pending"] == 30_000_000
    assert result["growth"] < 60 * MB, result


def test_an_endless_python_source_is_read_no_faster_than_it_is_typed() -> None:
    """An endless generator typed at 10 characters a second, for 2 s, then closed: it is
    read as far as the typewriter's lead and the reader's queue, not into the memory.
    Before: 4.3 M items read and +570 MB peak in 3 s, and the memory stayed after close."""
    work = """
import gc, time
from streamchat.widget import StreamChat

produced = 0

def endless():
    global produced
    while True:
        produced += 1
        yield f"word{produced} "

chat = StreamChat(endless(), speed=10)
deadline = time.monotonic() + 30
while chat.status != "streaming" and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(2)  # the window measured, not a synchronisation
chat.close()
status = chat.turns[-1]["status"]
del chat
gc.collect()
report(status=status, produced=produced, after_close=rss("VmRSS:") - BASE)
"""
    result = run_child("import streamchat.widget", work)
    assert result["status"] == "stopped"
    # The typewriter's lead (32 K clusters) and the queue (64 K characters), in 9-char items.
    assert result["produced"] < 20_000, result
    assert result["growth"] < 40 * MB, result
    assert result["after_close"] < 20 * MB, result
