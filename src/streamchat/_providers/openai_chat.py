"""OpenAI's Chat Completions stream (and every server that copies it)."""

from __future__ import annotations

from typing import Any

from .base import Reader, Sink, as_dict, as_list

__all__ = ["OpenAIChatReader"]


class OpenAIChatReader(Reader):
    """Chat Completions chunks; also a whole `chat.completion` sent despite `stream: true`.

    https://platform.openai.com/docs/api-reference/chat-streaming
    """

    name = "openai"
    marker = "data: [DONE]"

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return "choices" in payload

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        for choice in map(as_dict, as_list(payload.get("choices"))):
            if choice.get("index", 0) != 0:  # n > 1: one bubble shows the first choice
                continue
            # A whole completion has `message` where a chunk has `delta`.
            delta = as_dict(choice.get("delta") or choice.get("message"))
            # DeepSeek, Qwen and llama.cpp say `reasoning_content`, vLLM/OpenRouter `reasoning`.
            sink.reasoning(delta.get("reasoning_content") or delta.get("reasoning"))
            sink.text(delta.get("content"))
            sink.text(delta.get("refusal"))
            for position, call in enumerate(map(as_dict, as_list(delta.get("tool_calls")))):
                function = as_dict(call.get("function"))
                index = call.get("index", position)
                sink.tool(index, call.get("id"), function.get("name"), function.get("arguments"))
            sink.finish(choice.get("finish_reason"))
        usage = as_dict(payload.get("usage"))
        details = as_dict(usage.get("completion_tokens_details"))
        prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
        sink.count(prompt, output, details.get("reasoning_tokens"))
        if payload.get("object") == "chat.completion":
            sink.complete()
