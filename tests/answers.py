"""Reading a streamed answer in a test: its deltas, its text. Declared once, used by every file.

`collect` streams one request through the real transport in a fresh event loop, the way
`stream_deltas` is used outside a notebook; `read_all` does the same for any stream of
deltas (a Python source's, a capped one); `text_of` is the answer's text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import httpx

from streamchat.deltas import Delta, TextDelta
from streamchat.providers import ChatRequest, build_request
from streamchat.transport import Retries, Timeouts, stream_deltas

__all__ = ["HI", "NO_RETRIES", "collect", "read_all", "text_of"]

HI = [{"role": "user", "content": "hi"}]
NO_RETRIES = Retries(attempts=0)
# A stream that never ends fails its test after this long instead of hanging the run.
WITHIN = 60.0


def text_of(deltas: Iterable[Delta]) -> str:
    """The answer's text: its text deltas joined (reasoning, usage and errors left out)."""
    return "".join(delta.text for delta in deltas if isinstance(delta, TextDelta))


def read_all(deltas: AsyncIterator[Delta], within: float = WITHIN) -> list[Delta]:
    """Every delta of `deltas`, read to the end in a fresh event loop."""

    async def run() -> list[Delta]:
        return [delta async for delta in deltas]

    return asyncio.run(asyncio.wait_for(run(), within))


def collect(
    target: str | ChatRequest,
    timeouts: Timeouts = Timeouts(),
    retries: Retries | int = NO_RETRIES,
    *,
    api_key: str | None = None,
    provider: str = "auto",
    client: httpx.AsyncClient | None = None,
    within: float = WITHIN,
) -> list[Delta]:
    """The deltas of one streamed request: a built `ChatRequest`, or a URL asked "hi".

    No retries unless asked (`retries`, a count or a `Retries`): a test sees the first
    failure, not the last.
    """
    if isinstance(target, str):
        target = build_request(target, HI, api_key=api_key, provider=provider)
    if isinstance(retries, int):
        retries = Retries(attempts=retries)
    stream = stream_deltas(target, timeouts=timeouts, retries=retries, client=client)
    return read_all(stream, within)
