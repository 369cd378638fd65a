"""OpenAI's Responses API stream."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Handler, Reader, Sink, as_dict, as_list, as_str, labelled

__all__ = ["ResponsesReader"]


class ResponsesReader(Reader):
    """The Responses API's typed events; also a whole `response` object.

    https://platform.openai.com/docs/api-reference/responses-streaming
    The stream ends with `response.completed`, `response.incomplete` or
    `response.failed`; there is no `[DONE]`.
    """

    name = "openai-responses"
    marker = "response.completed"

    def __init__(self) -> None:
        self._summary: tuple[object, object] | None = None

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        kind = payload.get("type")
        return (isinstance(kind, str) and kind.startswith("response.")) or (
            payload.get("object") == "response"
        )

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        if payload.get("object") == "response":
            self._whole(payload, sink)
            return
        handler = self.HANDLERS.get(as_str(payload.get("type")) or event)
        if handler is not None:
            handler(self, payload, sink)

    def _text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.text(payload.get("delta"))

    def _summary_text(self, payload: dict[str, Any], sink: Sink) -> None:
        # Summary parts arrive one after another; keep them apart as paragraphs.
        part = (payload.get("item_id"), payload.get("summary_index"))
        if self._summary is not None and part != self._summary:
            sink.reasoning("\n\n")
        self._summary = part
        sink.reasoning(payload.get("delta"))

    def _reasoning_text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.reasoning(payload.get("delta"))

    def _item_added(self, payload: dict[str, Any], sink: Sink) -> None:
        item = as_dict(payload.get("item"))
        if item.get("type") == "function_call":
            index = payload.get("output_index")
            sink.tool(index, item.get("call_id"), item.get("name"), item.get("arguments"))

    def _arguments_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.tool(payload.get("output_index"), arguments=payload.get("delta"))

    def _ended(self, payload: dict[str, Any], sink: Sink) -> None:
        response = as_dict(payload.get("response"))
        usage = as_dict(response.get("usage"))
        details = as_dict(usage.get("output_tokens_details"))
        sink.count(
            usage.get("input_tokens"), usage.get("output_tokens"), details.get("reasoning_tokens")
        )
        # `response.incomplete` is a finished answer cut short (e.g. max_output_tokens),
        # like Chat Completions' finish_reason "length": Done with that reason.
        reason = as_dict(response.get("incomplete_details")).get("reason")
        sink.complete(reason or response.get("status") or payload.get("type"))

    def _failed(self, payload: dict[str, Any], sink: Sink) -> None:
        response = as_dict(payload.get("response"))
        error = as_dict(response.get("error"))
        sink.fail("provider", labelled(error, "code") if error else "the response failed")

    def _whole(self, response: dict[str, Any], sink: Sink) -> None:
        for index, item in enumerate(map(as_dict, as_list(response.get("output")))):
            kind = item.get("type")
            if kind == "message":
                for part in map(as_dict, as_list(item.get("content"))):
                    sink.text(part.get("text") or part.get("refusal"))
            elif kind == "reasoning":
                summary = [as_dict(part).get("text") for part in as_list(item.get("summary"))]
                sink.reasoning("\n\n".join(text for text in summary if isinstance(text, str)))
            elif kind == "function_call":
                sink.tool(index, item.get("call_id"), item.get("name"), item.get("arguments"))
        if response.get("status") == "failed":
            self._failed({"response": response}, sink)
        else:
            self._ended({"response": response}, sink)

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "response.output_text.delta": _text,
        "response.refusal.delta": _text,
        "response.reasoning_summary_text.delta": _summary_text,
        "response.reasoning_text.delta": _reasoning_text,
        "response.output_item.added": _item_added,
        "response.function_call_arguments.delta": _arguments_delta,
        "response.completed": _ended,
        "response.incomplete": _ended,
        "response.failed": _failed,
    }
