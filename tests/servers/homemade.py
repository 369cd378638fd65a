"""Streaming servers as people write them with FastAPI and sse-starlette, served by uvicorn.

Each route streams the same kind of answer a small model gives token by token,
including tokens that are only whitespace: a space between two words, a tab, the
newline between two list items, the blank line before a new paragraph. A reader
that strips or skips them runs words and list items together.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from sse_starlette.sse import EventSourceResponse

# Tokens that never contain a line break: they fit the one-line `data: {token}\n\n` framing.
INLINE_TOKENS = [
    "Hello",
    ",",
    " ",
    "world",
    "!",
    " ",
    "Tabs",
    ":",
    "\t",
    "a",
    "\t",
    "b",
    " ",
    " ",
    ".",
]
# Tokens with line breaks, as a model writes a list and a new paragraph.
LINE_TOKENS = [
    "Steps",
    ":",
    "\n",
    "-",
    " one",
    "\n",
    "-",
    " two",
    "\n\n",
    "Done",
    ".",
    " ",
    "\n",
]
INLINE = "".join(INLINE_TOKENS)
LINES = "".join(LINE_TOKENS)


async def _paced(tokens: list[str]) -> AsyncIterator[str]:
    """Yield each token on its own, as a model server does between two decode steps."""
    for token in tokens:
        yield token
        await asyncio.sleep(0)


def _data_lines(token: str, newline: str) -> str:
    """One SSE event whose data is `token`: a field per line, as the spec requires.

    https://html.spec.whatwg.org/multipage/server-sent-events.html#dispatchMessage
    """
    return "".join(f"data: {line}{newline}" for line in token.split("\n")) + newline


def app() -> FastAPI:
    api = FastAPI()

    @api.post("/fastapi/sse")
    async def fastapi_sse() -> StreamingResponse:
        # The tutorial server: `yield f"data: {token}\n\n"`, then a [DONE] marker.
        async def events() -> AsyncIterator[str]:
            async for token in _paced(INLINE_TOKENS):
                yield f"data: {token}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/fastapi/sse-lines")
    async def fastapi_sse_lines() -> StreamingResponse:
        # A token with line breaks takes one `data:` field per line; the body just ends.
        async def events() -> AsyncIterator[str]:
            async for token in _paced(LINE_TOKENS):
                yield _data_lines(token, "\n")

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/fastapi/sse-crlf")
    async def fastapi_sse_crlf() -> StreamingResponse:
        # Windows-style line endings, which the SSE spec allows as well as LF and CR.
        async def events() -> AsyncIterator[str]:
            async for token in _paced(INLINE_TOKENS + LINE_TOKENS):
                yield _data_lines(token, "\r\n")
            yield "data: [DONE]\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @api.post("/fastapi/text")
    async def fastapi_text() -> StreamingResponse:
        # No framing at all: the tokens as they come, `media_type="text/plain"`.
        return StreamingResponse(_paced(INLINE_TOKENS + LINE_TOKENS), media_type="text/plain")

    @api.post("/fastapi/text-empty")
    async def fastapi_text_empty() -> StreamingResponse:
        # A generator that yields nothing: the route "worked" and said nothing.
        return StreamingResponse(_paced([]), media_type="text/plain")

    @api.post("/sse-starlette")
    async def sse_starlette() -> EventSourceResponse:
        # sse-starlette frames each yielded string (CRLF, one data field per line) and
        # sends `: ping` comments while the generator is quiet.
        return EventSourceResponse(_paced(INLINE_TOKENS + LINE_TOKENS), ping=1)

    @api.post("/sse-starlette/events")
    async def sse_starlette_events() -> EventSourceResponse:
        # Named events from dicts, then an `end` event with empty data, as many apps send;
        # the SSE spec dispatches no event with empty data, so the close ends the answer.
        async def events() -> AsyncIterator[dict[str, str]]:
            async for token in _paced(LINE_TOKENS):
                yield {"event": "token", "data": token}
            yield {"event": "end", "data": ""}

        return EventSourceResponse(events())

    return api


class Uvicorn:
    """An ASGI app under uvicorn in a daemon thread, on a port the OS picks (bound first)."""

    def __init__(self, asgi: FastAPI) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(asgi, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> Uvicorn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
