"""The demo server in a process of its own, recording when each request arrived.

A race's lanes must start within 5 ms of each other: measured where it counts, at the
server, and in another process so the server's threads do not share the client's GIL.
`GET /arrivals` returns the `time.monotonic()` (CLOCK_MONOTONIC, the same clock in every
process of the machine) at which each chat request's headers were read, and clears it.

Run: `python tests/servers/arrivals.py RATE` prints the port, then serves.
Optional environment: `FAIL=/path`: that path answers HTTP 500; `ANSWER_CHARS=N`: every
prompt is answered with `long_answer(N)` (prose, to time a long stream).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from streamchat.server import _DemoApp

WORDS = [
    "lanes",
    "race",
    "side",
    "by",
    "side",
    "on",
    "one",
    "clock",
    "while",
    "the",
    "kernel",
    "stays",
    "responsive",
]


def long_answer(chars: int) -> str:
    """Plain prose of about `chars` characters, in paragraphs (nothing Markdown hides)."""
    words: list[str] = []
    size = 0
    index = 0
    while size < chars:
        word = WORDS[index % len(WORDS)] + str(index % 97)
        words.append(word)
        size += len(word) + 1
        index += 1
    sentences = [" ".join(words[i : i + 12]) + "." for i in range(0, len(words), 12)]
    return "\n\n".join(" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6))


class Arrivals:
    def __init__(self, rate: float, fail: str | None) -> None:
        self.app = _DemoApp(rate)
        self.fail = fail
        self.times: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/arrivals":
            times, self.times = self.times, []
            body = json.dumps(times).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            self.times.append(time.monotonic())
            if self.fail and scope["path"].startswith(self.fail):
                body = b'{"error": {"message": "this lane fails on purpose"}}'
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class Served:
    """A running arrivals server: its base URL, and the arrivals since the last read."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def url(self, prefix: str = "") -> str:
        return f"{self.base}{prefix}/v1/chat/completions"

    def arrivals(self) -> list[float]:
        with urllib.request.urlopen(f"{self.base}/arrivals", timeout=10) as response:
            return list(json.load(response))


@contextlib.contextmanager
def serve(rate: float, fail: str | None = None, chars: int = 0) -> Iterator[Served]:
    """Run the server in a child process for the `with` block."""
    env = {**os.environ, **({"FAIL": fail} if fail else {}), "ANSWER_CHARS": str(chars)}
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__)), str(rate)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield Served(port)
    finally:
        child.terminate()
        child.wait(10)


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)
    if chars := int(os.environ.get("ANSWER_CHARS", "0")):
        import streamchat.server

        text = long_answer(chars)
        streamchat.server.answer_for = lambda _prompt: text  # type: ignore[assignment]
    app = Arrivals(rate, os.environ.get("FAIL"))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
