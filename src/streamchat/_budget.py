"""The send budget: how often the kernel may send an answer's patches to the browser.

Every live answer of every widget in the kernel shares it, so twenty chats typing at
once still leave the kernel responsive and within Jupyter's IOPub rate limit.
"""

from __future__ import annotations

__all__ = ["LIVE", "min_interval"]

# Jupyter's IOPub rate limit drops messages above 1000/s for the whole kernel; half of
# that is the budget shared by every live answer. One answer sends at most one message
# a frame (`_frames`, 36 a second: smooth typing), which the outbox keeps to itself.
_KERNEL_BUDGET = 500.0
# A tick usually sends only the new text ("extend"), but a reset or a block that is
# rendered anew can be large: bytes are budgeted too, for the browser's sake and for
# remote notebooks' bandwidth.
_KERNEL_BYTES = 250_000.0
# Rendering and sending run on the background thread, which shares the GIL with the
# kernel's main thread: all live answers together may use this share of one core,
# so a new cell still gets an answer at once while twenty chats type.
_KERNEL_CPU = 0.25

# Answers being typed right now, across widgets (touched only on the loop thread).
LIVE: set[object] = set()


def min_interval(live_answers: int, messages: int = 1, size: int = 0, cost: float = 0) -> float:
    """Seconds to wait after sending `messages` of `size` bytes that took `cost` seconds
    to render and send, so all live answers together stay within the kernel's message,
    byte and CPU budgets."""
    live = max(1, live_answers)
    return max(
        messages * live / _KERNEL_BUDGET,
        size * live / _KERNEL_BYTES,
        cost * live / _KERNEL_CPU,
    )
