"""What a view shows after patches: the tests' one Python applier, twin of widget.js's `applyOps`.

Both appliers must pass the same cases (tests/patch_cases.json: test_patch_cases.py here,
tests/js/*.test.mjs there), so the kernel-side tests that rebuild a view from the
messages test what a browser does. Counts are UTF-16 code units, as JavaScript's
String.length counts them.

The contract both keep: the HTML after every patch is what this applier makes; in the
browser, the DOM after every patch, with the view's own nodes left out (cursor, code bars)
and its own wrappers of finished blocks unwrapped, equals that HTML parsed at once.
"""

from __future__ import annotations

from typing import Any

from streamchat._messages import FRAME_KINDS, FRAME_MS, OPS, decode_patch
from streamchat.render import Patch


def _units(text: str) -> bytes:
    return text.encode("utf-16-le")


def _text(units: bytes) -> str:
    return units.decode("utf-16-le")


def _apply(frozen: str, tail: str, patch: Patch) -> tuple[str, str]:
    if patch.op == "append":
        return frozen + patch.html, tail
    if patch.op == "tail":
        return frozen, patch.html
    if patch.op == "extend":  # replace `drop` units before the last `keep` ones
        units = _units(tail)
        cut = max(0, len(units) - 2 * patch.keep)
        head = units[: max(0, cut - 2 * patch.drop)]
        return frozen, _text(head) + patch.html + _text(units[cut:])
    if patch.op == "commit":  # the first `size` units join the frozen part
        units = _units(tail)
        return frozen + _text(units[: 2 * patch.size]), _text(units[2 * patch.size :])
    if patch.op == "reset":
        return patch.html, ""
    raise ValueError(f"unknown patch op: {patch.op}")


def applied(shown: tuple[str, str], patches: list[Patch]) -> tuple[str, str]:
    """(frozen, tail) HTML after `patches`, applied in order to `shown`."""
    frozen, tail = shown
    for patch in patches:
        frozen, tail = _apply(frozen, tail, patch)
    return frozen, tail


def checked(shown: tuple[str, str], patch: Patch) -> tuple[str, str]:
    """`applied` for one patch a renderer made, which must also be one worth sending:
    a known op that changes what is shown and counts within the live part."""
    assert patch.op in OPS, f"an op the protocol does not declare: {patch.op}"
    live = len(_units(shown[1])) // 2
    if patch.op == "extend":
        assert 0 <= patch.drop + patch.keep <= live, "an extend past the live part's start"
    if patch.op == "commit":
        assert 0 < patch.size <= live, "a commit of more than is live"
    after = applied(shown, [patch])
    if patch.op in ("tail", "extend"):
        assert after != shown, f"a {patch.op} patch that changes nothing"
    return after


def decode_frames(message: list[Any]) -> dict[str, Any]:
    """A frames message from its wire form (what widget.js's `decodeFrames` does):
    {"type": "frames", "turn", "part": "body", "frames": [(delay ms, [Patch...])...],
    "stop"}."""
    turn, kind = message[:2]
    if kind in (FRAME_KINDS["stop"], FRAME_KINDS["retime"]):
        retime = message[2:] if kind == FRAME_KINDS["retime"] else None
        return {
            "type": "frames",
            "turn": turn,
            "part": "body",
            "frames": [],
            "stop": kind == FRAME_KINDS["stop"],
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
    frames = content[1] in FRAME_KINDS.values()
    return decode_frames(content) if frames else decode_patch(content)
