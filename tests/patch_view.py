"""What a view shows after patches: the Python twin of widget.js's `applyOps`.

Both suites check their version against the same cases (tests/patch_cases.json), so
the kernel-side tests that rebuild a view from the messages test what a browser does.
"""

from __future__ import annotations

from streamchat.render import Patch, committed, spliced


def applied(shown: tuple[str, str], patches: list[Patch]) -> tuple[str, str]:
    """(frozen, tail) HTML after `patches`, applied in order to `shown`."""
    frozen, tail = shown
    for patch in patches:
        if patch.op == "append":
            frozen += patch.html
        elif patch.op == "tail":
            tail = patch.html
        elif patch.op == "extend":
            tail = spliced(tail, patch)
        elif patch.op == "commit":
            head = committed(tail, patch.size)
            frozen, tail = frozen + head, tail[len(head) :]
        else:
            frozen, tail = patch.html, ""
    return frozen, tail
