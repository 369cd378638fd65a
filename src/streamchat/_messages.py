"""The widget's messages: what the kernel and the browser say to each other, declared once.

The synced traits carry the conversation's structure (turns, speed, step...); these
custom messages carry everything else. `static/widget.js` mirrors them as JSDoc
typedefs. Turns are addressed by their id (`turns[i]["id"]`), never by position, so
a message read late (the kernel was busy) cannot land on another turn.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from .render import Patch, utf16_length

__all__ = [
    "FRAME_MS",
    "BrowserMessage",
    "EndedMessage",
    "FinishedMessage",
    "FramesMessage",
    "HelloMessage",
    "PatchMessage",
    "ResendMessage",
    "RetryMessage",
    "SendMessage",
    "SnapshotMessage",
    "StopMessage",
    "ToolsMessage",
    "decode_patch",
    "ended",
    "finished",
    "frames",
    "parse_browser_message",
    "patch",
    "snapshot",
    "tools",
]

Part = Literal["body", "reasoning"]

# Milliseconds between two frames of a frames message that gives no delay for the second.
FRAME_MS = 1000 / 36


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


class ResendMessage(TypedDict):
    """A view that could not check a finished answer's HTML (see `EndedMessage`), or
    holds none for it, asks for the kernel's (a `FinishedMessage`)."""

    type: Literal["resend"]
    turn: int


BrowserMessage = SendMessage | StopMessage | RetryMessage | HelloMessage | ResendMessage


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
    elif kind == "resend":
        turn = _turn_id(content.get("turn"))
        if turn is not None:
            return ResendMessage(type="resend", turn=turn)
    return None


# -- kernel -> browser ---------------------------------------------------------------


class PatchMessage(TypedDict):
    """Changes to a part's HTML (`render.Patch`: append, tail, extend, commit, reset; their
    meaning, shared by both suites: tests/patch_cases.json), as `decode_patch` reads them;
    they travel in the compact form `patch` makes."""

    type: Literal["patch"]
    turn: int
    part: Part
    ops: list[Patch]


class FramesMessage(TypedDict):
    """The body's next frames while the answer types at a pace, each a delay (ms after
    the message arrives) and its patch ops: a view plays each on the first animation
    frame at or after its time, never before the frame before it. The kernel sends them
    `_frames.LEAD` ahead at most, a few per message. `stop`: the answer was stopped;
    every view drops the frames it holds and keeps what it shows (no frames come with
    it). `retime`: the speed or step changed; the frames a view holds play at these
    delays (ms after this message arrives) instead, the last of them at the last delay
    (a view that played some meanwhile matches them from the end). Only the body is
    typed at a pace: reasoning travels as patches.

    Wire form, [turn, "f", keep, item...], each item one of:
    a number, the delay of the next frame (without one a frame comes `FRAME_MS` after
    the frame before it: frames are a `_frames.PERIOD` apart while text types); a
    string, a frame that is one "extend" dropping nothing and keeping `keep` (what a
    frame of typed text usually is: its framing would cost more than its text); an
    array starting with a number, a frame that is one "extend": [keep, html] (dropping
    nothing) or [drop, keep, html]; any other array, a frame's ops as in a patch. An
    extend sets `keep` for the frames after it. [turn, "s"]: a stop. [turn, "t",
    delay...]: a retime."""

    type: Literal["frames"]
    turn: int
    frames: list[tuple[int, list[Patch]]]
    stop: bool
    retime: list[int] | None


class ToolsMessage(TypedDict):
    """The tool calls so far: `name`, `arguments` (JSON text as it arrived) and `after`,
    the characters of answer text received before the call began (where it shows)."""

    type: Literal["tools"]
    turn: int
    tool_calls: list[dict[str, Any]]


class EndedMessage(TypedDict):
    """An answer ended. Every view that applied its patches already holds its final HTML,
    so the HTML is not sent again: the view checks it against the sizes (UTF-16 code
    units) and keeps it, with the Markdown `source`, in the model's `finished` under
    the turn's id (saved with the notebook's widget state). `fields` are the turn's
    new values in `turns` (status, error, note, stats, tool_calls): the kernel changes
    its `turns` in place at a turn end, without re-sending the list, and each view does
    the same with its model's."""

    type: Literal["ended"]
    turn: int
    source: str
    html_size: int
    reasoning_size: int
    fields: dict[str, Any]


class FinishedMessage(TypedDict):
    """A finished answer's HTML as the kernel keeps it, for a view that asked ("resend");
    every view that holds no checked copy keeps it in the model's `finished`."""

    type: Literal["finished"]
    turn: int
    html: str
    reasoning_html: str
    source: str


class SnapshotMessage(TypedDict):
    """The whole live answer; `*_tail` says which end of the HTML the next patch replaces."""

    type: Literal["snapshot"]
    turn: int
    body: str
    body_tail: str
    reasoning: str
    reasoning_tail: str
    tool_calls: list[dict[str, Any]]


# A patch travels as one flat JSON array, not an object: at 30-36 messages a second
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


def patch(turn: int, part: Part, ops: list[Patch]) -> list[Any]:
    """The wire form of a patch message (see `decode_patch`)."""
    encoded: list[Any] = [turn, _PARTS[part]]
    for op in ops:
        code, fields = _ARGUMENTS[op.op]
        encoded.append(code)
        encoded += [getattr(op, field) for field in fields]
    return encoded


def frames(
    turn: int,
    frames: list[tuple[int, list[Patch]]],
    *,
    stop: bool = False,
    retime: list[int] | None = None,
) -> list[Any]:
    """The wire form of a frames message (`FramesMessage`)."""
    if stop:
        return [turn, "s"]
    if retime is not None:
        return [turn, "t", *retime]
    plain = [ops[0].keep for _, ops in frames if len(ops) == 1 and _plain(ops[0])]
    keep = plain[0] if plain else 0
    encoded: list[Any] = [turn, "f", keep]
    implied: float | None = None  # the next frame's delay if none is given
    for delay, ops in frames:
        if implied is None or abs(delay - implied) > 1:
            encoded.append(delay)
            implied = delay
        if len(ops) == 1 and _plain(ops[0]) and ops[0].keep == keep:
            encoded.append(ops[0].html)
        elif len(ops) == 1 and ops[0].op == "extend":
            op = ops[0]
            encoded.append([op.keep, op.html] if op.drop == 0 else [op.drop, op.keep, op.html])
        else:
            encoded.append(patch(turn, "body", ops)[2:])
        keep = next((op.keep for op in reversed(ops) if op.op == "extend"), keep)
        implied += FRAME_MS
    return encoded


def _plain(op: Patch) -> bool:
    return op.op == "extend" and op.drop == 0


def decode_patch(message: list[Any]) -> PatchMessage:
    """A patch message from its wire form (what widget.js's `decodePatch` does)."""
    parts = {code: name for name, code in _PARTS.items()}
    ops: list[Patch] = []
    index = 2
    while index < len(message):
        name, fields = _OPS[message[index]]
        values = message[index + 1 : index + 1 + len(fields)]
        ops.append(Patch(name, **dict(zip(fields, values, strict=True))))
        index += 1 + len(fields)
    return PatchMessage(type="patch", turn=message[0], part=parts[message[1]], ops=ops)


def ended(
    turn: int, source: str, html: str, reasoning_html: str, fields: dict[str, Any]
) -> EndedMessage:
    return EndedMessage(
        type="ended",
        turn=turn,
        source=source,
        html_size=utf16_length(html),
        reasoning_size=utf16_length(reasoning_html),
        fields=fields,
    )


def finished(turn: int, html: str, reasoning_html: str, source: str) -> FinishedMessage:
    return FinishedMessage(
        type="finished", turn=turn, html=html, reasoning_html=reasoning_html, source=source
    )


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
