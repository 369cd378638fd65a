"""LangChain's message chunks (a Python source, never a wire format)."""

from __future__ import annotations

from typing import Any

from .base import Reader, Sink, as_dict, as_int, as_list

__all__ = ["LangChainReader"]


class LangChainReader(Reader):
    """LangChain's `AIMessageChunk`s, as `chat_model.stream()` yields them (dumped to dicts).

    https://python.langchain.com/api_reference/core/messages/langchain_core.messages.ai.AIMessageChunk.html
    `content` is text or a list of blocks (text, thinking, reasoning); tool calls come
    as `tool_call_chunks`. Token counts are per chunk and add up (Anthropic's models
    report the prompt at the start and the output at the end). There is no end
    marker: the iterator ends.
    """

    name = "langchain"
    marker = "the end of the iterator"
    ends_on_clean_close = True

    def __init__(self) -> None:
        self._tokens = [0, 0, 0]
        self._counted = [False, False, False]

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return payload.get("type") in ("AIMessageChunk", "AIMessage", "ai")

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        content = payload.get("content")
        kwargs = as_dict(payload.get("additional_kwargs"))
        sink.reasoning(kwargs.get("reasoning_content"))
        if isinstance(content, str):
            sink.text(content)
        for block in map(as_dict, as_list(content)):
            kind = block.get("type")
            if kind == "text":
                sink.text(block.get("text"))
            elif kind in ("thinking", "reasoning"):
                sink.reasoning(block.get(kind))
        for position, call in enumerate(map(as_dict, as_list(payload.get("tool_call_chunks")))):
            index = position if call.get("index") is None else call.get("index")
            sink.tool(index, call.get("id"), call.get("name"), call.get("args"))
        self._count(as_dict(payload.get("usage_metadata")), sink)
        metadata = as_dict(payload.get("response_metadata"))
        reason = metadata.get("finish_reason") or metadata.get("stop_reason")
        sink.finish(reason or metadata.get("done_reason"))

    def _count(self, usage: dict[str, Any], sink: Sink) -> None:
        details = as_dict(usage.get("output_token_details"))
        new = (usage.get("input_tokens"), usage.get("output_tokens"), details.get("reasoning"))
        for position, value in enumerate(map(as_int, new)):
            if value is not None:
                self._tokens[position] += value
                self._counted[position] = True
        totals = [t if seen else None for t, seen in zip(self._tokens, self._counted, strict=True)]
        sink.count(*totals)
