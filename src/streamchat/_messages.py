"""The widget's messages: what the kernel and the browser say to each other, declared once.

The synced traits carry the conversation's structure (turns, speed, step...); these
custom messages carry everything else. `static/widget.js` mirrors them as JSDoc
typedefs. Turns are addressed by their id (`turns[i]["id"]`), never by position, so
a message read late (the kernel was busy) cannot land on another turn.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "BrowserMessage",
    "HelloMessage",
    "PatchMessage",
    "PatchOp",
    "RetryMessage",
    "SendMessage",
    "SnapshotMessage",
    "StopMessage",
    "ToolsMessage",
    "decode_patch",
    "parse_browser_message",
    "patch",
    "snapshot",
    "tools",
]

Part = Literal["body", "reasoning"]


# -- browser -> kernel ---------------------------------------------------------------


class SendMessage(TypedDict):
    """Ask a prompt (from the prompt box or a preset button)."""

    type: Literal["send"]
    prompt: str


class StopMessage(TypedDict):
    """Stop the answer `turn` (the one the person saw typing); `None`: whichever is live."""

    type: Literal["stop"]
    turn: int | None


class RetryMessage(TypedDict):
    """Ask again for the stopped or failed answer `turn` (only the last answer)."""

    type: Literal["retry"]
    turn: int


class HelloMessage(TypedDict):
    """A view that joined while an answer was typed asks for a snapshot of it."""

    type: Literal["hello"]


BrowserMessage = SendMessage | StopMessage | RetryMessage | HelloMessage


def _turn_id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_browser_message(content: object) -> BrowserMessage | None:
    """The message, checked; None for anything else (a browser is not trusted input)."""
    if not isinstance(content, dict):
        return None
    kind = content.get("type")
    if kind == "send":
        prompt = content.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            return SendMessage(type="send", prompt=prompt)
    elif kind == "stop":
        return StopMessage(type="stop", turn=_turn_id(content.get("turn")))
    elif kind == "retry":
        turn = _turn_id(content.get("turn"))
        if turn is not None:
            return RetryMessage(type="retry", turn=turn)
    elif kind == "hello":
        return HelloMessage(type="hello")
    return None


# -- kernel -> browser ---------------------------------------------------------------


class PatchOp(TypedDict, total=False):
    """One change to a part's HTML: `append` to the frozen blocks, replace the live
    `tail`, `extend` it (replace the `drop` UTF-16 code units before its last `keep`
    ones with `html`, so the closing tags are not sent again), or `reset` the whole
    part. Their meaning, shared by both suites: tests/patch_cases.json."""

    op: Literal["append", "tail", "extend", "reset"]
    html: str
    drop: int
    keep: int


class PatchMessage(TypedDict):
    """A patch as `decode_patch` reads it; it travels in the compact form `patch` makes."""

    type: Literal["patch"]
    turn: int
    part: Part
    ops: list[PatchOp]


class ToolsMessage(TypedDict):
    """The tool calls so far: `name`, `arguments` (JSON text as it arrived) and `after`,
    the characters of answer text received before the call began (where it shows)."""

    type: Literal["tools"]
    turn: int
    tool_calls: list[dict[str, Any]]


class SnapshotMessage(TypedDict):
    """The whole live answer; `*_tail` says which end of the HTML the next patch replaces."""

    type: Literal["snapshot"]
    turn: int
    body: str
    body_tail: str
    reasoning: str
    reasoning_tail: str
    tool_calls: list[dict[str, Any]]


# A patch travels as a JSON array, not an object: at 30-40 messages a second a key
# name costs more than the new text itself. ["p", turn, part, op...], where part is
# "b" (body) or "r" (reasoning) and each op is ["a", html] (append), ["t", html]
# (tail), ["e", drop, keep, html] (extend) or ["r", html] (reset).
_PARTS = {"body": "b", "reasoning": "r"}
_OPS = {"append": "a", "tail": "t", "extend": "e", "reset": "r"}


def patch(turn: int, part: Part, ops: list[PatchOp]) -> list[Any]:
    """The wire form of a patch message (see `decode_patch`)."""
    encoded: list[Any] = ["p", turn, _PARTS[part]]
    for op in ops:
        if op["op"] == "extend":
            encoded.append(["e", op["drop"], op["keep"], op["html"]])
        else:
            encoded.append([_OPS[op["op"]], op["html"]])
    return encoded


def decode_patch(message: list[Any]) -> PatchMessage:
    """A patch message from its wire form (what widget.js's `decodePatch` does)."""
    parts = {code: name for name, code in _PARTS.items()}
    names = {code: name for name, code in _OPS.items()}
    ops: list[PatchOp] = []
    for op in message[3:]:
        if op[0] == "e":
            ops.append(PatchOp(op="extend", drop=op[1], keep=op[2], html=op[3]))
        else:
            ops.append(PatchOp(op=names[op[0]], html=op[1]))
    return PatchMessage(type="patch", turn=message[1], part=parts[message[2]], ops=ops)


def tools(turn: int, calls: list[dict[str, Any]]) -> ToolsMessage:
    return ToolsMessage(type="tools", turn=turn, tool_calls=calls)


def snapshot(
    turn: int, shown: dict[str, tuple[str, str]], calls: list[dict[str, Any]]
) -> SnapshotMessage:
    body, reasoning = shown["body"], shown["reasoning"]
    return SnapshotMessage(
        type="snapshot",
        turn=turn,
        body="".join(body),
        body_tail=body[1],
        reasoning="".join(reasoning),
        reasoning_tail=reasoning[1],
        tool_calls=calls,
    )
