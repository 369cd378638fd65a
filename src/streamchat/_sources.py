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

Blocking code never runs on the event loop: a sync function is called, a sync
iterator read and an SDK's objects dumped, on a thread of its own, which hands items
to the loop in batches (one wake-up per batch, however fast the generator). Stop
cancels the consumer at once; the thread then closes a generator (`GeneratorExit`
runs its `finally`) as soon as its current item is produced, and a generator that
runs Python code without yielding (a polling loop) is interrupted there. An async
iterator is read on the loop and closed with `aclose()` on Stop.

Backpressure: no source can stall the loop or fill the memory, however fast or long.
The thread waits while its queue is full; the loop takes a bounded amount of work per
frame (a long string is typed on in pieces); and the source is read no further while
the typewriter holds more than `_AHEAD` clusters not yet shown (`_frames.BACKLOG`),
so an endless generator at 10 characters a second is read at that pace. Time held back
so does not count against the timeouts.

Items: text (str, or bytes in UTF-8), an SDK's chunk objects, dicts of a wire format,
or streamchat's own deltas; None is skipped; anything else ends the answer with an
error that names its type. Credentials stay inside the user's client; what an error
message quotes of one is masked (`_secrets`).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import ctypes
import dataclasses
import inspect
import reprlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from ._frames import BACKLOG, PERIOD, READ_EVERY, frame_after, frame_at
from ._pacing import Wake
from ._providers.readers import CustomReader
from ._secrets import Secrets
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

# Backpressure (see the module's docstring). The loop spends at most `_FRAME_WORK` units
# on a source per frame: a delta costs `_ITEM_WORK` plus its characters, so a frame
# takes ~1000 SDK chunks or 32 K of text (a few ms; a thread's strings come joined).
# Text is handed on in pieces of at most `_PIECE` characters (a megabyte yielded at
# once is typed on over many frames). The reader thread's queue holds at most
# `_QUEUE_ITEMS` items (~200 KB of small objects) and `_QUEUE_CHARS` characters (more
# only for one longer item). A typewriter that holds
# `_AHEAD` clusters has minutes of text at any useful speed; `_POLL` is how often a
# held source looks again (s), so a faster speed set meanwhile is felt within it.
_FRAME_WORK = 32 * 1024
_ITEM_WORK = 32
_PIECE = 8 * 1024
_QUEUE_ITEMS = 4096
_QUEUE_CHARS = 64 * 1024
_AHEAD = 32 * 1024
_POLL = 0.25
_GRACE = 0.2  # s a source's code may still run after Stop before it is interrupted
# Errors of the stream's framing mean, for a Python source, that the source misbehaved:
# there is no connection or server to blame (`_explain` speaks of the Python code).
_SOURCE_KINDS = frozenset({"incomplete", "protocol", "network", "connect", "request"})


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
    if isinstance(value, (str, bytes, bytearray, memoryview, dict)) or _dumps(value):
        return False  # a pydantic model iterates over its fields: it is one item
    return hasattr(value, "__aiter__") or hasattr(value, "__iter__")


def _dumps(value: object) -> bool:
    return callable(getattr(value, "model_dump", None))


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
    clock = _Clock(timeouts)
    pace = _Pace(clock)
    items = _items(source, messages, clock)
    try:
        async for item in items:
            for delta in _read(parser, item):
                if isinstance(delta, (Done, StreamError)):
                    yield _own(delta)
                    return
                for piece in _pieces(delta):
                    yield piece
                    await pace.spend(piece)
    except _Timeout as timeout:
        deltas = parser.fail("timeout", str(timeout))
    except Exception as exc:  # the user's code or SDK raised: show it, keep the partial
        deltas = parser.fail(*_failure(exc))
    else:
        deltas = parser.end(clean=True)
    finally:
        await items.aclose()
    for delta in deltas:
        yield _own(delta)


def _read(parser: StreamParser, item: object) -> list[Delta]:
    if isinstance(item, str):
        return parser.feed_text(item)
    if isinstance(item, _DELTAS):
        return parser.feed_delta(item)
    return parser.feed_object(item)


def _own(delta: Delta) -> Delta:
    """The terminal delta as a Python source's: a framing error is the source's fault."""
    if isinstance(delta, StreamError) and delta.kind in _SOURCE_KINDS:
        return StreamError("source", delta.message, delta.status, delta.retry_after)
    return delta


def _pieces(delta: Delta) -> list[Delta]:
    """`delta`, its text cut in pieces of at most `_PIECE` characters."""
    if not isinstance(delta, (TextDelta, ReasoningDelta)) or len(delta.text) <= _PIECE:
        return [delta]
    kind, text = type(delta), delta.text
    return [kind(text[start : start + _PIECE]) for start in range(0, len(text), _PIECE)]


class _Pace:
    """(loop thread) How much of a source the loop takes: a bounded amount of work per
    frame, and nothing more while the typewriter holds `_AHEAD` clusters."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._frame = -1.0  # the frame the work below was done in
        self._work = 0

    async def spend(self, delta: Delta) -> None:
        loop = asyncio.get_running_loop()
        frame = frame_at(loop.time())
        if frame != self._frame:
            self._frame, self._work = frame, 0
        text = delta.text if isinstance(delta, (TextDelta, ReasoningDelta)) else ""
        self._work += _ITEM_WORK + len(text)
        if self._work >= _FRAME_WORK:  # the rest waits for the next frame
            await Wake().wait(frame_after(loop.time()))
        held = BACKLOG.get()
        if held() > _AHEAD:
            started = loop.time()
            while held() > _AHEAD:
                await Wake().wait(loop.time() + _POLL)
            self._clock.pause(loop.time() - started)


def _failure(exc: Exception) -> tuple[Any, str, int | None]:
    status = getattr(exc, "status_code", None)
    message = _redacted(" ".join(f"{type(exc).__name__}: {exc}".split()), exc)
    if isinstance(status, int) and not isinstance(status, bool):
        return "http", message, status
    return "source", message, None


def _redacted(message: str, exc: Exception) -> str:
    """The message without any credential it quotes (`Secrets.redact`), and without the
    one the SDK sent when its error carries its request (openai's and anthropic's do).

    Not relied upon: an SDK may add its `Authorization` header only as it sends (openai
    3.x does), so the request on its error need not hold the key.
    """
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    if not isinstance(headers, Mapping):  # an httpx(-like) request: SDKs vendor their own
        return Secrets().redact(message)
    sent = {str(name): str(value) for name, value in headers.items()}
    return Secrets.of(str(getattr(request, "url", "")), sent).redact(message)


class _Timeout(Exception):
    pass


class _Clock:
    """(loop thread) The answer's timeouts: `idle` for each item, `total` for the whole
    answer, less the time the source was held back for the typewriter (`pause`)."""

    def __init__(self, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        self._deadline = time.monotonic() + timeouts.total

    def pause(self, seconds: float) -> None:
        self._deadline += seconds

    async def wait(self, awaitable: Any) -> Any:
        idle = self._timeouts.idle
        timeout = min(idle, self._deadline - time.monotonic())
        try:
            return await within(awaitable, max(timeout, 0))
        except asyncio.TimeoutError:
            if timeout < idle:
                total = self._timeouts.total
                raise _Timeout(f"the answer took longer than {total:g} s") from None
            raise _Timeout(f"no item from the source for {timeout:g} s (idle timeout)") from None


async def _items(source: object, messages: Messages, clock: _Clock) -> AsyncGenerator[object, None]:
    """The source's items, whatever kind of source it is, each within the timeouts."""
    value = source
    awaited = inspect.iscoroutinefunction(source) or inspect.isasyncgenfunction(source)
    if awaited:
        value = source(messages)  # type: ignore[operator]
    elif not _is_stream(source):  # a sync function may block (an SDK call connects first)
        value = _Call(source, messages)  # type: ignore[arg-type]
    async with contextlib.aclosing(_unwrap(value, clock.wait, _Items(), awaited)) as items:
        async for item in items:
            yield item


Wait = Callable[[Any], Awaitable[Any]]


async def _unwrap(
    value: object, wait: Wait, normal: _Items, awaited: bool = False
) -> AsyncGenerator[object, None]:
    """The items of `value`: a stream's items, an awaitable's result's, or `value` itself.

    A function's result may be text, a whole response object, a stream or an
    awaitable of one (an async SDK client's `create(stream=True)`).
    """
    if isinstance(value, _Call) or (_is_stream(value) and not _reads_async(value, awaited)):
        reader = _Reader(value, normal)
        try:
            while True:
                for item in await wait(reader.batch()):
                    if item is _END:
                        return
                    if isinstance(item, _Handoff):  # a sync function returned something async
                        inner = _unwrap(item.value, wait, normal, True)
                        async with contextlib.aclosing(inner):
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
                    break
                if (each := normal(item)) is not None:
                    yield each
        finally:
            await _aclose(iterator, value)
        if (tail := normal.flush()) is not None:
            yield tail
    elif inspect.isawaitable(value):
        inner = _unwrap(await wait(value), wait, normal, True)
        async with contextlib.aclosing(inner):
            async for each in inner:
                yield each
    else:
        for each in (normal(value), normal.flush()):
            if each is not None:
                yield each


class _Items:
    """What a source yields, as the parser reads it: text, a dict, or a delta (None: skip).

    Bytes are decoded as UTF-8 across items (a character may be split between two),
    invalid sequences as U+FFFD, as a body's are. An SDK's chunk or event object
    becomes the dict its wire format would have carried: pydantic models (openai,
    anthropic, google-genai, ollama, litellm, LangChain) dump by alias, which gives
    google-genai's camelCase wire names. Called on the reader thread for a sync
    source, so that a slow `model_dump` never runs on the loop.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, item: object) -> object:
        if isinstance(item, str):
            pending = self.flush()  # bytes cut mid-character, then text
            return item if pending is None else pending + item
        if item is None or isinstance(item, (dict, *_DELTAS)):
            return item
        if isinstance(item, (bytes, bytearray, memoryview)):
            return self._decoder.decode(bytes(item)) or None
        if _dumps(item):
            return item.model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return dataclasses.asdict(item)
        to_dict = getattr(item, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        raise TypeError(
            f"the Python source gave an item of type {type(item).__name__} ({_SHORT.repr(item)}):"
            " expected text (str, or bytes in UTF-8), an SDK's chunk objects, dicts or"
            " streamchat deltas"
        )

    def flush(self) -> str | None:
        """What is left of a character cut short by the last bytes (U+FFFD), if any."""
        return self._decoder.decode(b"", final=True) or None


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40


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

    Items wait in a bounded queue: the thread waits while it is full, so a source
    is read no faster than the loop takes it. The loop is woken only when a batch is
    awaited and none is there, and a batch is taken at most once a frame
    (`READ_EVERY` frames while the text is paced): an SDK's 50 events a second are
    taken in the typing loop's wake-ups, as the network backend does for sockets
    (`_frames`). Consecutive strings of a batch are joined: a generator of
    one-character tokens costs the loop what its text costs, not a delta per token.
    `stop()` makes the thread close the iterator after its current item, and
    interrupts the source's code if it is running Python (`_interrupt`).
    """

    def __init__(self, value: object, normal: _Items) -> None:
        self._loop = asyncio.get_running_loop()
        self._normal = normal
        self._cond = threading.Condition()
        self._items: collections.deque[tuple[str, object]] = collections.deque()
        self._chars = 0  # text in `_items`
        self._ready = asyncio.Event()
        self._waiting = False  # a batch awaits `_ready`: the next item wakes the loop
        self._held_until: float | None = None  # no batch before this frame
        self._stopped = False
        self._inside = False  # the thread runs the source's code (it may be interrupted)
        self._inside_lock = threading.Lock()  # `_inside` and the interrupt, together
        self._thread = threading.Thread(
            target=self._run, args=(value,), name="streamchat-source", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """(loop thread) Stop reading: at once if the thread waits on the queue, after its
        current item if it is in the source's code, or interrupted there a moment later
        (`_GRACE`: an SDK's read that is about to return closes its response cleanly)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        with contextlib.suppress(RuntimeError):  # the loop is closing: no interrupt then
            self._loop.call_later(_GRACE, self._interrupt_if_inside)

    def _interrupt_if_inside(self) -> None:
        with self._inside_lock:
            if self._inside:  # still in the call it was in at Stop (no call starts after)
                _interrupt(self._thread, _Stopped)

    async def batch(self) -> list[object]:
        """The items produced since the last call (waiting for at least one)."""
        if self._held_until is not None:
            await Wake().wait(self._held_until)
        while True:
            with self._cond:
                if self._items:
                    batch, self._items, self._chars = self._items, collections.deque(), 0
                    self._cond.notify_all()  # room for the thread again
                    break
                self._ready.clear()
                self._waiting = True
            await self._ready.wait()
        holding = READ_EVERY.get()() - 1  # the frames after the next one
        self._held_until = frame_after(self._loop.time() + holding * PERIOD)
        items: list[object] = []
        text: list[str] = []  # consecutive strings: one item, whatever the tokens were
        for kind, value in batch:
            if kind == "item" and type(value) is str:
                text.append(value)
                continue
            if text:
                items.append("".join(text))
                text = []
            if kind == "error":
                if items:  # deliver what came before the exception first
                    with self._cond:
                        self._items.appendleft((kind, value))
                    return items
                raise value  # type: ignore[misc]
            items.append(_END if kind == "end" else value)
        if text:
            items.append("".join(text))
        return items

    def _put(self, kind: str, value: object = None) -> bool:
        """(thread) Queue an item, waiting while the queue is full; False after Stop."""
        size = len(value) if isinstance(value, str) else 0
        with self._cond:
            while kind == "item" and not self._stopped and self._full(size):
                self._cond.wait()
            if self._stopped:  # nobody waits any more; the loop may be gone
                return False
            wake, self._waiting = self._waiting, False
            self._items.append((kind, value))
            self._chars += size
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._ready.set)
        return True

    def _full(self, size: int) -> bool:
        """Whether an item of `size` characters must wait (one longer item fits alone)."""
        if not self._items:
            return False
        return len(self._items) >= _QUEUE_ITEMS or self._chars + size > _QUEUE_CHARS

    def _source(self, function: Callable[..., Any], *args: object) -> Any:
        """(thread) Run the source's code (its call, `next`, `model_dump`) interruptibly."""
        with self._inside_lock:
            if self._stopped:
                raise _Stopped
            self._inside = True
        try:
            return function(*args)
        finally:
            with self._inside_lock:
                self._inside = False
                if self._stopped:  # an interrupt that came as the code returned: not here
                    _interrupt(self._thread, None)

    def _run(self, value: object) -> None:
        try:
            if isinstance(value, _Call):
                value = self._source(value.function, value.messages)
            if _reads_async(value, False) or inspect.isawaitable(value):
                # The loop reads it from here on, and closes it: not this thread.
                self._put("item", _Handoff(value))
            elif not _is_stream(value):  # a whole answer: text, a response object
                for each in (self._source(self._normal, value), self._normal.flush()):
                    if each is not None:
                        self._put("item", each)
            else:
                self._read(value)
        except _Stopped:
            pass
        except BaseException as exc:
            self._put("error", exc)
        finally:
            self._put("end")

    def _read(self, stream: object) -> None:
        iterator: Iterator[object] | None = None
        try:
            iterator = self._source(iter, stream)
            normal = self._normal
            while True:
                try:
                    each = self._source(lambda: normal(next(iterator)))  # type: ignore[arg-type]
                except StopIteration:
                    break
                if each is not None and not self._put("item", each):
                    return
            tail = self._normal.flush()
            if tail is not None:
                self._put("item", tail)
        finally:
            _close(iterator, stream)


class _Stopped(BaseException):
    """Raised in a source's code on Stop: a BaseException, so `except Exception` in a
    generator cannot swallow it and keep the thread reading for nobody."""


def _interrupt(thread: threading.Thread, exception: type[BaseException] | None) -> None:
    """Raise `exception` in `thread` at its next Python instruction (None: cancel that).

    A thread cannot be stopped from outside, but it can be made to raise, as Ctrl-C
    does in the main thread: a generator that loops in Python without yielding (it
    polls for a result that will not come) ends at once instead of living on for the
    rest of the kernel's life. A thread blocked in C (a socket read, `time.sleep`)
    raises when that call returns.
    https://docs.python.org/3/c-api/init.html#c.PyThreadState_SetAsyncExc
    """
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exception) if exception else None
        )


def _close(iterator: object, value: object) -> None:
    """Close what was read: a generator's `finally` runs, an SDK stream's response closes.

    Both, because `iter()` of an SDK stream is a generator of its own.
    """
    for thing in (iterator, value) if iterator is not value else (iterator,):
        close = getattr(thing, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            with contextlib.suppress(Exception):  # best effort: the answer already ended
                close()
