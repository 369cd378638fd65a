"""Python sources: answers that come from Python code instead of an HTTP endpoint.

Most notebooks reach their model through a Python client, so a chat can stream
from any of these, each turned into the same typed deltas as a URL's answer:

- a function given the conversation (OpenAI message format) that returns text, an
  iterator or async iterator, an SDK stream, or an awaitable of one of those;
- an iterator or async iterator of strings (a generator, a transformers
  `TextIteratorStreamer`, a LangChain chain ending in a string parser);
- the stream objects of the SDKs (openai, anthropic, google-genai, ollama, litellm,
  LangChain chat models): their chunk and event objects are dumped to dicts and read
  by the same provider readers as the wire formats (`streamchat.providers`), so
  reasoning, tool calls, token counts and finish reasons show the same way.

Blocking code never runs on the event loop: a sync function is called, and a sync
iterator read, on a thread of its own, which hands items to the loop in batches (one
wake-up per batch, however fast the generator). Stop cancels the consumer at once;
the thread then closes a generator (`GeneratorExit` runs its `finally`) as soon as
its current item is produced. An async iterator is read on the loop and closed with
`aclose()` on Stop. Credentials stay inside the user's client: nothing here sees them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from ._frames import PERIOD, READ_EVERY, frame_after
from ._pacing import Wake
from ._providers.readers import CustomReader
from ._secrets import Secrets, scrub
from ._timeout import within
from .deltas import (
    Delta,
    Done,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .providers import StreamParser
from .transport import Timeouts

__all__ = ["PythonSource", "source_deltas"]

Messages = list[dict[str, Any]]
_ORIGIN = "the Python source"
_DELTAS = (TextDelta, ReasoningDelta, ToolCallDelta, Usage, Done, StreamError)


class PythonSource:
    """A user's source for one chat: a function of the conversation, or a single stream.

    A single stream (an iterator, an SDK stream object) can answer once: it is used
    up by its answer, and a second prompt or a Retry says so instead of hanging.
    """

    def __init__(self, source: object) -> None:
        if isinstance(source, (str, bytes)):
            raise TypeError("a URL is passed as `url`; a Python source is a function or a stream")
        self._source = source
        self.single = _is_stream(source)
        if not self.single and not callable(source):
            raise TypeError(
                f"cannot stream from a {type(source).__name__}: expected a function of the"
                " conversation, an iterator or async iterator of strings, or an SDK stream"
            )
        self._used = False

    def __repr__(self) -> str:
        return f"PythonSource({self._source!r})"

    def deltas(self, messages: Messages, timeouts: Timeouts = Timeouts()) -> AsyncIterator[Delta]:
        """The answer to `messages` as deltas; the last one is always `Done` or `StreamError`."""
        if self.single and self._used:
            return _error(
                "this chat was given a single stream, which its first answer used up: pass a"
                " function of the conversation (messages -> stream) to keep chatting or retry"
            )
        self._used = True
        return source_deltas(self._source, messages, timeouts)


async def _error(message: str) -> AsyncIterator[Delta]:
    yield StreamError("source", message)


def _is_stream(value: object) -> bool:
    if isinstance(value, (str, bytes, dict)):
        return False
    return hasattr(value, "__aiter__") or hasattr(value, "__iter__")


async def source_deltas(
    source: object, messages: Messages, timeouts: Timeouts = Timeouts()
) -> AsyncIterator[Delta]:
    """Stream one answer from a Python source as deltas; the last is `Done` or `StreamError`.

    An exception raised by the source ends the answer with a `StreamError` after
    everything it yielded before (the partial answer is kept); an SDK's HTTP error
    keeps its status. `timeouts.idle` bounds the wait for each item and
    `timeouts.total` the whole answer, as for a URL.
    """
    parser = StreamParser(CustomReader(), origin=_ORIGIN)
    items = _items(source, messages, timeouts)
    try:
        async for item in items:
            for delta in _read(parser, item):
                yield delta
                if isinstance(delta, (Done, StreamError)):
                    return
    except _Timeout as timeout:
        deltas = parser.fail("timeout", str(timeout))
    except Exception as exc:  # the user's code or SDK raised: show it, keep the partial
        deltas = parser.fail(*_failure(exc))
    else:
        deltas = parser.end(clean=True)
    finally:
        await items.aclose()
    for delta in deltas:
        yield delta


def _read(parser: StreamParser, item: object) -> list[Delta]:
    if isinstance(item, str):
        return parser.feed_text(item)
    if isinstance(item, _DELTAS):
        return parser.feed_delta(item)
    return parser.feed_object(_payload(item))


def _payload(item: object) -> object:
    """An SDK's chunk or event object as the dict its wire format would have carried.

    Pydantic models (openai, anthropic, google-genai, ollama, litellm, LangChain)
    dump by alias, which gives google-genai's camelCase wire names.
    """
    dump = getattr(item, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item


def _failure(exc: Exception) -> tuple[Any, str, int | None]:
    status = getattr(exc, "status_code", None)
    message = _redacted(" ".join(f"{type(exc).__name__}: {exc}".split()), exc)
    if isinstance(status, int) and not isinstance(status, bool):
        return "http", message, status
    return "source", message, None


def _redacted(message: str, exc: Exception) -> str:
    """The message without the credential the SDK sent, if the server echoed it back.

    openai's and anthropic's errors carry the HTTP request they made: its headers
    say which key to look for, as the transport's own requests do.
    """
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    if not isinstance(headers, Mapping):  # an httpx(-like) request: SDKs vendor their own
        return scrub(message)
    sent = {str(name): str(value) for name, value in headers.items()}
    return Secrets.of(str(getattr(request, "url", "")), sent).redact(message)


class _Timeout(Exception):
    pass


async def _items(source: object, messages: Messages, timeouts: Timeouts) -> AsyncIterator[object]:
    """The source's items, whatever kind of source it is, each within the timeouts."""
    deadline = time.monotonic() + timeouts.total

    async def wait(awaitable: Any) -> Any:
        remaining = deadline - time.monotonic()
        timeout = min(timeouts.idle, remaining)
        try:
            return await within(awaitable, max(timeout, 0))
        except asyncio.TimeoutError:
            if timeout < timeouts.idle:
                raise _Timeout(f"the answer took longer than {timeouts.total:g} s") from None
            raise _Timeout(f"no item from the source for {timeout:g} s (idle timeout)") from None

    value = source
    awaited = inspect.iscoroutinefunction(source) or inspect.isasyncgenfunction(source)
    if awaited:
        value = source(messages)  # type: ignore[operator]
    elif not _is_stream(source):  # a sync function may block (an SDK call connects first)
        value = _Call(source, messages)  # type: ignore[arg-type]
    async with contextlib.aclosing(_unwrap(value, wait, awaited)) as items:
        async for item in items:
            yield item


Wait = Callable[[Any], Awaitable[Any]]


async def _unwrap(value: object, wait: Wait, awaited: bool = False) -> AsyncIterator[object]:
    """The items of `value`: a stream's items, an awaitable's result's, or `value` itself.

    A function's result may be text, a whole response object, a stream or an
    awaitable of one (an async SDK client's `create(stream=True)`).
    """
    if isinstance(value, _Call) or (_is_stream(value) and not _reads_async(value, awaited)):
        reader = _Reader(value)
        try:
            while True:
                for item in await wait(reader.batch()):
                    if item is _END:
                        return
                    if isinstance(item, _Handoff):  # a sync function returned something async
                        async with contextlib.aclosing(_unwrap(item.value, wait, True)) as inner:
                            async for each in inner:
                                yield each
                        return
                    yield item
        finally:
            reader.stop()
    elif _is_stream(value):
        iterator = value.__aiter__()  # type: ignore[attr-defined]
        try:
            while True:
                try:
                    item = await wait(iterator.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await _aclose(iterator, value)
    elif inspect.isawaitable(value):
        async with contextlib.aclosing(_unwrap(await wait(value), wait, True)) as inner:
            async for each in inner:
                yield each
    elif value is not None:
        yield value


def _reads_async(value: object, awaited: bool) -> bool:
    """Whether to read `value` with `async for` (else `for`, on a thread).

    An object that is both (litellm's CustomStreamWrapper) is read the way the stream
    it wraps is, or, failing that, async if it came from async code.
    """
    if not hasattr(value, "__aiter__"):
        return False
    if not hasattr(value, "__iter__"):
        return True
    inner = getattr(value, "completion_stream", None)
    if inner is not None:
        return hasattr(inner, "__aiter__") and not hasattr(inner, "__next__")
    return awaited


async def _aclose(*things: object) -> None:
    """Close an async stream: an async generator's `aclose`, an SDK stream's `close`."""
    for thing in things:
        closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
        if callable(closer):
            result = closer()
            if inspect.isawaitable(result):
                await result
            return


_END = object()


class _Call:
    """A sync function's call, made on the reader thread (it may block)."""

    def __init__(self, function: Callable[[Messages], object], messages: Messages) -> None:
        self.function = function
        self.messages = messages


@dataclasses.dataclass(frozen=True)
class _Handoff:
    value: object


class _Reader:
    """A sync iterator (or a sync function's call) read on a daemon thread.

    Items wait in a deque. The loop is woken only when a batch is awaited and none
    is there, and a batch is taken at most once a frame (`READ_EVERY` frames while
    the text is paced): an SDK's 50 events a second are taken in the typing loop's
    wake-ups, as the network backend does for sockets (`_frames`). `stop()` makes
    the thread close the iterator after its current item.
    """

    def __init__(self, value: object) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: collections.deque[tuple[str, object]] = collections.deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._waiting = False  # a batch awaits `_ready`: the next item wakes the loop
        self._held_until: float | None = None  # no batch before this frame
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(value,), name="streamchat-source", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    async def batch(self) -> list[object]:
        """The items produced since the last call (waiting for at least one)."""
        if self._held_until is not None:
            await Wake().wait(self._held_until)
        while True:
            with self._lock:
                if self._items:
                    batch, self._items = self._items, collections.deque()
                    break
                self._ready.clear()
                self._waiting = True
            await self._ready.wait()
        holding = READ_EVERY.get()() - 1  # the frames after the next one
        self._held_until = frame_after(self._loop.time() + holding * PERIOD)
        items: list[object] = []
        for kind, value in batch:
            if kind == "error":
                if items:  # deliver what came before the exception first
                    with self._lock:
                        self._items.appendleft((kind, value))
                    return items
                raise value  # type: ignore[misc]
            items.append(_END if kind == "end" else value)
        return items

    def _put(self, kind: str, value: object) -> None:
        with self._lock:
            wake, self._waiting = self._waiting, False
            self._items.append((kind, value))
        if wake and not self._stopped.is_set():  # after Stop nobody waits; the loop may be gone
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._ready.set)

    def _run(self, value: object) -> None:
        try:
            if isinstance(value, _Call):
                value = value.function(value.messages)
            if _reads_async(value, False) or inspect.isawaitable(value):
                # The loop reads it from here on, and closes it: not this thread.
                self._put("item", _Handoff(value))
            elif isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                if value is not None:
                    self._put("item", value)
            else:
                self._read(value)
        except BaseException as exc:
            self._put("error", exc)
        finally:
            self._put("end", None)

    def _read(self, stream: object) -> None:
        iterator: Iterator[object] | None = None
        try:
            iterator = iter(stream)  # type: ignore[call-overload]
            for item in iterator:
                if self._stopped.is_set():
                    break
                self._put("item", item)
        finally:
            _close(iterator, stream)


def _close(iterator: object, value: object) -> None:
    """Close what was read: a generator's `finally` runs, an SDK stream's response closes.

    Both, because `iter()` of an SDK stream is a generator of its own.
    """
    for thing in (iterator, value) if iterator is not value else (iterator,):
        close = getattr(thing, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            with contextlib.suppress(Exception):  # best effort: the answer already ended
                close()
