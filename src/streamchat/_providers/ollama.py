"""Ollama's NDJSON stream (`/api/chat` and `/api/generate`)."""

from __future__ import annotations

from typing import Any

from .base import Reader, Sink, as_dict, as_list

__all__ = ["OllamaReader"]


class OllamaReader(Reader):
    """Ollama `/api/chat` and `/api/generate` lines (NDJSON).

    https://github.com/ollama/ollama/blob/main/docs/api.md
    """

    name = "ollama"
    marker = '"done": true'

    def __init__(self) -> None:
        self._calls = 0

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("done"), bool) and (
            isinstance(payload.get("message"), dict) or isinstance(payload.get("response"), str)
        )

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        message = as_dict(payload.get("message"))
        sink.reasoning(message.get("thinking") or payload.get("thinking"))
        sink.text(message.get("content"))
        sink.text(payload.get("response"))
        for call in map(as_dict, as_list(message.get("tool_calls"))):
            function = as_dict(call.get("function"))
            sink.tool(self._calls, call.get("id"), function.get("name"), function.get("arguments"))
            self._calls += 1
        if payload.get("done") is True:
            sink.count(payload.get("prompt_eval_count"), payload.get("eval_count"))
            sink.complete(payload.get("done_reason"))
