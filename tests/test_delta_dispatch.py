"""Deltas are handled by one dispatch (`deltas.Handlers`), the same in every consumer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streamchat._terminal import Stats
from streamchat.deltas import (
    Done,
    Handlers,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)

EVERY_KIND = [
    TextDelta("a"),
    ReasoningDelta("r"),
    ToolCallDelta(0, "c1", "look"),
    Usage(1, 2),
    Done("stop"),
    StreamError("network", "cut"),
]


def test_each_kind_reaches_its_own_callback_and_tokens_are_told_apart() -> None:
    seen: list[tuple[str, object]] = []

    def record(name: str):
        return lambda delta: seen.append((name, delta))

    names = ["text", "reasoning", "tool_call", "usage", "done", "error", "token"]
    handle = Handlers(**{name: record(name) for name in names})
    for delta in EVERY_KIND:
        handle(delta)
    assert [(name, type(delta).__name__) for name, delta in seen] == [
        ("token", "TextDelta"),
        ("text", "TextDelta"),
        ("token", "ReasoningDelta"),
        ("reasoning", "ReasoningDelta"),
        ("token", "ToolCallDelta"),
        ("tool_call", "ToolCallDelta"),
        ("usage", "Usage"),
        ("done", "Done"),
        ("error", "StreamError"),
    ]


def test_a_kind_without_a_callback_is_passed_over() -> None:
    texts: list[str] = []
    handle = Handlers(text=lambda delta: texts.append(delta.text))
    for delta in EVERY_KIND:
        handle(delta)
    assert texts == ["a"]


def test_a_subclass_of_a_delta_type_is_dispatched_as_its_kind() -> None:
    class Loud(TextDelta):
        __slots__ = ()

    texts: list[str] = []
    Handlers(text=lambda delta: texts.append(delta.text))(Loud("hey"))
    assert texts == ["hey"]


def test_something_else_is_an_error() -> None:
    with pytest.raises(TypeError, match="not a delta: str"):
        Handlers()("not a delta")  # type: ignore[arg-type]


def test_the_terminal_counts_the_first_token_as_the_widget_does() -> None:
    """A tool call first is the first token (it was not, in the terminal only)."""
    stats = Stats(start=10.0)
    stats.observe(ToolCallDelta(0, "c1", "lookup"), 10.25)
    stats.observe(TextDelta("done"), 11.0)
    assert stats.first_token == 10.25 and stats.chars == 4


CONSUMERS = ["widget.py", "cli.py", "_terminal.py"]


@pytest.mark.parametrize("module", CONSUMERS)
def test_consumers_do_not_tell_delta_kinds_apart_by_isinstance(module: str) -> None:
    """The delta kinds are told apart in `deltas.Handlers` only (a result's check for
    `StreamError`, the stream's end, is not a dispatch)."""
    source = (Path(__file__).parents[1] / "src" / "streamchat" / module).read_text()
    kinds = {"TextDelta", "ReasoningDelta", "ToolCallDelta", "Usage", "Done"}
    chains = [
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "isinstance"
        and kinds & {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
    ]
    assert chains == []
