"""Reading streams: each provider's format, auto-detection, errors and cut-short streams.

The recordings below are streams as each provider sends them (shapes from the
providers' streaming references, linked per recording) with the deltas they
must produce. Their text mixes Chinese, emoji (with ZWJ sequences and flags)
and ASCII, so that random chunkings split multi-byte characters; the loopback
tests serve them over real HTTP, split anywhere, with LF and with CRLF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from streamchat.deltas import (
    Delta,
    Done,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

Event = tuple[str, str]  # (SSE event name, data); NDJSON lines use "message"


@dataclass(frozen=True)
class Recording:
    name: str
    provider: str
    path: str
    content_type: str
    events: list[Event]
    expected: list[Delta]

    @property
    def ndjson(self) -> bool:
        return "ndjson" in self.content_type

    def body(self, newline: str = "\n") -> bytes:
        """The bytes on the wire, with `newline` as the line end (CRLF is legal in both)."""
        if self.ndjson:
            text = "".join(data + "\n" for _, data in self.events)
        else:
            text = "".join(_block(name, data) for name, data in self.events)
        return text.replace("\n", newline).encode()


def _block(name: str, data: str) -> str:
    head = "" if name == "message" else f"event: {name}\n"
    return head + "".join(f"data: {line}\n" for line in data.split("\n")) + "\n"


def dump(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def data(*payloads: object) -> list[Event]:
    """Unnamed events (OpenAI, Gemini, custom) or NDJSON lines."""
    return [("message", p if isinstance(p, str) else dump(p)) for p in payloads]


def typed(*payloads: dict) -> list[Event]:
    """Events named after their `type`, as Anthropic and the Responses API send them."""
    return [(p["type"], dump(p)) for p in payloads]


# https://platform.openai.com/docs/api-reference/chat-streaming, with DeepSeek's
# reasoning_content (https://api-docs.deepseek.com/guides/reasoning_model).
def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-A1b2",
        "object": "chat.completion.chunk",
        "created": 1718000000,
        "model": "deepseek-reasoner",
        "system_fingerprint": "fp_3a5770e1b4",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
    }


OPENAI = Recording(
    "openai",
    "openai",
    "/v1/chat/completions",
    "text/event-stream; charset=utf-8",
    data(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "用户在打招呼"}),
        _chunk({"reasoning_content": "，简单回答。"}),
        _chunk({"content": "你好"}),
        _chunk({"content": "，世界！👨‍👩‍👧"}),
        _chunk({"content": "\n\n**Done.**"}),
        _chunk({}, "stop"),
        {
            "id": "chatcmpl-A1b2",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 30,
                "total_tokens": 42,
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
        },
        "[DONE]",
    ),
    [
        ReasoningDelta("用户在打招呼"),
        ReasoningDelta("，简单回答。"),
        TextDelta("你好"),
        TextDelta("，世界！👨‍👩‍👧"),
        TextDelta("\n\n**Done.**"),
        Usage(12, 30, 9),
        Done("stop"),
    ],
)

OPENAI_TOOLS = Recording(
    "openai-tools",
    "openai",
    "/v1/chat/completions",
    "text/event-stream",
    data(
        _chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "北京 🏙️"}'}}]}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_def",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    }
                ]
            }
        ),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ),
    [
        ToolCallDelta(0, "call_abc", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city":'),
        ToolCallDelta(0, None, None, ' "北京 🏙️"}'),
        ToolCallDelta(1, "call_def", "get_time", "{}"),
        Done("tool_calls"),
    ],
)

# https://platform.openai.com/docs/api-reference/responses-streaming
_RESPONSE = {"id": "resp_1", "object": "response", "model": "o4-mini", "output": []}
RESPONSES = Recording(
    "openai-responses",
    "openai-responses",
    "/v1/responses",
    "text/event-stream; charset=utf-8",
    typed(
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**_RESPONSE, "status": "in_progress", "usage": None},
        },
        {
            "type": "response.in_progress",
            "sequence_number": 1,
            "response": {**_RESPONSE, "status": "in_progress"},
        },
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "summary": []},
        },
        {
            "type": "response.reasoning_summary_part.added",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "**Greeting**",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 1,
            "delta": "先想一想🤔",
        },
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "你好",
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "，世界 🌍",
        },
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "text": "你好，世界 🌍",
        },
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "lookup",
                "arguments": "",
            },
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 2,
            "delta": '{"q":',
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 2,
            "delta": '"天气"}',
        },
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 2,
            "arguments": '{"q":"天气"}',
        },
        {
            "type": "response.completed",
            "sequence_number": 20,
            "response": {
                **_RESPONSE,
                "status": "completed",
                "incomplete_details": None,
                "usage": {
                    "input_tokens": 20,
                    "output_tokens": 40,
                    "output_tokens_details": {"reasoning_tokens": 16},
                    "total_tokens": 60,
                },
            },
        },
    ),
    [
        ReasoningDelta("**Greeting**"),
        ReasoningDelta("\n\n"),
        ReasoningDelta("先想一想🤔"),
        TextDelta("你好"),
        TextDelta("，世界 🌍"),
        ToolCallDelta(2, "call_1", "lookup", ""),
        ToolCallDelta(2, None, None, '{"q":'),
        ToolCallDelta(2, None, None, '"天气"}'),
        Usage(20, 40, 16),
        Done("completed"),
    ],
)

# https://docs.anthropic.com/en/docs/build-with-claude/streaming
ANTHROPIC = Recording(
    "anthropic",
    "anthropic",
    "/v1/messages",
    "text/event-stream; charset=utf-8",
    typed(
        {
            "type": "message_start",
            "message": {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-5",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "让我想想…"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbc"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "你好"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "，世界！🎉"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "東京"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 89},
        },
        {"type": "message_stop"},
    ),
    [
        ReasoningDelta("让我想想…"),
        TextDelta("你好"),
        TextDelta("，世界！🎉"),
        ToolCallDelta(2, "toolu_01", "get_weather", ""),
        ToolCallDelta(2, None, None, '{"city": "東京"}'),
        Usage(25, 89),
        Done("tool_use"),
    ],
)


# https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse
def _candidate(*parts: dict, finish: str | None = None) -> dict:
    candidate: dict = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r-1",
    }


_GEMINI_LAST = _candidate(
    {"functionCall": {"name": "get_time", "args": {"tz": "Asia/Shanghai"}}}, finish="STOP"
)
_GEMINI_LAST["usageMetadata"] = {
    "promptTokenCount": 8,
    "candidatesTokenCount": 12,
    "thoughtsTokenCount": 20,
    "totalTokenCount": 40,
}
GEMINI = Recording(
    "gemini",
    "gemini",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    "text/event-stream",
    data(
        _candidate({"text": "我在思考…", "thought": True}),
        _candidate({"text": "你好"}),
        _candidate({"text": "，世界！😀\n"}),
        _GEMINI_LAST,
    ),
    [
        ReasoningDelta("我在思考…"),
        TextDelta("你好"),
        TextDelta("，世界！😀\n"),
        ToolCallDelta(0, None, "get_time", '{"tz": "Asia/Shanghai"}'),
        Usage(8, 32, 20),
        Done("STOP"),
    ],
)

# https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
_OLLAMA = {"model": "qwen3", "created_at": "2025-06-01T12:00:00.000000Z"}
OLLAMA_CHAT = Recording(
    "ollama-chat",
    "ollama-chat",
    "/api/chat",
    "application/x-ndjson",
    data(
        {**_OLLAMA, "message": {"role": "assistant", "content": "", "thinking": "嗯，"}, "done": False},
        {**_OLLAMA, "message": {"role": "assistant", "content": "你好"}, "done": False},
        {**_OLLAMA, "message": {"role": "assistant", "content": "👋 world"}, "done": False},
        {
            **_OLLAMA,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}],
            },
            "done": False,
        },
        {
            **_OLLAMA,
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": 4883583458,
            "prompt_eval_count": 11,
            "eval_count": 7,
        },
    ),
    [
        ReasoningDelta("嗯，"),
        TextDelta("你好"),
        TextDelta("👋 world"),
        ToolCallDelta(0, None, "add", '{"a": 1, "b": 2}'),
        Usage(11, 7),
        Done("stop"),
    ],
)

OLLAMA_GENERATE = Recording(
    "ollama-generate",
    "ollama-generate",
    "/api/generate",
    "application/x-ndjson",
    data(
        {**_OLLAMA, "response": "", "thinking": "天空…", "done": False},
        {**_OLLAMA, "response": "天空", "done": False},
        {**_OLLAMA, "response": "是蓝色的 💙", "done": False},
        {
            **_OLLAMA,
            "response": "",
            "done": True,
            "done_reason": "length",
            "context": [1, 2, 3],
            "prompt_eval_count": 5,
            "eval_count": 2,
        },
    ),
    [
        ReasoningDelta("天空…"),
        TextDelta("天空"),
        TextDelta("是蓝色的 💙"),
        Usage(5, 2),
        Done("length"),
    ],
)

# The blog's server: each data block is the text itself, `[DONE]` ends it.
CUSTOM_TEXT = Recording(
    "custom-text",
    "custom",
    "/stream",
    "text/event-stream",
    data("你好", " world", "！🇨🇳", "第一行\n第二行 👩‍💻", "[DONE]"),
    [
        TextDelta("你好"),
        TextDelta(" world"),
        TextDelta("！🇨🇳"),
        TextDelta("第一行\n第二行 👩‍💻"),
        Done(),
    ],
)

CUSTOM_JSON = Recording(
    "custom-json",
    "custom",
    "/stream",
    "text/event-stream",
    data(
        {"token": "你好"},
        {"delta": {"content": "，世界"}},
        {"text": " 🚀\n"},
        {"answer": "end"},
    ),
    [TextDelta("你好"), TextDelta("，世界"), TextDelta(" 🚀\n"), TextDelta("end"), Done()],
)

RECORDINGS = [
    OPENAI,
    OPENAI_TOOLS,
    RESPONSES,
    ANTHROPIC,
    GEMINI,
    OLLAMA_CHAT,
    OLLAMA_GENERATE,
    CUSTOM_TEXT,
    CUSTOM_JSON,
]
