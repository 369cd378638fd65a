"""Gemini's `streamGenerateContent` stream."""

from __future__ import annotations

from typing import Any

from .base import Reader, Sink, as_dict, as_list, count_sum

__all__ = ["GeminiReader"]


class GeminiReader(Reader):
    """`GenerateContentResponse` chunks of `streamGenerateContent?alt=sse`.

    https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
    There is no end marker: the last chunk has a `finishReason`, then the body ends.
    """

    name = "gemini"
    marker = "a finishReason"

    def __init__(self) -> None:
        # Gemini sends each function call whole, without an index: number them.
        self._calls = 0

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return "candidates" in payload or "promptFeedback" in payload

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        blocked = as_dict(payload.get("promptFeedback")).get("blockReason")
        if blocked:
            sink.fail("provider", f"the prompt was blocked: {blocked}")
            return
        for candidate in map(as_dict, as_list(payload.get("candidates"))[:1]):
            for part in map(as_dict, as_list(as_dict(candidate.get("content")).get("parts"))):
                self._part(part, sink)
            sink.finish(candidate.get("finishReason"))
        usage = as_dict(payload.get("usageMetadata"))
        thoughts = usage.get("thoughtsTokenCount")
        # candidatesTokenCount leaves the thoughts out; other formats count them as output.
        output = count_sum(usage.get("candidatesTokenCount"), thoughts)
        sink.count(usage.get("promptTokenCount"), output, thoughts)

    def _part(self, part: dict[str, Any], sink: Sink) -> None:
        call = part.get("functionCall")
        if isinstance(call, dict):
            sink.tool(self._calls, call.get("id"), call.get("name"), call.get("args") or {})
            self._calls += 1
        elif part.get("thought") is True:
            sink.reasoning(part.get("text"))
        else:
            sink.text(part.get("text"))
