"""An embedded demo server: an OpenAI-compatible streaming chat endpoint on 127.0.0.1.

It lets `StreamChat()` and `streamchat demo` work with no API key and no network,
and it is a reference for the server side of streaming: it sends the headers that
keep proxies from buffering (see docs/nginx.md) and sends every token as its own
event. It is a plain ASGI app served by uvicorn in a background thread.

Each preset prompt gets its own answer (`_demo_answers`). The server sends at a set
rate in characters per second, by default faster than the widget's Speed slider
goes, so the pace a person sees is the one the slider sets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import regex
import uvicorn

from ._demo_answers import SHOWCASE, topic_for

__all__ = ["DEFAULT_RATE", "DemoServer", "answer_for", "demo_server", "reasoning_for", "tokens"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Characters per second: above the Speed slider's top (600), so the slider sets the pace.
DEFAULT_RATE = 1500.0

_TOKEN = regex.compile(r"\s*(?:\p{Han}{1,2}|[\p{L}\p{N}]{1,6}|\X)", regex.V1)


def answer_for(prompt: str) -> str:
    """The answer to `prompt`; the showcase quotes it (Markdown-escaped: no injected syntax)."""
    topic = topic_for(prompt)
    if topic is not SHOWCASE:
        return topic.answer
    shown = " ".join(prompt.split())[:120] or "nothing"
    shown = regex.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", shown)
    return SHOWCASE.answer.format(prompt=shown)


def reasoning_for(prompt: str) -> str:
    """The reasoning sent before the answer to `prompt` ("" for most prompts)."""
    return topic_for(prompt).reasoning


def tokens(text: str) -> Iterator[str]:
    """Split text into token-sized pieces: a few letters, one or two Han characters, a symbol."""
    return (match.group() for match in _TOKEN.finditer(text))


class _DemoApp:
    def __init__(self, rate: float) -> None:
        self.rate = rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        if scope["method"] == "POST" and path.endswith("/chat/completions"):
            await self._completions(receive, send)
        elif scope["method"] == "GET" and path.endswith("/models"):
            await _send_json(send, 200, {"object": "list", "data": [{"id": "streamchat-demo"}]})
        else:
            await _send_json(send, 404, {"error": {"message": f"no route for {path}"}})

    async def _completions(self, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        try:
            request = json.loads(body or b"{}")
            prompt = _last_user_text(request.get("messages") or [])
        except (ValueError, AttributeError, TypeError):
            await _send_json(send, 400, {"error": {"message": "the body is not a chat request"}})
            return
        model = str(request.get("model") or "streamchat-demo")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        try:
            for size, payload in _chunks(prompt, model):
                if disconnected.done():
                    return
                await send({"type": "http.response.body", "body": payload, "more_body": True})
                sent += size
                # Each event leaves when the rate says so; a few share one wake-up
                # when the rate is higher than the loop's timer resolution.
                ahead = started + sent / self.rate - loop.time() if self.rate > 0 else 0
                await asyncio.sleep(ahead if ahead > 0.002 else 0)
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
        except OSError:
            return  # the client went away (Stop): nothing to clean up
        finally:
            disconnected.cancel()


def _chunks(prompt: str, model: str) -> Iterator[tuple[int, bytes]]:
    """The answer's SSE events, each with how many characters of text it carries."""
    created = int(time.time())

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        chunk = {
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    yield 0, event({"role": "assistant", "content": ""})
    count = 0
    parts = {"reasoning_content": reasoning_for(prompt), "content": answer_for(prompt)}
    for key, text in parts.items():
        for token in tokens(text):
            count += 1
            yield len(token), event({key: token})
    yield 0, event({}, "stop")
    usage = {"prompt_tokens": 12, "completion_tokens": count, "total_tokens": 12 + count}
    yield (
        0,
        (
            b"data: "
            + json.dumps(
                {
                    "id": "chatcmpl-demo",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": usage,
                }
            ).encode()
            + b"\n\n"
        ),
    )


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class DemoServer:
    """The demo app under uvicorn in a daemon thread, on a loopback port picked by the OS.

    `rate` is characters of answer per second (0: as fast as the socket takes them).

    The listening socket is bound before the thread starts, so `url` is valid at once:
    an early request waits in the accept backlog instead of failing.
    """

    def __init__(self, rate: float = DEFAULT_RATE, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}/v1"
        self.url = f"{self.base_url}/chat/completions"
        config = uvicorn.Config(
            _DemoApp(rate), log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.serve_forever, name="streamchat-demo", daemon=True
        )

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` (or Ctrl+C in the foreground)."""
        self._server.run(sockets=[self._socket])

    def start(self) -> DemoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: DemoServer | None = None
_shared_lock = threading.Lock()


def demo_server() -> DemoServer:
    """The process-wide demo server, started on first use (what `StreamChat()` talks to)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DemoServer().start()
        return _shared
