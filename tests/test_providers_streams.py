"""Reading streams: each provider's format, auto-detection, errors and cut-short streams.

The recordings below are streams as each provider sends them (shapes from the
providers' streaming references, linked per recording) with the deltas they
must produce. Their text mixes Chinese, emoji (with ZWJ sequences and flags)
and ASCII, so that random chunkings split multi-byte characters; the loopback
tests serve them over real HTTP, split anywhere, with LF and with CRLF.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat.deltas import (
    Delta,
    Done,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    merge_tool_calls,
)
from streamchat.ndjson import NDJSONDecoder
from streamchat.providers import (
    PROVIDERS,
    ChatRequest,
    StreamParser,
    build_request,
    lookup,
    make_parser,
    wire_format,
)
from streamchat.sse import EventStreamDecoder

from loopback import LoopbackServer, Script

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
        {
            **_OLLAMA,
            "message": {"role": "assistant", "content": "", "thinking": "嗯，"},
            "done": False,
        },
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


# ---------------------------------------------------------------------------
# Helpers


def run(
    provider: str, events: list[Event], content_type: str | None = None, *, clean: bool = True
) -> list[Delta]:
    """Feed events to a fresh parser, then end it; check the one-terminal rule on the way."""
    parser = make_parser(provider, content_type)
    deltas = [delta for name, payload in events for delta in parser.feed(payload, name)]
    deltas += parser.end(clean)
    assert_one_terminal(deltas)
    return deltas


def assert_one_terminal(deltas: list[Delta]) -> None:
    terminals = [d for d in deltas if isinstance(d, (Done, StreamError))]
    assert len(terminals) == 1, deltas
    assert deltas[-1] is terminals[0]


def content(deltas: list[Delta]) -> list[Delta]:
    """The answer itself: text, reasoning and tool-call fragments."""
    return [d for d in deltas if isinstance(d, (TextDelta, ReasoningDelta, ToolCallDelta))]


def error_of(deltas: list[Delta]) -> StreamError:
    error = deltas[-1]
    assert isinstance(error, StreamError), deltas
    return error


def ids(recording: Recording) -> str:
    return recording.name


STRUCTURED = [r for r in RECORDINGS if r.provider != "custom"]
# The providers whose own framing is SSE, and NDJSON (from the registry).
SSE_HINTS = [p for p in PROVIDERS if lookup(p).wire == "sse"]
NDJSON_HINTS = [p for p in PROVIDERS if lookup(p).wire == "ndjson"]


# ---------------------------------------------------------------------------
# Each format, from hand-built events


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_recording_gives_its_deltas(recording: Recording) -> None:
    assert run(recording.provider, recording.events, recording.content_type) == recording.expected


@pytest.mark.parametrize("recording", [OPENAI_TOOLS, RESPONSES, ANTHROPIC, GEMINI, OLLAMA_CHAT])
def test_tool_call_fragments_merge_into_json_arguments(recording: Recording) -> None:
    calls = merge_tool_calls(run(recording.provider, recording.events))
    assert calls
    for call in calls:
        assert call.name
        json.loads(call.arguments)


def test_openai_tool_calls_merge_by_index() -> None:
    assert merge_tool_calls(OPENAI_TOOLS.expected) == [
        ToolCall(0, "call_abc", "get_weather", '{"city": "北京 🏙️"}'),
        ToolCall(1, "call_def", "get_time", "{}"),
    ]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_openai_reasoning_fields(field: str) -> None:
    events = data(_chunk({field: "想"}), _chunk({"content": "答"}, "stop"), "[DONE]")
    assert run("openai", events) == [ReasoningDelta("想"), TextDelta("答"), Done("stop")]


def test_openai_other_choices_are_not_mixed_in() -> None:
    second = _chunk({"content": "other"})
    second["choices"][0]["index"] = 1
    events = data(_chunk({"content": "first"}), second, "[DONE]")
    assert run("openai", events) == [TextDelta("first"), Done()]


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_unknown_events_are_ignored(recording: Recording) -> None:
    events = list(recording.events)
    events.insert(2, ("mystery", dump({"type": "mystery.event", "note": "🙂"})))
    assert run(recording.provider, events, recording.content_type) == recording.expected


@pytest.mark.parametrize("recording", [OPENAI, ANTHROPIC, CUSTOM_TEXT], ids=ids)
def test_input_after_done_is_ignored(recording: Recording) -> None:
    parser = make_parser(recording.provider)
    for name, payload in recording.events:
        parser.feed(payload, name)
    assert parser.done
    assert parser.feed(dump(_chunk({"content": "late"})), "message") == []
    assert parser.feed("late text") == []
    assert parser.end() == []
    assert parser.end(clean=False) == []


def test_blank_payloads_are_ignored() -> None:
    parser = make_parser("openai")
    assert parser.feed("") == []
    assert parser.feed("  \n") == []
    assert not parser.done


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "type",
                    "index",
                    "error",
                    "message",
                    "done",
                    "candidates",
                    "parts",
                    "text",
                    "usage",
                    "response",
                    "tool_calls",
                    "function",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
EVENT_NAMES = st.sampled_from(["message", "error", "message_start", "response.completed", "x"])


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    provider=st.sampled_from(PROVIDERS),
    events=st.lists(st.tuples(EVENT_NAMES, JSON.map(dump) | st.text(max_size=8)), max_size=8),
    clean=st.booleans(),
)
def test_any_payloads_end_in_exactly_one_terminal(
    provider: str, events: list[Event], clean: bool
) -> None:
    """Servers send odd shapes: a field of the wrong type must never raise."""
    run(provider, events, clean=clean)


# ---------------------------------------------------------------------------
# Errors reported inside the stream: everything before them is kept


def test_openai_error_object_mid_stream() -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    deltas = run("openai", [*OPENAI.events[:5], *data(error)])
    assert content(deltas) == OPENAI.expected[:4]
    assert deltas[-1] == StreamError("provider", "server_error: The server had an error")


def test_anthropic_error_event_keeps_text_and_usage() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    deltas = run("anthropic", [*ANTHROPIC.events[:8], *typed(error)])
    assert deltas == [
        ReasoningDelta("让我想想…"),
        TextDelta("你好"),
        Usage(25, 1),
        StreamError("provider", "overloaded_error: Overloaded"),
    ]


def test_responses_error_event() -> None:
    error = {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 9}
    deltas = run("openai-responses", [*RESPONSES.events[:9], *typed(error)])
    assert content(deltas) == RESPONSES.expected[:4]
    assert deltas[-1] == StreamError("provider", "server_error: boom")


def test_responses_failed() -> None:
    failed = {
        "type": "response.failed",
        "response": {
            **_RESPONSE,
            "status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "slow down"},
        },
    }
    deltas = run("openai-responses", [*RESPONSES.events[:9], *typed(failed)])
    assert content(deltas) == RESPONSES.expected[:4]
    assert deltas[-1] == StreamError("provider", "rate_limit_exceeded: slow down")


def test_responses_incomplete_is_done_with_its_reason() -> None:
    incomplete = {
        "type": "response.incomplete",
        "response": {
            **_RESPONSE,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "usage": {"input_tokens": 5, "output_tokens": 64},
        },
    }
    deltas = run("openai-responses", [*RESPONSES.events[:9], *typed(incomplete)])
    assert deltas[-2:] == [Usage(5, 64), Done("max_output_tokens")]


def test_gemini_error_object() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    deltas = run("gemini", [*GEMINI.events[:2], *data(error)])
    assert content(deltas) == GEMINI.expected[:2]
    assert deltas[-1] == StreamError("provider", "UNAVAILABLE: The model is overloaded.")


def test_gemini_blocked_prompt() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    deltas = run("gemini", data(blocked))
    assert deltas == [StreamError("provider", "the prompt was blocked: SAFETY")]


def test_ollama_error_line() -> None:
    deltas = run("ollama-chat", [*OLLAMA_CHAT.events[:2], *data({"error": "model 'x' not found"})])
    assert deltas == [
        ReasoningDelta("嗯，"),
        TextDelta("你好"),
        StreamError("provider", "model 'x' not found"),
    ]


@pytest.mark.parametrize("payload", ["quota exceeded", dump({"message": "quota exceeded"})])
def test_sse_error_event(payload: str) -> None:
    for provider in ("custom", "openai"):
        deltas = run(provider, [*data({"text": "hi"}), ("error", payload)])
        assert error_of(deltas) == StreamError("provider", "quota exceeded")


def test_vllm_error_object() -> None:
    error = {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError"}
    deltas = run("openai", [*OPENAI.events[:4], *data(error)])
    assert content(deltas) == OPENAI.expected[:3]
    assert deltas[-1] == StreamError("provider", "BadRequestError: max_tokens is too large")


def test_custom_error_field() -> None:
    deltas = run("custom", data({"token": "a"}, {"error": {"message": "nope"}}))
    assert deltas == [TextDelta("a"), StreamError("provider", "nope")]


# ---------------------------------------------------------------------------
# Not the expected format: protocol errors with an excerpt


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "custom"])
def test_non_json_is_a_protocol_error(provider: str) -> None:
    deltas = run(provider, data("Hello, plain text 你好"))
    error = error_of(deltas)
    assert error.kind == "protocol"
    assert "'Hello, plain text 你好'" in error.message
    assert "JSON" in error.message


def test_protocol_error_keeps_what_came_before_and_shortens_the_excerpt() -> None:
    deltas = run("openai", [*OPENAI.events[:4], *data("<" + "x" * 5000)])
    assert content(deltas) == OPENAI.expected[:3]
    error = error_of(deltas)
    assert error.kind == "protocol"
    assert "'<xxx" in error.message
    assert len(error.message) < 200


@pytest.mark.parametrize("provider", ["openai", "custom", "ollama-chat"])
def test_html_page_is_a_protocol_error(provider: str) -> None:
    page = "<!doctype html>\n<html><title>Sign in</title><body>Please log in</body></html>"
    deltas = run(provider, data(page), "text/html; charset=utf-8")
    error = error_of(deltas)
    assert error.kind == "protocol"
    assert "HTML" in error.message
    assert "Sign in" in error.message


# ---------------------------------------------------------------------------
# Streams that end before their completion marker


@pytest.mark.parametrize("recording", STRUCTURED, ids=ids)
@pytest.mark.parametrize("clean", [True, False])
def test_stream_without_marker_is_incomplete(recording: Recording, clean: bool) -> None:
    cut = len(recording.events) // 2
    deltas = run(recording.provider, recording.events[:cut], clean=clean)
    received = content(deltas)
    assert received
    assert received == content(recording.expected)[: len(received)]
    error = error_of(deltas)
    assert error.kind == "incomplete"
    assert ("ended" if clean else "broke off") in error.message
    assert recording.provider.split("-")[0] in error.message


@pytest.mark.parametrize("recording", [OPENAI, ANTHROPIC], ids=ids)
def test_clean_end_after_a_finish_reason_is_done(recording: Recording) -> None:
    """Servers that drop `[DONE]` (or `message_stop`) after saying why they stopped."""
    deltas = run(recording.provider, recording.events[:-1])
    assert deltas == recording.expected
    broken = run(recording.provider, recording.events[:-1], clean=False)
    assert error_of(broken).kind == "incomplete"


def test_gemini_without_finish_reason_is_incomplete() -> None:
    deltas = run("gemini", GEMINI.events[:-1])
    assert content(deltas) == GEMINI.expected[:3]
    assert error_of(deltas).kind == "incomplete"
    assert "finishReason" in error_of(deltas).message


@pytest.mark.parametrize("recording", [CUSTOM_TEXT, CUSTOM_JSON], ids=ids)
def test_custom_clean_end_is_done_but_a_break_is_not(recording: Recording) -> None:
    events = [event for event in recording.events if event[1] != "[DONE]"]
    assert run("custom", events) == recording.expected
    assert error_of(run("custom", events, clean=False)).kind == "incomplete"


# ---------------------------------------------------------------------------
# Home-made (custom) streams


def test_custom_json_strings_keep_newlines() -> None:
    deltas = run("custom", data('"你好\\n"', '"  world 🌍"', "[DONE]"))
    assert deltas == [TextDelta("你好\n"), TextDelta("  world 🌍"), Done()]


def test_custom_plain_text_stays_text_when_a_token_looks_like_json() -> None:
    deltas = run("custom", data("Answer:", '{"a": 1}', "42", "[DONE]"))
    assert deltas == [TextDelta("Answer:"), TextDelta('{"a": 1}'), TextDelta("42"), Done()]


def test_custom_end_event() -> None:
    deltas = run("custom", [("message", "hi"), ("end", "bye"), ("message", "late")], clean=False)
    assert deltas == [TextDelta("hi"), Done()]


def test_custom_typed_json_with_reasoning_and_finish() -> None:
    events = data(
        {"type": "begin"},
        {"type": "reasoning", "text": "想一想"},
        {"type": "token", "text": "你好"},
        {"reasoning": "more", "content": " there"},
        {"type": "done"},
        "[DONE]",
    )
    deltas = run("custom", events)
    assert deltas == [
        ReasoningDelta("想一想"),
        TextDelta("你好"),
        ReasoningDelta("more"),
        TextDelta(" there"),
        Done(),
    ]


def test_ai_sdk_ui_message_stream_is_sniffed_from_a_custom_path() -> None:
    events = data(
        {"type": "start"},
        {"type": "reasoning-delta", "id": "r", "delta": "想一想"},
        {"type": "text-delta", "id": "t", "delta": "你好"},
        {"type": "finish"},
        "[DONE]",
    )
    assert run("custom", events) == [ReasoningDelta("想一想"), TextDelta("你好"), Done()]


def test_custom_typed_messages_are_not_taken_for_anthropic() -> None:
    events = data(
        {"type": "ping"},
        {"type": "message", "content": "你好"},
        {"type": "message", "content": "!"},
    )
    parser = make_parser("custom")
    deltas = [d for name, payload in events for d in parser.feed(payload, name)] + parser.end()
    assert deltas == [TextDelta("你好"), TextDelta("!"), Done()]
    assert parser.format == "custom"


@pytest.mark.parametrize(
    "key", ["text", "content", "delta", "token", "response", "answer", "message"]
)
def test_custom_text_fields(key: str) -> None:
    assert run("custom", data({key: "文本"}))[0] == TextDelta("文本")


def test_custom_done_flag() -> None:
    deltas = run(
        "custom", data({"text": "a", "done": False}, {"text": "b", "done": True}), clean=False
    )
    assert deltas == [TextDelta("a"), TextDelta("b"), Done()]


@pytest.mark.parametrize(
    "events", [data({"foo": 1}, {"bar": 2}), [("status", "working"), ("status", "still")]]
)
def test_custom_stream_without_any_text_is_explained(events: list[Event]) -> None:
    error = error_of(run("custom", events))
    assert error.kind == "protocol"
    assert "no text found" in error.message
    assert ("foo" in error.message) or ("working" in error.message)


# ---------------------------------------------------------------------------
# Auto-detection: the payloads decide the format


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_custom_hint_sniffs_every_format(recording: Recording) -> None:
    parser = make_parser("custom", recording.content_type)
    deltas = [d for name, payload in recording.events for d in parser.feed(payload, name)]
    deltas += parser.end()
    assert deltas == recording.expected
    expected_format = "ollama" if recording.provider.startswith("ollama") else recording.provider
    assert parser.format == expected_format


@pytest.mark.parametrize("recording", STRUCTURED, ids=ids)
def test_payload_shape_wins_over_a_wrong_hint(recording: Recording) -> None:
    hints = NDJSON_HINTS if recording.ndjson else SSE_HINTS
    assert len(hints) >= 2
    for hint in hints:
        assert run(hint, recording.events, recording.content_type) == recording.expected, hint


def test_body_framed_unlike_the_provider_is_read_as_custom() -> None:
    # A home-made server at /api/chat (an Ollama path) that sends SSE text.
    assert run("ollama-chat", CUSTOM_TEXT.events, "text/event-stream") == CUSTOM_TEXT.expected
    # An OpenAI-path server that answers in NDJSON.
    assert run("openai", OLLAMA_CHAT.events, "application/x-ndjson") == OLLAMA_CHAT.expected


# ---------------------------------------------------------------------------
# One whole JSON document (a server that ignored `stream: true`)


WHOLE = [
    pytest.param(
        "openai",
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "你好 👋",
                        "reasoning_content": "想",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
        [
            ReasoningDelta("想"),
            TextDelta("你好 👋"),
            ToolCallDelta(0, "c1", "f", "{}"),
            Usage(3, 4),
            Done("stop"),
        ],
        id="openai",
    ),
    pytest.param(
        "anthropic",
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "想", "signature": "s"},
                {"type": "text", "text": "你好 👋"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 10, "output_tokens": 4},
        },
        [
            ReasoningDelta("想"),
            TextDelta("你好 👋"),
            ToolCallDelta(2, "toolu_1", "f", '{"x": 1}'),
            Usage(13, 4),
            Done("end_turn"),
        ],
        id="anthropic",
    ),
    pytest.param(
        "openai-responses",
        {
            **_RESPONSE,
            "status": "completed",
            "output": [
                {
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "a"}, {"text": "b"}],
                },
                {"type": "message", "content": [{"type": "output_text", "text": "你好 👋"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ],
            "usage": {"input_tokens": 3, "output_tokens": 4},
        },
        [
            ReasoningDelta("a\n\nb"),
            TextDelta("你好 👋"),
            ToolCallDelta(2, "c", "f", "{}"),
            Usage(3, 4),
            Done("completed"),
        ],
        id="responses",
    ),
    pytest.param(
        "gemini",
        [json.loads(payload) for _, payload in GEMINI.events],
        GEMINI.expected,
        id="gemini-array",
    ),
    pytest.param(
        "ollama-chat",
        {
            **_OLLAMA,
            "message": {"role": "assistant", "content": "你好 👋"},
            "done": True,
            "eval_count": 2,
        },
        [TextDelta("你好 👋"), Usage(None, 2), Done()],
        id="ollama",
    ),
    pytest.param("custom", {"answer": "42 🎯"}, [TextDelta("42 🎯"), Done()], id="custom"),
]


@pytest.mark.parametrize(("provider", "document", "expected"), WHOLE)
def test_whole_json_document(provider: str, document: object, expected: list[Delta]) -> None:
    assert wire_format(provider, "application/json") == "json"
    body = json.dumps(document, ensure_ascii=False, indent=2)
    assert run(provider, [("message", body)], "application/json") == expected


def test_ndjson_labelled_as_json_is_read_line_by_line() -> None:
    body = "\n".join(payload for _, payload in OLLAMA_CHAT.events)
    deltas = run("ollama-chat", [("message", body)], "application/json")
    assert deltas == OLLAMA_CHAT.expected


# ---------------------------------------------------------------------------
# Over real HTTP: a loopback server, httpx, the SSE/NDJSON decoders, random chunkings


def awkward_cuts(body: bytes) -> set[int]:
    """Cuts inside a 4-byte character (emoji), inside a 3-byte one (CJK) and inside CRLF."""
    four = [i + 1 for i, byte in enumerate(body) if byte >= 0xF0][:1]
    three = [i + 2 for i, byte in enumerate(body) if 0xE0 <= byte < 0xF0][:1]
    crlf = [body.index(b"\r\n") + 1] if b"\r\n" in body else []
    return {*four, *three, *crlf}


def chunked(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = {rng.randrange(1, len(body)) for _ in range(rng.randint(5, 80))} | awkward_cuts(body)
    bounds = [0, *sorted(cuts), len(body)]
    return [body[start:end] for start, end in itertools.pairwise(bounds)]


def decode(chunks: Iterator[bytes], parser: StreamParser, wire: str, out: list[Delta]) -> None:
    if wire == "json":
        out += parser.feed(b"".join(chunks).decode("utf-8", "replace"))
    elif wire == "sse":
        events = EventStreamDecoder()
        for chunk in chunks:
            for event in events.feed(chunk):
                out += parser.feed(event.data, event.event)
    else:
        lines = NDJSONDecoder()
        for chunk in chunks:
            for line in lines.feed(chunk):
                out += parser.feed(line)
        for line in lines.end():
            out += parser.feed(line)


def fetch(request: ChatRequest) -> tuple[list[Delta], StreamParser]:
    """Stream one answer with httpx's sync client, as raw bytes, into the decoders."""
    out: list[Delta] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            request.method, request.url, headers=request.headers, json=request.json
        ) as response,
    ):
        content_type = response.headers.get("content-type")
        parser = make_parser(request.provider, content_type)
        clean = True
        try:
            decode(response.iter_raw(), parser, wire_format(request.provider, content_type), out)
        except httpx.RemoteProtocolError:
            clean = False
        out += parser.end(clean)
    assert_one_terminal(out)
    return out, parser


@pytest.fixture(scope="module")
def http() -> Iterator[LoopbackServer]:
    """One loopback server for the module: each server's shutdown polls for 0.5 s, and
    these tests start ~150 streams. Each test routes its own script and reads the last
    request received."""
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.close()


def serve(server: LoopbackServer, path: str, recording: Recording, **script: object) -> str:
    headers = {"Content-Type": recording.content_type}
    return server.route(path, Script(headers=headers, **script))  # type: ignore[arg-type]


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_over_http_in_random_chunks(
    http: LoopbackServer, recording: Recording, newline: str, seed: int
) -> None:
    body = recording.body(newline)
    assert len(awkward_cuts(body)) == (2 if newline == "\n" else 3)
    chunks = chunked(body, seed)
    url = serve(http, recording.path, recording, chunks=chunks)
    deltas, parser = fetch(build_request(url, [{"role": "user", "content": "你好"}], api_key="k"))
    assert deltas == recording.expected
    assert parser.done
    sent = http.received[-1]
    assert sent.headers["Accept"] == (
        "application/x-ndjson" if recording.ndjson else "text/event-stream"
    )
    assert sent.headers["Accept-Encoding"] == "identity"
    if recording.provider == "gemini":  # streaming is asked for in the URL
        assert sent.path.endswith(":streamGenerateContent?alt=sse")
    else:
        assert sent.json()["stream"] is True  # type: ignore[index]


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_over_http_one_byte_at_a_time(http: LoopbackServer, recording: Recording) -> None:
    body = recording.body("\r\n")
    url = serve(http, recording.path, recording, chunks=[body[i : i + 1] for i in range(len(body))])
    deltas, _ = fetch(build_request(url, [{"role": "user", "content": "hi"}]))
    assert deltas == recording.expected


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_over_http_auto_detects_at_an_unknown_path(
    http: LoopbackServer, recording: Recording
) -> None:
    url = serve(http, "/my/stream", recording, chunks=chunked(recording.body(), 7))
    request = build_request(url, [{"role": "user", "content": "hi"}])
    assert request.provider == "custom"
    deltas, _ = fetch(request)
    assert deltas == recording.expected
    assert http.received[-1].json()["prompt"] == "hi"  # type: ignore[index]


@pytest.mark.parametrize("recording", RECORDINGS, ids=ids)
def test_over_http_connection_cut_before_the_marker(
    http: LoopbackServer, recording: Recording
) -> None:
    chunks = chunked(recording.body(), 11)
    cut = len(chunks) * 2 // 3
    url = serve(http, recording.path, recording, chunks=chunks, cut_after=cut)
    deltas, parser = fetch(build_request(url, [{"role": "user", "content": "hi"}]))
    received = content(deltas)
    assert received == content(recording.expected)[: len(received)]
    assert error_of(deltas).kind == "incomplete"
    assert not parser.done


@pytest.mark.parametrize("recording", STRUCTURED, ids=ids)
def test_over_http_clean_end_before_the_marker(http: LoopbackServer, recording: Recording) -> None:
    events = recording.events[: len(recording.events) // 2]
    body = Recording(**{**recording.__dict__, "events": events}).body()
    url = serve(http, recording.path, recording, chunks=chunked(body, 5))
    deltas, _ = fetch(build_request(url, [{"role": "user", "content": "hi"}]))
    assert content(deltas) == content(run(recording.provider, events))
    assert error_of(deltas).kind == "incomplete"


def test_over_http_gemini_without_alt_sse_is_one_json_array(http: LoopbackServer) -> None:
    array = json.dumps([json.loads(p) for _, p in GEMINI.events], ensure_ascii=False, indent=1)
    chunks = chunked(array.encode(), 3)
    url = http.route(GEMINI.path, Script(chunks, headers={"Content-Type": "application/json"}))
    deltas, _ = fetch(build_request(url + "?alt=json", [{"role": "user", "content": "hi"}]))
    assert deltas == GEMINI.expected
    assert http.received[-1].path.endswith("?alt=json")


def test_over_http_html_login_page_with_status_200(http: LoopbackServer) -> None:
    page = b"<html><head><title>Sign in - Corp SSO</title></head><body>...</body></html>"
    url = http.route(OPENAI.path, Script([page], headers={"Content-Type": "text/html"}))
    deltas, _ = fetch(build_request(url, [{"role": "user", "content": "hi"}]))
    error = error_of(deltas)
    assert error.kind == "protocol"
    assert "Sign in - Corp SSO" in error.message


def test_over_http_sends_each_providers_request(http: LoopbackServer) -> None:
    for recording in RECORDINGS:
        url = serve(http, recording.path, recording, chunks=[recording.body()])
        request = build_request(url, [{"role": "user", "content": "hi"}], api_key="secret-k")
        fetch(request)
        sent = http.received[-1]
        assert sent.json() == request.json, recording.name
        for name, value in request.headers.items():
            assert sent.headers[name] == value, (recording.name, name)
