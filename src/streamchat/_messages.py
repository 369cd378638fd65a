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
    `tail`, `extend` it (drop `drop` UTF-16 code units from its end, add `html`), or
    `reset` the whole part. Their meaning, shared by both suites: tests/patch_cases.json."""

    op: Literal["append", "tail", "extend", "reset"]
    html: str
    drop: int


class PatchMessage(TypedDict):
    type: Literal["patch"]
    turn: int
    part: Part
    ops: list[PatchOp]


class ToolsMessage(TypedDict):
    type: Literal["tools"]
    turn: int
    tool_calls: list[dict[str, str]]


class SnapshotMessage(TypedDict):
    """The whole live answer; `*_tail` says which end of the HTML the next patch replaces."""

    type: Literal["snapshot"]
    turn: int
    body: str
    body_tail: str
    reasoning: str
    reasoning_tail: str
    tool_calls: list[dict[str, str]]


def patch(turn: int, part: Part, ops: list[Any]) -> PatchMessage:
    return PatchMessage(type="patch", turn=turn, part=part, ops=ops)


def tools(turn: int, calls: list[dict[str, str]]) -> ToolsMessage:
    return ToolsMessage(type="tools", turn=turn, tool_calls=calls)


def snapshot(
    turn: int, shown: dict[str, tuple[str, str]], calls: list[dict[str, str]]
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
