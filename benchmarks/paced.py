"""A loopback chat completions stream paced in time, for the CPU benchmarks.

It runs in its own process, so its CPU is not the reader's, and writes each event at
its own time, so that each arrives in its own read, as a real model's events do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["serve", "start"]


def _chunk(text: str) -> bytes:
    event = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(event)}\n\n".encode()


def serve(tokens: Callable[[str], list[str]], per_second: float) -> None:
    """Print the URL, then answer each POST with `tokens(prompt)`, `per_second` of them
    a second, and `[DONE]`. Runs until the process is killed."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            pieces = tokens(body["messages"][-1]["content"])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            started = time.monotonic()
            for n, piece in enumerate(pieces):
                delay = started + n / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.wfile.write(_chunk(piece))
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_port}/v1/chat/completions", flush=True)
    server.serve_forever()


def start(script: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Run `script --serve *args` (a benchmark whose --serve calls `serve`); return the
    process and the URL it serves."""
    process = subprocess.Popen(
        [sys.executable, script, "--serve", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()
