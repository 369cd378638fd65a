"""What a view shows after patches: the Python twin of widget.js's `applyOps`.

Both suites check their version against the same cases (tests/patch_cases.json), so
the kernel-side tests that rebuild a view from the messages test what a browser does.
"""

from __future__ import annotations

from typing import Any

from streamchat._messages import FRAME_MS, decode_patch
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


def decode_frames(message: list[Any]) -> dict[str, Any]:
    """A frames message from its wire form (what widget.js's `decodeFrames` does):
    {"type": "frames", "turn", "part": "body", "frames": [(delay ms, [Patch...])...],
    "stop"}."""
    turn, kind = message[:2]
    if kind in ("s", "t"):
        retime = message[2:] if kind == "t" else None
        return {
            "type": "frames",
            "turn": turn,
            "part": "body",
            "frames": [],
            "stop": kind == "s",
            "retime": retime,
        }
    keep = message[2]
    frames: list[tuple[float, list[Patch]]] = []
    delay: float | None = None
    for item in message[3:]:
        if isinstance(item, int | float):
            delay = item
            continue
        if delay is None:
            delay = frames[-1][0] + FRAME_MS
        if isinstance(item, str):
            ops = [Patch("extend", html=item, drop=0, keep=keep)]
        elif isinstance(item[0], int):
            drop, keep, html = item if len(item) == 3 else (0, *item)
            ops = [Patch("extend", html=html, drop=drop, keep=keep)]
        else:
            ops = decode_patch([turn, "b", *item])["ops"]
        keep = next((op.keep for op in reversed(ops) if op.op == "extend"), keep)
        frames.append((delay, ops))
        delay = None
    return {
        "type": "frames",
        "turn": turn,
        "part": "body",
        "frames": frames,
        "stop": False,
        "retime": None,
    }


def decode(content: Any) -> Any:
    """Any custom message as sent: patches and frames decoded from their wire forms."""
    if not isinstance(content, list):
        return content
    return decode_frames(content) if content[1] in ("f", "s", "t") else decode_patch(content)
