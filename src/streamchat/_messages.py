"""The widget's protocol, declared once: what the kernel and the browser say to each other.

Everything the two sides must agree on is declared here and nowhere else: the custom
messages each way and their fields, the patch ops and their compact wire form, the status
words, the turn dicts of the synced `turns` trait, the `finished` trait's entries, the
stats keys and the tool-call dict. The synced traits carry the conversation's structure
(turns, speed, step...); the custom messages carry everything else. Turns are addressed
by their id (`turns[i]["id"]`), never by position, so a message read late (the kernel was
busy) cannot land on another turn.

`static/widget.js` holds a generated copy of these declarations (constants and JSDoc
typedefs, between its "protocol" markers): `python tests/js/make_protocol.py` (or `make
protocol`) writes it, and tests/test_protocol.py fails while the two differ.

To add a message: declare its TypedDict below, with `type: Literal["<kind>"]`, its fields
and a docstring that says why it exists; add it to the `KernelMessage` (kernel -> browser)
or `BrowserMessage` (browser -> kernel) union; regenerate widget.js. A browser message is
then parsed by `parse_browser_message` with no more code: its fields are checked against
their declared types. Messages travel as JSON objects; only patches, at 30-36 a second,
travel as flat arrays (`patch`, `OPS`), and widget.js takes any array for a patch: a new
compact message needs a way to tell it apart first.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypedDict, Union

from .render import Patch, utf16_length

__all__ = [
    "FRAME_KINDS",
    "FRAME_MS",
    "LIVE_STATUSES",
    "OPS",
    "PARTS",
    "AnswerTurn",
    "BrowserMessage",
    "ChatStatus",
    "EndedMessage",
    "FinishedAnswer",
    "FinishedMessage",
    "Frame",
    "FramesMessage",
    "HelloMessage",
    "InstantMessage",
    "KernelMessage",
    "LanesMessage",
    "OpWire",
    "Part",
    "PatchMessage",
    "RaceLane",
    "RacePace",
    "RaceState",
    "ResendMessage",
    "RetryMessage",
    "Role",
    "SendMessage",
    "SnapshotMessage",
    "StageMessage",
    "Stats",
    "StopMessage",
    "SyncedAnswerTurn",
    "SyncedState",
    "SyncedTurn",
    "ToolCall",
    "ToolsMessage",
    "TurnEnd",
    "TurnStatus",
    "UserTurn",
    "browser_kinds",
    "decode_patch",
    "ended",
    "finished",
    "frames",
    "kernel_kinds",
    "kind_of",
    "parse_browser_message",
    "patch",
    "snapshot",
    "stage",
    "tools",
]

# -- words ---------------------------------------------------------------------------

TurnStatus = Literal["streaming", "done", "error", "stopped"]
"""An answer turn's status: typed until it ends, then how it ended."""

ChatStatus = Literal["idle", "waiting", TurnStatus]
"""The chat's `status` trait: "idle" before the first answer, "waiting" from a prompt to
the answer's first token, then the live answer's status (`TurnStatus`)."""

LIVE_STATUSES: frozenset[ChatStatus] = frozenset({"waiting", "streaming"})
"""The chat statuses while an answer is live: Stop works, Retry and `finished` wait."""

Role = Literal["user", "assistant"]
"""Who a turn is from."""

Part = Literal["body", "reasoning"]
"""The two HTML areas of an answer, each patched on its own."""


# -- the synced state: turns and finished answers ------------------------------------


class ToolCall(TypedDict):
    """A tool call so far: `arguments` is the JSON text as it arrived (maybe unfinished),
    `after` the characters of answer text received before the call began (where it
    shows: above the text when 0)."""

    name: str
    arguments: str
    after: int


class Stats(TypedDict, total=False):
    """An answer's figures, each present only once measured (or reported): `chars` of
    answer text received, `ttft` (s to the first token), the network's pace
    `chars_per_second` and the typewriter's `typed_per_second`, `duration` (s),
    `reasoning_seconds` (how long the model thought), the provider's token counts, and
    its `finish_reason`."""

    chars: int
    ttft: float
    chars_per_second: float
    typed_per_second: float
    duration: float
    reasoning_seconds: float
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    finish_reason: str


class TurnEnd(TypedDict):
    """What an answer turn's end changes: its status, the error (for "error") or note
    (for "stopped", when not stopped by Stop) it shows, its figures and tool calls.
    The `ended` message carries these; the views write them into the turn in place."""

    status: TurnStatus
    error: str | None
    note: str | None
    stats: Stats
    tool_calls: list[ToolCall]


class UserTurn(TypedDict):
    """A question, as the person typed it (shown as text, never as HTML)."""

    id: int
    role: Literal["user"]
    text: str


class SyncedAnswerTurn(TurnEnd):
    """An answer turn as the `turns` trait syncs it: without its HTML, which lives in
    `finished` (re-sending it with every new turn would grow with the conversation)."""

    id: int
    role: Literal["assistant"]


class FinishedAnswer(TypedDict):
    """A finished answer's HTML (body and reasoning) and its Markdown `source` (what its
    Copy button copies): the `finished` trait's entry under the turn's id (as a string,
    a JSON key)."""

    html: str
    reasoning_html: str
    source: str


class AnswerTurn(SyncedAnswerTurn, FinishedAnswer):
    """An answer turn as the kernel keeps it: synced fields and finished HTML together."""


SyncedTurn = UserTurn | SyncedAnswerTurn
"""A turn as the `turns` trait syncs it."""


class SyncedState(TypedDict):
    """The chat's synced traits (ipywidgets adds its own): the conversation's structure
    and the pace controls. They change at turn boundaries, a slider move or a prompt
    list's change; the answers themselves travel as messages."""

    status: ChatStatus
    speed: float
    step: int
    prompts: list[str]
    disclaimer: str
    turns: list[SyncedTurn]
    finished: dict[str, FinishedAnswer]


RacePace = Literal["true", "equal"]
"""A race's pace: "true" shows each lane's text as it arrives (compare latency), "equal"
types every lane at the Speed slider's pace (compare content)."""


class RaceLane(TypedDict):
    """One lane of a race as the `lanes` trait syncs it: a chat of its own (its `status`
    and `turns`, as a chat's traits), with the `label` and `model` it is shown under. Its
    answers' HTML is in the race's `finished`, by turn id (ids are unique in the kernel,
    so every message about a turn reaches the one lane that holds it)."""

    label: str
    model: str
    status: ChatStatus
    turns: list[SyncedTurn]


class RaceState(TypedDict):
    """A race's synced traits: one prompt box for every lane, one pace for all; `kind`
    tells widget.js to draw a race, not a chat. A browser message about a turn goes to
    the lane that holds it; "send" goes to every lane, "stop" without a turn stops all."""

    kind: Literal["race"]
    status: ChatStatus
    pace: RacePace
    speed: float
    step: int
    disclaimer: str
    lanes: list[RaceLane]
    finished: dict[str, FinishedAnswer]


FINISHED_FIELDS: tuple[str, ...] = tuple(FinishedAnswer.__annotations__)
"""The fields of an answer turn that travel in `finished`, not in `turns`."""


# -- browser -> kernel ---------------------------------------------------------------


class SendMessage(TypedDict):
    """Ask a prompt (from the prompt box or a preset button)."""

    type: Literal["send"]
    prompt: str


class StopMessage(TypedDict):
    """Stop the answer `turn` (the one the person saw typing); null (None): whichever is live."""

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


class InstantMessage(TypedDict):
    """Show the rest of the answer `turn` at once (the Instant button, key I on stage): its
    typewriter drops to speed 0 and its pauses; null (None): whichever is live."""

    type: Literal["instant"]
    turn: int | None


BrowserMessage = (
    SendMessage | StopMessage | RetryMessage | HelloMessage | ResendMessage | InstantMessage
)
"""Every message a view sends: the registry `parse_browser_message` reads."""


# -- kernel -> browser ---------------------------------------------------------------


class PatchMessage(TypedDict):
    """Changes to a part's HTML (`render.Patch`: append, tail, extend, commit, reset; their
    meaning, shared by both suites: tests/patch_cases.json), as `decode_patch` reads them;
    they travel in the compact form `patch` makes (`OPS`)."""

    type: Literal["patch"]
    turn: int
    part: Part
    ops: list[Patch]


class Frame(TypedDict):
    """One frame of a typed answer's body: its patch ops, played `delay` ms after the
    message that carries it arrives."""

    delay: float
    ops: list[Patch]


class FramesMessage(TypedDict):
    """The body's next frames while the answer types at a pace, each a delay (ms after
    the message arrives) and its patch ops: a view plays each on the first animation
    frame at or after its time, never before the frame before it. The kernel sends them
    `_frames.LEAD` ahead at most, a few per message. `stop`: the answer was stopped;
    every view drops the frames it holds and keeps what it shows (no frames come with
    it). `retime`: the speed or step changed; the frames a view holds play at these
    delays (ms after this message arrives) instead, the last of them at the last delay
    (a view that played some meanwhile matches them from the end); a list of delays in
    place of one: a smaller step or a slower speed, the view splits that frame into as
    many pieces, each cut where the text shown stays well-formed. Only the body is typed
    at a pace: reasoning travels as patches.

    Wire form, [turn, "f", keep, item...], each item one of:
    a number, the delay of the next frame (without one a frame comes `FRAME_MS` after
    the frame before it: frames are a `_frames.PERIOD` apart while text types); a
    string, a frame that is one "extend" dropping nothing and keeping `keep` (what a
    frame of typed text usually is: its framing would cost more than its text); an
    array starting with a number, a frame that is one "extend": [keep, html] (dropping
    nothing) or [drop, keep, html]; any other array, a frame's ops as in a patch. An
    extend sets `keep` for the frames after it. [turn, "s"]: a stop. [turn, "t",
    delay or [delay...]...]: a retime."""

    type: Literal["frames"]
    turn: int
    part: Literal["body"]
    frames: list[Frame]
    stop: bool
    retime: list[int | list[int]] | None


class ToolsMessage(TypedDict):
    """The live answer's tool calls so far."""

    type: Literal["tools"]
    turn: int
    tool_calls: list[ToolCall]


class EndedMessage(TypedDict):
    """An answer ended. Every view that applied its patches already holds its final HTML,
    so the HTML is not sent again: the view checks it against the sizes (UTF-16 code
    units) and keeps it, with the Markdown `source`, in the model's `finished` under the
    turn's id (saved with the notebook's widget state). `fields` are the turn's new values
    in `turns`: the kernel changes its `turns` in place at a turn end, without re-sending
    the list, and each view does the same with its model's."""

    type: Literal["ended"]
    turn: int
    source: str
    html_size: int
    reasoning_size: int
    fields: TurnEnd


class FinishedMessage(TypedDict):
    """A finished answer's HTML as the kernel keeps it, for a view that asked ("resend");
    every view that holds no checked copy keeps it in the model's `finished`."""

    type: Literal["finished"]
    turn: int
    html: str
    reasoning_html: str
    source: str


class SnapshotMessage(TypedDict):
    """The whole live answer, for a view that said "hello"; `*_tail` says which end of
    the HTML the next patch replaces."""

    type: Literal["snapshot"]
    turn: int
    body: str
    body_tail: str
    reasoning: str
    reasoning_tail: str
    tool_calls: list[ToolCall]


class LanesMessage(TypedDict):
    """A race's lanes' messages of one loop tick, in the order sent, in one comm message:
    every lane's patch of a frame reaches the page together (the lanes change on the
    same animation frame), and four lanes cost one IOPub message a frame, not four.
    Each is a message above (a patch in its compact form); its turn names its lane."""

    type: Literal["lanes"]
    messages: list[Any]


class StageMessage(TypedDict):
    """`chat.stage()`: every view goes on stage (`on`), or leaves it. A view without a
    person's click cannot enter the browser's fullscreen, so it fills the window."""

    type: Literal["stage"]
    on: bool


KernelMessage = (
    PatchMessage
    | FramesMessage
    | ToolsMessage
    | EndedMessage
    | FinishedMessage
    | SnapshotMessage
    | StageMessage
    | LanesMessage
)
"""Every message the kernel sends (a patch in its compact wire form)."""


def kind_of(message: type) -> str:
    """A message class's `type` word."""
    (kind,) = typing.get_args(typing.get_type_hints(message)["type"])
    return str(kind)


def kernel_kinds() -> dict[str, type]:
    """The kernel's messages by kind."""
    return {kind_of(cls): cls for cls in typing.get_args(KernelMessage)}


def browser_kinds() -> dict[str, type]:
    """The browser's messages by kind."""
    return {kind_of(cls): cls for cls in typing.get_args(BrowserMessage)}


# -- the compact patch -----------------------------------------------------------------


class OpWire(NamedTuple):
    """An op on the wire: its one-letter code, then its arguments in this order."""

    code: str
    fields: tuple[str, ...]


# A patch travels as one flat JSON array, not an object: at 30-36 messages a second key
# names and nesting would cost more than the new text itself. [turn, part code, op...],
# each op its code and its arguments: "a", html (append) | "t", html (tail) | "e", drop,
# keep, html (extend) | "c", size (commit) | "r", html (reset). Other messages are objects.
OPS: Mapping[str, OpWire] = MappingProxyType(
    {
        "append": OpWire("a", ("html",)),
        "tail": OpWire("t", ("html",)),
        "extend": OpWire("e", ("drop", "keep", "html")),
        "commit": OpWire("c", ("size",)),
        "reset": OpWire("r", ("html",)),
    }
)
"""Every patch op (`render.Patch.op`) by name, with its wire code and arguments."""

PARTS: Mapping[Part, str] = MappingProxyType({"body": "b", "reasoning": "r"})
"""Each part's code on the wire."""

FRAME_MS = 1000 / 36
"""Milliseconds between two frames of a frames message that gives no delay for the second
(the kernel's frames are `_frames.PERIOD` apart while text types)."""

FRAME_KINDS: Mapping[str, str] = MappingProxyType({"frames": "f", "stop": "s", "retime": "t"})
"""A frames message's three forms by their code in its second place, where a patch has its
part code: the next frames, a stop, a retime (`FramesMessage`)."""

_BY_CODE = {wire.code: (name, wire.fields) for name, wire in OPS.items()}
_PART_BY_CODE = {code: part for part, code in PARTS.items()}


def patch(turn: int, part: Part, ops: list[Patch]) -> list[Any]:
    """The wire form of a patch message (see `decode_patch`)."""
    encoded: list[Any] = [turn, PARTS[part]]
    for op in ops:
        code, fields = OPS[op.op]
        encoded.append(code)
        encoded += [getattr(op, field) for field in fields]
    return encoded


def frames(
    turn: int,
    frames: list[tuple[int, list[Patch]]],
    *,
    stop: bool = False,
    retime: list[int | list[int]] | None = None,
) -> list[Any]:
    """The wire form of a frames message (`FramesMessage`)."""
    if stop:
        return [turn, FRAME_KINDS["stop"]]
    if retime is not None:
        return [turn, FRAME_KINDS["retime"], *retime]
    plain = [ops[0].keep for _, ops in frames if len(ops) == 1 and _plain(ops[0])]
    keep = plain[0] if plain else 0
    encoded: list[Any] = [turn, FRAME_KINDS["frames"], keep]
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
    ops: list[Patch] = []
    index = 2
    while index < len(message):
        name, fields = _BY_CODE[message[index]]
        values = message[index + 1 : index + 1 + len(fields)]
        ops.append(Patch(name, **dict(zip(fields, values, strict=True))))  # type: ignore[arg-type]
        index += 1 + len(fields)
    part = _PART_BY_CODE[message[1]]
    return PatchMessage(type="patch", turn=message[0], part=part, ops=ops)


# -- reading the browser's messages ----------------------------------------------------


def _fits(value: object, hint: object) -> bool:
    """Whether a JSON value is of a browser message field's declared type. Text must
    hold something: every text a view sends is a person's (a prompt)."""
    if hint is str:
        return isinstance(value, str) and bool(value.strip())
    if hint is int:  # a JSON number that is a whole number; true and false are not
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is Literal:
        return value in typing.get_args(hint)
    if typing.get_origin(hint) in (Union, types.UnionType):
        return any(_fits(value, each) for each in typing.get_args(hint))
    raise TypeError(f"a browser message field of type {hint!r} has no check")


def _optional(hint: object) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


_BROWSER_FIELDS = {kind: typing.get_type_hints(cls) for kind, cls in browser_kinds().items()}


def parse_browser_message(content: object) -> BrowserMessage | None:
    """The message, checked against its declaration; None for anything else (a browser
    is not trusted input). A field that may be None is None when missing or wrong (a
    Stop that names no turn stops whichever is live); other fields must be right. Keys
    not declared are dropped."""
    if not isinstance(content, dict):
        return None
    fields = _BROWSER_FIELDS.get(content.get("type"))  # type: ignore[arg-type]
    if fields is None:
        return None
    message: dict[str, Any] = {}
    for name, hint in fields.items():
        value = content.get(name)
        if _fits(value, hint):
            message[name] = value
        elif _optional(hint):
            message[name] = None
        else:
            return None
    return message  # type: ignore[return-value]


# -- making the kernel's messages ------------------------------------------------------


def ended(turn: int, source: str, html: str, reasoning_html: str, fields: TurnEnd) -> EndedMessage:
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


def tools(turn: int, calls: list[ToolCall]) -> ToolsMessage:
    return ToolsMessage(type="tools", turn=turn, tool_calls=calls)


def snapshot(
    turn: int, shown: dict[str, tuple[str, str]], calls: list[ToolCall]
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


def stage(on: bool) -> StageMessage:
    return StageMessage(type="stage", on=on)
