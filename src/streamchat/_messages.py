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
    ones with `html`, so the closing tags are not sent again), `commit` the first
    `size` UTF-16 code units of the live part to the frozen blocks (a block that
    finished as it was shown is not sent again), or `reset` the whole part. Their
    meaning, shared by both suites: tests/patch_cases.json."""

    op: Literal["append", "tail", "extend", "commit", "reset"]
    html: str
    drop: int
    keep: int
    size: int


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


# A patch travels as one flat JSON array, not an object: at 30-40 messages a second
# key names and nesting would cost more than the new text itself. [turn, part, op...]:
# part is "b" (body) or "r" (reasoning), and the ops follow one another, each a code
# and its arguments: "a", html (append) | "t", html (tail) | "e", drop, keep, html
# (extend) | "c", size (commit) | "r", html (reset). The other messages are objects.
_PARTS = {"body": "b", "reasoning": "r"}
_ARGUMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "append": ("a", ("html",)),
    "tail": ("t", ("html",)),
    "extend": ("e", ("drop", "keep", "html")),
    "commit": ("c", ("size",)),
    "reset": ("r", ("html",)),
}
_OPS = {code: (name, fields) for name, (code, fields) in _ARGUMENTS.items()}


def patch(turn: int, part: Part, ops: list[PatchOp]) -> list[Any]:
    """The wire form of a patch message (see `decode_patch`)."""
    encoded: list[Any] = [turn, _PARTS[part]]
    for op in ops:
        code, fields = _ARGUMENTS[op["op"]]
        encoded.append(code)
        encoded += [op[field] for field in fields]  # type: ignore[literal-required]
    return encoded


def decode_patch(message: list[Any]) -> PatchMessage:
    """A patch message from its wire form (what widget.js's `decodePatch` does)."""
    parts = {code: name for name, code in _PARTS.items()}
    ops: list[PatchOp] = []
    index = 2
    while index < len(message):
        name, fields = _OPS[message[index]]
        values = message[index + 1 : index + 1 + len(fields)]
        ops.append(PatchOp(op=name, **dict(zip(fields, values, strict=True))))  # type: ignore[misc, typeddict-item]
        index += 1 + len(fields)
    return PatchMessage(type="patch", turn=message[0], part=parts[message[1]], ops=ops)


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
