"""A real HTTP/1.1 server on 127.0.0.1 (port 0) that plays scripted responses.

Tests register a `Script` per path: status, headers, and the body as a list of
chunks, each sent as its own HTTP chunk (so the client sees real chunk
boundaries), with optional pauses and an optional cut before the terminal
zero-length chunk (the blog's ERR_INCOMPLETE_CHUNKED_ENCODING). The server
records every request it received, so tests can check what the client sent.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    chunks: list[bytes] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/event-stream; charset=utf-8"}
    )
    # Seconds to wait before each chunk (one value for all, or one per chunk).
    pause: float | list[float] = 0.0
    # Stop after this many chunks without the terminal chunk, and close.
    cut_after: int | None = None
    # Send no Transfer-Encoding: the body ends when the connection closes.
    close_delimited: bool = False
    # Keep the connection open and silent after the chunks (idle timeout tests).
    hang: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    # When the request was read (time.monotonic), to measure clients' start skew.
    at: float = field(default_factory=time.monotonic)

    def json(self) -> object:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog: set on the class, because the constructor already listens
    # (an instance attribute set afterwards leaves it at 5, and a burst of clients
    # then sees resets).
    request_queue_size = 256


class LoopbackServer:
    def __init__(self) -> None:
        self.scripts: dict[str, list[Script]] = {}
        self.received: list[Received] = []
        # Paths whose response could not be written to the end: the client went away.
        self.broken: list[str] = []
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                outer.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                script = outer._next_script(path)
                if script is None:
                    script = Script(
                        [b'{"error": {"message": "no such route"}}'],
                        status=404,
                        headers={"Content-Type": "application/json"},
                    )
                outer._play(self, script, path)

            do_GET = _serve
            do_POST = _serve

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _play(self, handler: BaseHTTPRequestHandler, script: Script, path: str) -> None:
        handler.send_response(script.status)
        for name, value in script.headers.items():
            handler.send_header(name, value)
        if script.close_delimited:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        pauses = (
            script.pause if isinstance(script.pause, list) else [script.pause] * len(script.chunks)
        )
        try:
            for number, chunk in enumerate(script.chunks):
                if script.cut_after is not None and number >= script.cut_after:
                    break
                if pauses[number] and not self._idle(handler, pauses[number]):
                    return
                if script.close_delimited:
                    handler.wfile.write(chunk)
                elif chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.flush()
            if script.hang and not self._idle(handler, script.hang):
                return
            if script.cut_after is not None:
                handler.connection.shutdown(socket.SHUT_RDWR)
                handler.close_connection = True
                return
            if not script.close_delimited:
                handler.wfile.write(b"0\r\n\r\n")
                handler.wfile.flush()
        except OSError:
            self.broken.append(path)
            handler.close_connection = True

    def _idle(self, handler: BaseHTTPRequestHandler, seconds: float) -> bool:
        """Stay silent for `seconds`; False as soon as the client hangs up or we stop."""
        deadline = time.monotonic() + seconds
        connection = handler.connection
        while (left := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                return False
            readable, _, _ = select.select([connection], [], [], min(left, 0.05))
            if readable and not connection.recv(1, socket.MSG_PEEK):
                self.broken.append(handler.path.split("?", 1)[0])
                return False
        return True

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def route(self, path: str, *scripts: Script) -> str:
        """Serve `scripts` at `path`, one per request (the last one repeats); return the URL."""
        self.scripts[path] = list(scripts)
        return self.url + path

    def _next_script(self, path: str) -> Script | None:
        queue = self.scripts.get(path) or self.scripts.get("*")
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]


def sse(*events: str | dict) -> list[bytes]:
    """Encode events as SSE `data:` blocks, one chunk per event."""
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        out.append(f"data: {data}\n\n".encode())
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll a condition (not a fixed sleep): returns as soon as it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
