"""The Vercel AI SDK's UI message stream."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Handler, Reader, Sink, as_dict, as_str

__all__ = ["AiSdkReader"]


class AiSdkReader(Reader):
    """The Vercel AI SDK's UI message stream (`toUIMessageStreamResponse()`).

    https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol#data-stream-protocol
    SSE events typed `start`, `text-delta`, `reasoning-delta`, `tool-input-*`,
    `error` (with `errorText`), `finish` (with `finishReason`), then `data: [DONE]`;
    the response carries the header `x-vercel-ai-ui-message-stream: v1`. Token
    counts travel only if the route puts them in the finish's `messageMetadata`.
    """

    name = "ai-sdk"
    marker = "data: [DONE]"

    def __init__(self) -> None:
        # Tool calls by toolCallId: their index, and whether their input streamed.
        self._calls: dict[str, tuple[int, bool]] = {}

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return as_str(payload.get("type")) in AiSdkReader.HANDLERS

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        handler = self.HANDLERS.get(as_str(payload.get("type")) or "")
        if handler is not None:
            handler(self, payload, sink)

    def _text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.text(payload.get("delta"))

    def _reasoning(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.reasoning(payload.get("delta"))

    def _call(self, payload: dict[str, Any], streamed: bool) -> int:
        call_id = str(payload.get("toolCallId"))
        index, was_streamed = self._calls.get(call_id, (len(self._calls), False))
        self._calls[call_id] = (index, was_streamed or streamed)
        return index

    def _tool_start(self, payload: dict[str, Any], sink: Sink) -> None:
        index = self._call(payload, False)
        sink.tool(index, payload.get("toolCallId"), payload.get("toolName"))

    def _tool_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.tool(self._call(payload, True), arguments=payload.get("inputTextDelta"))

    def _tool_input(self, payload: dict[str, Any], sink: Sink) -> None:
        streamed = self._calls.get(str(payload.get("toolCallId")), (0, False))[1]
        if not streamed:  # sent whole, without tool-input-delta chunks
            index = self._call(payload, True)
            sink.tool(
                index, payload.get("toolCallId"), payload.get("toolName"), payload.get("input", {})
            )

    def _metadata(self, payload: dict[str, Any], sink: Sink) -> None:
        metadata = as_dict(payload.get("messageMetadata"))
        usage = as_dict(metadata.get("totalUsage") or metadata.get("usage"))
        details = as_dict(usage.get("outputTokenDetails"))
        reasoning = usage.get("reasoningTokens", details.get("reasoningTokens"))
        sink.count(usage.get("inputTokens"), usage.get("outputTokens"), reasoning)

    def _finish(self, payload: dict[str, Any], sink: Sink) -> None:
        self._metadata(payload, sink)
        sink.complete(payload.get("finishReason"))

    def _abort(self, payload: dict[str, Any], sink: Sink) -> None:
        reason = as_str(payload.get("reason"))
        sink.fail("incomplete", "the server aborted the answer" + (f": {reason}" if reason else ""))

    def _ignore(self, payload: dict[str, Any], sink: Sink) -> None:
        pass

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "start": _metadata,
        "message-metadata": _metadata,
        "start-step": _ignore,
        "finish-step": _ignore,
        "text-start": _ignore,
        "text-end": _ignore,
        "text-delta": _text,
        "reasoning-start": _ignore,
        "reasoning-end": _ignore,
        "reasoning-delta": _reasoning,
        "tool-input-start": _tool_start,
        "tool-input-delta": _tool_delta,
        "tool-input-available": _tool_input,
        "finish": _finish,
        "abort": _abort,
    }
