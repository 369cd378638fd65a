"""One asyncio event loop in a daemon thread, shared by every widget in the kernel.

The kernel's own loop runs cell code: a cell that blocks (`time.sleep`, a long
computation) would stall any stream scheduled there. Streams therefore run on a
private loop in a background thread; comm messages sent from it still reach the
browser while a cell blocks (ipykernel >= 7.1 forwards them through its IOPub
thread). One loop for all widgets keeps the thread count at one however many chats
a notebook shows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["call_soon", "in_loop_thread", "loop", "running", "submit"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use (a daemon thread: it never blocks exit)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            ready = threading.Event()
            _thread = threading.Thread(
                target=_run, args=(_loop, ready), name="streamchat-loop", daemon=True
            )
            _thread.start()
            ready.wait()
        return _loop


def _run(event_loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(event_loop)
    event_loop.call_soon(ready.set)
    event_loop.run_forever()


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run `coro` on the shared loop; cancelling the returned future cancels the task."""
    return asyncio.run_coroutine_threadsafe(coro, loop())


def call_soon(callback: Callable[[], object]) -> None:
    """Run `callback` on the loop thread, so it sees a consistent state of the streams."""
    loop().call_soon_threadsafe(callback)


def in_loop_thread() -> bool:
    """True when called from the shared loop's thread (where blocking waits would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread


def running() -> bool:
    """True once the shared loop runs (nothing was ever scheduled on it before)."""
    return _thread is not None and _thread.is_alive()
