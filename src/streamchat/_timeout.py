"""The one way the library waits for something with a time limit.

Not `asyncio.wait_for`: before Python 3.12 it loses a cancellation that arrives
as the awaited thing completes (it returns the result instead of raising), so a
Stop pressed just as a chunk arrives would be ignored and the connection would
stay open. `asyncio.timeout` (3.11+) awaits in the calling task itself, where a
pending cancellation is always delivered.
See https://github.com/python/cpython/issues/86296 and
https://docs.python.org/3/library/asyncio-task.html#asyncio.timeout
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["within"]

T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`awaitable`'s result, or TimeoutError after `seconds` (None: no limit)."""
        async with asyncio.timeout(seconds):
            return await awaitable

else:  # pragma: no cover - Python 3.10 has no asyncio.timeout

    async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
        """`awaitable`'s result, or TimeoutError after `seconds` (None: no limit)."""
        return await asyncio.wait_for(awaitable, seconds)
