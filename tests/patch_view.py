"""What a view shows after patches: the tests' one Python applier, twin of widget.js's `applyOps`.

Both appliers must pass the same cases (tests/patch_cases.json: test_patch_cases.py here,
tests/js/*.test.mjs there), so the kernel-side tests that rebuild a view from the
messages test what a browser does. Counts are UTF-16 code units, as JavaScript's
String.length counts them.
"""

from __future__ import annotations

from streamchat._messages import OPS
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
