"""The patch arithmetic: the ops that turn what a view shows into the new HTML.

The wire contract (tests/patch_cases.json, static/widget.js): every size counts UTF-16
code units, as JavaScript's String.length does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Patch", "committed", "live_patch", "spliced", "utf16_length"]


@dataclass(frozen=True, slots=True)
class Patch:
    """A change to the rendered HTML.

    append: add `html` after the frozen part; it never changes again.
    tail: replace the live (unfinished) last part with `html`.
    extend: in the live part, replace the `drop` characters that come before its last
        `keep` characters with `html` (both counted in UTF-16 code units, as JavaScript
        counts string length); an update then costs about the size of the new text
        instead of the whole open block (`keep` spares the closing tags).
    commit: the live part's first `size` UTF-16 code units join the frozen part; a block
        that finished as it was shown is not sent again.
    reset: replace everything (frozen and tail) with `html`; the tail becomes empty.
    """

    op: Literal["append", "tail", "extend", "commit", "reset"]
    html: str = ""
    drop: int = 0
    keep: int = 0
    size: int = 0


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (slice comparisons run at memcmp speed)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix, at most `limit`."""
    n = min(len(a), len(b), limit)
    if a[len(a) - n :] == b[len(b) - n :]:
        return n
    low, high = 0, n
    while high - low > 1:
        middle = (low + high) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle
    return low


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript counts it: the unit of every size a
    patch or message gives the views."""
    if text.isascii():  # (known without a scan: CPython records it)
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def committed(live: str, size: int) -> str:
    """The first `size` UTF-16 code units of the live part: what a "commit" freezes."""
    if utf16_length(live) == len(live):  # no character outside the BMP: units are characters
        return live[:size]
    return live.encode("utf-16-le")[: 2 * size].decode("utf-16-le")


def spliced(live: str, patch: Patch) -> str:
    """The live part after an "extend" patch (what the front end computes)."""
    units = live.encode("utf-16-le")
    cut = len(units) - 2 * patch.keep
    head = units[: max(0, cut - 2 * patch.drop)].decode("utf-16-le")
    return head + patch.html + units[cut:].decode("utf-16-le")


def live_patch(old: str, new: str, *, whole: bool = True) -> Patch | None:
    """The smallest patch that turns the live part `old` into `new` (None: no change).
    When not `whole`, `old` and `new` are the ends of the live part after a start that
    stays: never a "tail"."""
    if old == new:
        return None
    start = _common_prefix(old, new)
    if start == 0 and whole:
        return Patch("tail", new)
    end = _common_suffix(old, new, min(len(old), len(new)) - start)
    return Patch(
        "extend",
        new[start : len(new) - end],
        utf16_length(old[start : len(old) - end]),
        utf16_length(old[len(old) - end :]),
    )
