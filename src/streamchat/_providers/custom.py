"""Home-made streams: plain text, JSON strings or JSON objects with a text field."""

from __future__ import annotations

import json
from typing import Any

from .base import Reader, Sink, excerpt

__all__ = ["CustomReader"]


# Fields that carry the text in home-made JSON streams, most specific first.
_TEXT_KEYS = ("text", "content", "delta", "token", "response", "answer", "message", "output")
_REASONING_KEYS = ("reasoning", "reasoning_content", "thinking")
# Event names (or JSON `type`s) a home-made server may use for its text, and for its end.
_TEXT_EVENTS = frozenset({"message", "delta", "token", "text", "chunk", "content"})
_END_EVENTS = frozenset({"done", "end", "finish"})


def _mode_of(first: object) -> str:
    if isinstance(first, dict):
        return "object"
    return "string" if isinstance(first, str) else "text"


class CustomReader(Reader):
    """Home-made streams: plain-text data, JSON strings, or JSON objects with a text field.

    The first payload decides which: a server that sends `data: Hello` sends plain
    text throughout, even when a later token happens to look like JSON.
    """

    name = "custom"
    marker = "[DONE]"
    ends_on_clean_close = True

    def __init__(self) -> None:
        self._mode: str | None = None
        self._ignored: str | None = None

    def read(self, payload: object, data: str, event: str, sink: Sink) -> None:
        if self._mode is None:
            self._mode = _mode_of(payload)
        if event in _END_EVENTS:
            sink.complete()
        elif self._mode == "object" or event == "error":
            super().read(payload, data, event, sink)
        elif event in _TEXT_EVENTS:
            sink.text(payload if self._mode == "string" and isinstance(payload, str) else data)
        else:
            self._ignore(data)

    def read_blank(self, data: str, event: str, sink: Sink) -> None:
        # A plain-text server's token " " or "\n" is text (FastAPI's `data: {token}`,
        # sse-starlette's EventSourceResponse). Before the first token it cannot be
        # told from a keep-alive, and leading blanks change nothing in Markdown.
        if self._mode == "text" and event in _TEXT_EVENTS:
            sink.text(data)

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        kind = str(payload.get("type") or event)
        text = _first_text(payload, _TEXT_KEYS)
        if "reasoning" in kind or "thinking" in kind:
            sink.reasoning(text)
        else:
            sink.reasoning(_first_text(payload, _REASONING_KEYS))
            sink.text(text)
        if payload.get("done") is True or kind in _END_EVENTS:
            sink.complete(payload.get("finish_reason"))
        elif text is None:
            self._ignore(json.dumps(payload, ensure_ascii=False))

    def _ignore(self, data: str) -> None:
        if self._ignored is None:
            self._ignored = data

    def unexplained(self, sink: Sink) -> str | None:
        if sink.content or self._ignored is None:
            return None
        return (
            f"no text found in the stream; its first event was {excerpt(self._ignored)}"
            f" (expected plain text or a JSON field such as {', '.join(_TEXT_KEYS[:5])})"
        )


def _first_text(payload: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, dict):  # {"delta": {"content": "..."}}
            value = value.get("content", value.get("text"))
        if isinstance(value, str):
            return value
    return None
