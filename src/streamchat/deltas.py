"""Typed deltas: what every provider's stream is reduced to.

A stream of deltas always ends with exactly one terminal delta, `Done` or
`StreamError`, so a consumer needs one loop and no exception handling to keep
the partial answer: everything before the terminal delta is already delivered.

A consumer handles them by one dispatch, `Handlers`: a callback per kind it cares
about, looked up by the delta's type, instead of an `isinstance` chain per consumer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Delta",
    "Done",
    "ErrorKind",
    "Handlers",
    "ReasoningDelta",
    "StreamError",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "merge_tool_calls",
]


# Half of a UTF-16 pair on its own: JSON may escape one ("\ud800"), `json.loads` gives it
# back, and no UTF-8 encoder takes it (the comm, the saved notebook, the terminal).
# https://www.rfc-editor.org/rfc/rfc8259#section-8.2
_SURROGATE = re.compile("[\ud800-\udfff]")
_has_surrogate = _SURROGATE.search


def _set_valid(delta: object, *fields: str) -> None:
    """Replace each lone surrogate in `delta`'s text `fields` by U+FFFD, as invalid UTF-8
    is decoded. Every delta that carries text passes here when it is made, whichever
    format or Python source it came from: one place, instead of one per reader."""
    for name in fields:
        value = getattr(delta, name)
        if isinstance(value, str) and _SURROGATE.search(value):
            object.__setattr__(delta, name, _SURROGATE.sub("\ufffd", value))


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the assistant's visible answer."""

    text: str

    def __post_init__(self) -> None:
        if _has_surrogate(self.text):  # inline: made for every token
            _set_valid(self, "text")


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning ("thinking"), shown apart from the answer."""

    text: str

    def __post_init__(self) -> None:
        if _has_surrogate(self.text):  # inline: made for every token
            _set_valid(self, "text")


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call; fragments with the same `index` belong together.

    Providers send the id and name once and the JSON arguments in pieces, so
    each field is optional here; `merge_tool_calls` puts them together.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def __post_init__(self) -> None:
        _set_valid(self, "id", "name", "arguments")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call, merged from its fragments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, when the provider reports them."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The stream ended with its format's completion marker."""

    finish_reason: str | None = None


ErrorKind = Literal[
    "connect",  # could not reach the server
    "http",  # the server answered with an error status
    "timeout",  # connect, idle-read or total timeout
    "incomplete",  # the body ended without the format's completion marker
    "provider",  # the provider reported an error inside the stream
    "protocol",  # the body is not a stream this package understands
    "network",  # the connection broke mid-stream
    "source",  # the Python source (a generator, an SDK stream) raised an exception
    "request",  # the request cannot be sent as given (bad URL or header value)
    "limit",  # the answer passed a size limit (`transport.Limits`); what came is kept
]


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream ended badly. Everything received before it was delivered."""

    kind: ErrorKind
    message: str
    status: int | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        _set_valid(self, "message")  # it may quote what the server sent

    def __str__(self) -> str:
        return self.message


Delta = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Done | StreamError


@dataclass(frozen=True, slots=True)
class Handlers:
    """What to do with each kind of delta: call it with a delta, and the callback for
    that delta's kind runs (a kind without one is passed over).

    `token` runs first for a piece of the answer, its reasoning or a tool call (what
    counts as a token for the time to first token), whichever it is.
    """

    text: Callable[[TextDelta], None] | None = None
    reasoning: Callable[[ReasoningDelta], None] | None = None
    tool_call: Callable[[ToolCallDelta], None] | None = None
    usage: Callable[[Usage], None] | None = None
    done: Callable[[Done], None] | None = None
    error: Callable[[StreamError], None] | None = None
    token: Callable[[Delta], None] | None = None

    def __call__(self, delta: Delta) -> None:
        kind = _KIND.get(type(delta)) or _kind_of(delta)
        if self.token is not None and kind in _TOKENS:
            self.token(delta)
        handler = getattr(self, kind)
        if handler is not None:
            handler(delta)


# The one place that says which kind each delta type is.
_KIND: dict[type, str] = {
    TextDelta: "text",
    ReasoningDelta: "reasoning",
    ToolCallDelta: "tool_call",
    Usage: "usage",
    Done: "done",
    StreamError: "error",
}
_TOKENS = frozenset({"text", "reasoning", "tool_call"})


def _kind_of(delta: Delta) -> str:
    """The kind of a delta made from a subclass of a delta type (a user's source may)."""
    for type_, kind in _KIND.items():
        if isinstance(delta, type_):
            return kind
    raise TypeError(f"not a delta: {type(delta).__name__}")


def merge_tool_calls(deltas: Iterable[Delta]) -> list[ToolCall]:
    """Merge tool-call fragments by index, in the order each index first appeared."""
    merged: dict[int, ToolCall] = {}
    for delta in deltas:
        if not isinstance(delta, ToolCallDelta):
            continue
        old = merged.get(delta.index)
        if old is None:
            merged[delta.index] = ToolCall(delta.index, delta.id, delta.name, delta.arguments)
        else:
            merged[delta.index] = ToolCall(
                delta.index,
                old.id or delta.id,
                old.name or delta.name,
                old.arguments + delta.arguments,
            )
    return list(merged.values())
