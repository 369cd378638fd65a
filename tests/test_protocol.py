"""The protocol is declared once (streamchat/_messages.py): widget.js's copy, the words it
matches on, and what a real chat sends must all be that declaration."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ipywidgets import DOMWidget

from patch_view import applied
from streamchat import _messages
from streamchat.deltas import ReasoningDelta, TextDelta, ToolCallDelta, Usage
from streamchat.render import Patch
from streamchat.widget import StreamChat

from conftest import require

STATIC = Path(_messages.__file__).parent / "static"
# The generator, by its path: an installed package named "js" would shadow tests/js.
_spec = importlib.util.spec_from_file_location(
    "make_protocol", Path(__file__).parent / "js" / "make_protocol.py"
)
assert _spec is not None and _spec.loader is not None
make_protocol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_protocol)
CASES = json.loads((Path(__file__).parent / "patch_cases.json").read_text(encoding="utf-8"))[
    "cases"
]


def test_widget_js_holds_the_protocol_generated_from_python() -> None:
    source = make_protocol.WIDGET_JS.read_text(encoding="utf-8")
    assert make_protocol.current(source) == make_protocol.generate(), (
        "widget.js's protocol block differs from streamchat/_messages.py: "
        "run `python tests/js/make_protocol.py` (make protocol)"
    )


def words(alias: object) -> set[str]:
    return set(typing.get_args(alias))


# What node evaluates: widget.js's exported constants, and its decoder and applier run on
# every shared patch case, in one process for the whole test.
NODE_SCRIPT = """
import * as widget from "./widget.js";
const cases = JSON.parse(process.argv[1]);
const names = ["CHAT_STATUS", "TURN_STATUS", "ROLE", "PART", "LIVE_STATUSES", "OP", "OP_CODES",
  "PART_CODES", "KERNEL_MESSAGE", "BROWSER_MESSAGE"];
const constants = Object.fromEntries(names.map((name) => [name, widget[name]]));
const decoded = cases.map(({ wire }) => widget.decodePatch(wire));
const states = cases.map(({ start, ops }) => widget.applyOps(start, ops).state);
const { turn, changes } = JSON.parse(process.argv[2]);
const unseen = Object.entries(changes)
  .filter(([field, value]) =>
    widget.turnSignature(turn) === widget.turnSignature({ ...turn, [field]: value }))
  .map(([field]) => field);
console.log(JSON.stringify({ constants, decoded, states, unseen }));
"""

# An answer turn as a view holds it, and another value for each of its fields: a view
# redraws a turn when its signature changes, so each field must count in it.
TURN: dict[str, Any] = {
    "id": 4,
    "role": "assistant",
    "status": "done",
    "error": None,
    "note": None,
    "stats": {"chars": 2},
    "tool_calls": [],
    "html": "<p>a</p>",
    "reasoning_html": "",
    "source": "a",
}
CHANGES: dict[str, Any] = {
    "id": 5,
    "role": "user",
    "text": "a question",
    "status": "error",
    "error": "It failed.",
    "note": "Stopped: a new prompt was sent.",
    "stats": {"chars": 3},
    "tool_calls": [{"name": "lookup", "arguments": "{}", "after": 0}],
    "html": "<p>ab</p>",
    "reasoning_html": "<p>r</p>",
    "source": "ab",
}


@pytest.fixture(scope="module")
def javascript() -> dict[str, Any]:
    node = shutil.which("node")
    require(node is not None, "node runs widget.js")
    cases = [
        {
            "start": case["start"],
            "ops": case["ops"],
            "wire": _messages.patch(7, "reasoning", [Patch(**op) for op in case["ops"]]),
        }
        for case in CASES
    ]
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            NODE_SCRIPT,
            json.dumps(cases),
            json.dumps({"turn": TURN, "changes": CHANGES}),
        ],
        cwd=STATIC,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_javascript_sees_the_words_python_declares(javascript: dict[str, Any]) -> None:
    js = javascript["constants"]
    assert set(js["CHAT_STATUS"].values()) == words(_messages.ChatStatus)
    assert set(js["TURN_STATUS"].values()) == words(_messages.TurnStatus)
    assert set(js["ROLE"].values()) == words(_messages.Role)
    assert set(js["PART"].values()) == words(_messages.Part)
    assert set(js["LIVE_STATUSES"]) == set(_messages.LIVE_STATUSES)
    assert set(js["KERNEL_MESSAGE"].values()) == set(_messages.kernel_kinds())
    assert set(js["BROWSER_MESSAGE"].values()) == set(_messages.browser_kinds())
    assert set(js["OP"].values()) == set(_messages.OPS)
    assert js["OP_CODES"] == {
        wire.code: [name, list(wire.fields)] for name, wire in _messages.OPS.items()
    }
    assert js["PART_CODES"] == {code: part for part, code in _messages.PARTS.items()}


def test_javascript_decodes_and_applies_patches_as_python_does(
    javascript: dict[str, Any],
) -> None:
    for case, decoded, state in zip(
        CASES, javascript["decoded"], javascript["states"], strict=True
    ):
        ops = [Patch(**op) for op in case["ops"]]
        message = _messages.decode_patch(_messages.patch(7, "reasoning", ops))
        assert decoded == {
            "type": "patch",
            "turn": 7,
            "part": "reasoning",
            "ops": [
                {
                    "op": op.op,
                    **{field: getattr(op, field) for field in _messages.OPS[op.op].fields},
                }
                for op in message["ops"]
            ],
        }, case["name"]
        python = applied((case["start"]["frozen"], case["start"]["tail"]), ops)
        assert (state["frozen"], state["tail"]) == python, case["name"]


def test_a_view_redraws_a_turn_when_any_declared_field_changes(
    javascript: dict[str, Any],
) -> None:
    fields = keys(_messages.UserTurn) | keys(_messages.AnswerTurn)
    assert set(TURN) | {"text"} == fields and set(CHANGES) == fields
    # A finished answer's source changes only with its HTML, whose length stands for both.
    assert javascript["unseen"] == ["source"]


# The words a view matches on, each of which must come from the generated block.
PROTOCOL_WORDS = (
    words(_messages.ChatStatus)
    | words(_messages.Role)
    | words(_messages.Part)
    | set(_messages.OPS)
    | set(_messages.kernel_kinds())
    | set(_messages.browser_kinds())
)


def test_widget_js_spells_no_protocol_word_by_hand() -> None:
    source = make_protocol.WIDGET_JS.read_text(encoding="utf-8")
    code = source.replace(make_protocol.current(source), "")
    # A trait's name (`model.get("finished")`) is not a word of the protocol.
    quoted = re.compile(r"""(?<!get\()(["'`])(\w+)\1""")
    found = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(code.splitlines(), 1)
        if not line.lstrip().startswith(("//", "*", "/*"))
        for match in quoted.finditer(line)
        if match[2] in PROTOCOL_WORDS
    ]
    assert not found, "use the generated constants (CHAT_STATUS.DONE, OP.TAIL...):\n" + "\n".join(
        found
    )


def test_the_stylesheet_styles_only_declared_statuses() -> None:
    css = (STATIC / "widget.css").read_text(encoding="utf-8")
    styled = set(re.findall(r"""data-status=["']?(\w+)""", css))
    assert styled, "the stylesheet styles a stopped answer"
    assert styled <= words(_messages.ChatStatus)


def test_the_synced_traits_are_declared() -> None:
    ours = set(StreamChat.class_traits(sync=True)) - set(DOMWidget.class_traits(sync=True))
    assert ours == keys(_messages.SyncedState)


def test_the_ops_are_the_renderers() -> None:
    op = typing.get_type_hints(Patch)["op"]
    assert words(op) == set(_messages.OPS)
    assert {field for wire in _messages.OPS.values() for field in wire.fields} <= set(
        typing.get_type_hints(Patch)
    )


def keys(declared: type) -> set[str]:
    return set(typing.get_type_hints(declared))


def test_a_chat_sends_and_keeps_what_is_declared(chats: list[StreamChat]) -> None:
    def answer(messages: list[dict[str, str]]) -> Iterator[object]:
        yield ReasoningDelta("Think.")
        yield TextDelta("Looking it up.\n\n")
        yield ToolCallDelta(0, "c1", "lookup", '{"q": 1}')
        yield TextDelta("Found **it**.")
        yield Usage(input_tokens=3, output_tokens=5)

    chat = StreamChat(answer, speed=0)
    chats.append(chat)
    sent: list[Any] = []
    lock = threading.Lock()
    send = chat._send

    def capture(msg: dict[str, Any], buffers: Any = None) -> None:
        with lock:
            sent.append(json.loads(json.dumps(msg)))
        send(msg, buffers=buffers)

    chat._send = capture  # type: ignore[method-assign]
    chat.ask("what is it?")
    assert chat.wait(10)

    question, turn = chat.turns
    assert set(question) == keys(_messages.UserTurn)
    assert set(turn) == keys(_messages.AnswerTurn)
    assert turn["status"] in words(_messages.TurnStatus) and chat.status == turn["status"]
    assert set(turn["stats"]) <= keys(_messages.Stats)
    assert {"chars", "ttft", "input_tokens"} <= set(turn["stats"])
    (call,) = turn["tool_calls"]
    assert set(call) == keys(_messages.ToolCall)
    assert set(chat.finished[str(turn["id"])]) == keys(_messages.FinishedAnswer)

    custom = [msg["content"] for msg in sent if msg["method"] == "custom"]
    kinds = {"patch" if isinstance(content, list) else content["type"] for content in custom}
    assert kinds == {"patch", "tools", "ended"}
    declared = _messages.kernel_kinds()
    for content in custom:
        message = _messages.decode_patch(content) if isinstance(content, list) else content
        assert set(message) == keys(declared[message["type"]]), message["type"]
        if message["type"] == "ended":
            assert set(message["fields"]) == keys(_messages.TurnEnd)
        if message["type"] == "tools":
            assert all(set(call) == keys(_messages.ToolCall) for call in message["tool_calls"])
    states = [msg["state"] for msg in sent if msg["method"] == "update"]
    synced = [state["turns"] for state in states if "turns" in state]
    for user, assistant in synced:
        assert set(user) == keys(_messages.UserTurn)
        # A live turn has no note yet (widget.py sets it at the turn end).
        assert set(assistant) | {"note"} == keys(_messages.SyncedAnswerTurn)
