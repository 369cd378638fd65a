"""What every format's reader shares: the `Sink`, the `Reader` base, and payload helpers.

Readers only say what they found in a payload (text, reasoning, a tool-call
fragment, token counts, a finish reason, an error). The rules every format
shares live once, in `Sink` and in `streamchat.providers.StreamParser`: the
`[DONE]` marker, JSON decoding, format sniffing, usage sent once just before
the terminal delta, and exactly one terminal delta per stream. The helpers
(`as_dict`, `as_str`...) read a field of any type without raising: a quirky
server costs a field, not the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from ..deltas import (
    Delta,
    Done,
    ErrorKind,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "Handler",
    "Reader",
    "Sink",
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "count_sum",
    "error_message",
    "excerpt",
    "labelled",
]


def excerpt(data: str, limit: int = 80) -> str:
    """A short, single-line, quoted sample of a payload for error messages."""
    flat = " ".join(data.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def count_sum(*values: object) -> int | None:
    counts = [count for count in map(as_int, values) if count is not None]
    return sum(counts) if counts else None


def _arguments(value: object) -> str:
    """Tool arguments as JSON text: streamed formats send text, whole ones an object."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False)


class Sink:
    """The deltas of the payload being read, and the state of the whole stream.

    Its methods take whatever a payload holds (`object`): a field of the wrong type
    is skipped instead of raising, so a quirky server costs a field, not the answer.
    """

    def __init__(self) -> None:
        self.out: list[Delta] = []
        self.usage: Usage | None = None
        self.reason: str | None = None
        self.terminal: Done | StreamError | None = None
        # Whether any answer content (text, reasoning, tool call) was delivered.
        self.content = False

    def take(self) -> list[Delta]:
        out, self.out = self.out, []
        return out

    def text(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.out.append(TextDelta(value))
            self.content = True

    def reasoning(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.out.append(ReasoningDelta(value))
            self.content = True

    def tool(
        self, index: object, call_id: object = None, name: object = None, arguments: object = None
    ) -> None:
        delta = ToolCallDelta(
            as_int(index) or 0, as_str(call_id), as_str(name), _arguments(arguments)
        )
        if delta.id or delta.name or delta.arguments:
            self.out.append(delta)
            self.content = True

    def count(
        self, input_tokens: object = None, output_tokens: object = None, reasoning: object = None
    ) -> None:
        """Record token counts; later reports replace earlier ones (they are cumulative)."""
        new = (as_int(input_tokens), as_int(output_tokens), as_int(reasoning))
        if new == (None, None, None):
            return
        old = self.usage or Usage()
        self.usage = Usage(
            new[0] if new[0] is not None else old.input_tokens,
            new[1] if new[1] is not None else old.output_tokens,
            new[2] if new[2] is not None else old.reasoning_tokens,
        )

    def finish(self, reason: object) -> None:
        """Remember why generation stopped; the terminal `Done` carries it."""
        if isinstance(reason, str) and reason:
            self.reason = reason

    def complete(self, reason: object = None) -> None:
        self.finish(reason)
        self._end(Done(self.reason))

    def fail(self, kind: ErrorKind, message: str, status: int | None = None) -> None:
        self._end(StreamError(kind, message, status))

    def _end(self, terminal: Done | StreamError) -> None:
        # Usage goes out once, before the terminal delta, even before an error:
        # errors never lose what was already received.
        if self.terminal is not None:
            return
        if self.usage is not None:
            self.out.append(self.usage)
        self.out.append(terminal)
        self.terminal = terminal


def error_message(payload: dict[str, Any], event: str) -> str | None:
    """The message of an error reported inside the stream, or None if this is no error.

    Shapes: OpenAI/Gemini `{"error": {"message", "type"|"status"}}`, Anthropic's
    `error` event `{"type": "error", "error": {...}}`, Ollama `{"error": "..."}`,
    the Responses API's `{"type": "error", "message", "code"}`, vLLM's
    `{"object": "error", "message", "type"}`.
    """
    error = payload.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and error:
        return labelled(error, "type", "status", "code")
    if payload.get("type") == "error" or event == "error":
        # The AI SDK's UI message stream says {"type": "error", "errorText": "..."}.
        return as_str(payload.get("errorText")) or labelled(payload, "code")
    if payload.get("object") == "error":  # vLLM's mid-stream error
        return labelled(payload, "type", "code")
    return None


def labelled(error: dict[str, Any], *labels: str) -> str:
    message = as_str(error.get("message"))
    label = next((str(error[key]) for key in labels if error.get(key)), None)
    if message and label:
        return f"{label}: {message}"
    return message or label or excerpt(json.dumps(error, ensure_ascii=False))


class Reader:
    """Interprets one format's payloads. A new instance per stream: some keep state."""

    name: ClassVar[str]
    # The completion marker, named in the "incomplete" message.
    marker: ClassVar[str]
    # A clean end of body completes the answer (formats without an end marker).
    ends_on_clean_close: ClassVar[bool] = False

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        """Whether a payload has this format's unmistakable shape (for sniffing)."""
        return False

    def read(self, payload: object, data: str, event: str, sink: Sink) -> None:
        """Read one payload: `payload` is `data` decoded, or None when `data` is not JSON."""
        if isinstance(payload, list):
            # A whole JSON array answer (Gemini without alt=sse): read each element.
            for item in payload:
                if sink.terminal is None:
                    self.read(item, data, event, sink)
        elif isinstance(payload, dict):
            message = error_message(payload, event)
            if message is None:
                self.read_object(payload, event, sink)
            else:
                sink.fail("provider", message)
        elif event == "error":
            sink.fail("provider", " ".join(data.split()))
        else:
            sink.fail(
                "protocol", f"expected a JSON object in the {self.name} stream, got {excerpt(data)}"
            )

    def read_blank(self, data: str, event: str, sink: Sink) -> None:
        """Read a payload of only whitespace: nothing, between JSON documents."""

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        raise NotImplementedError

    def unexplained(self, sink: Sink) -> str | None:
        """At a clean end: why the stream, though complete, is not understood (or None)."""
        return None


# A handler of one event type: (reader, payload, sink); readers keep a table of them.
Handler = Callable[[Any, dict[str, Any], Sink], None]
