"""Anthropic's Messages stream."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Handler, Reader, Sink, as_dict, as_list, as_str, count_sum

__all__ = ["AnthropicReader"]


class AnthropicReader(Reader):
    """Anthropic Messages events; also a whole `message` object.

    https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types
    """

    name = "anthropic"
    marker = "message_stop"

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        # A whole message has a list of content blocks; home-made streams also say
        # {"type": "message", "content": "text"}, which is not Anthropic's.
        kind = as_str(payload.get("type"))
        whole = kind == "message" and isinstance(payload.get("content"), list)
        return whole or kind in AnthropicReader.HANDLERS

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        if payload.get("type") == "message":
            self._whole(payload, sink)
            return
        handler = self.HANDLERS.get(as_str(payload.get("type")) or event)
        if handler is not None:
            handler(self, payload, sink)

    def _count(self, usage: dict[str, Any], sink: Sink) -> None:
        # `input_tokens` excludes the cached part of the prompt; the whole prompt counts.
        prompt = count_sum(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        sink.count(prompt, usage.get("output_tokens"))

    def _message_start(self, payload: dict[str, Any], sink: Sink) -> None:
        self._count(as_dict(as_dict(payload.get("message")).get("usage")), sink)

    def _block_start(self, payload: dict[str, Any], sink: Sink) -> None:
        self._block(payload.get("index"), as_dict(payload.get("content_block")), sink)

    def _block(self, index: object, block: dict[str, Any], sink: Sink) -> None:
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            # The input streams as input_json_delta; the start carries `{}`.
            sink.tool(index, block.get("id"), block.get("name"), block.get("input") or None)
        elif kind == "thinking":
            sink.reasoning(block.get("thinking"))
        elif kind == "text":
            sink.text(block.get("text"))

    def _block_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        delta = as_dict(payload.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            sink.text(delta.get("text"))
        elif kind == "thinking_delta":
            sink.reasoning(delta.get("thinking"))
        elif kind == "input_json_delta":
            sink.tool(payload.get("index"), arguments=delta.get("partial_json"))

    def _message_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.finish(as_dict(payload.get("delta")).get("stop_reason"))
        self._count(as_dict(payload.get("usage")), sink)

    def _message_stop(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.complete()

    def _whole(self, message: dict[str, Any], sink: Sink) -> None:
        for index, block in enumerate(map(as_dict, as_list(message.get("content")))):
            self._block(index, block, sink)
        self._count(as_dict(message.get("usage")), sink)
        sink.complete(message.get("stop_reason"))

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }
