"""Formats real servers send that used to lose text: whitespace tokens, text/plain bodies,
the AI SDK's UI message stream, llama.cpp's native /completion, Responses history items.

Each is served over real HTTP by the loopback server, in the shape the software sends
(the other half of issue 9 runs the software itself).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from streamchat._framing import Framer, Payload
from streamchat.deltas import (
    Done,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    Usage,
    merge_tool_calls,
)
from streamchat.providers import build_request, make_parser

from answers import collect, text_of
from loopback import LoopbackServer, Script, sse

TOKENS = ["Hello", ",", " ", "world", "!", "\n", "- one", "\n", "- two", "\t", "\n\n", "end"]
ANSWER = "".join(TOKENS)


def sse_lines(token: str) -> bytes:
    """How sse-starlette frames a token: one `data:` line per line of it."""
    return ("".join(f"data: {line}\r\n" for line in token.split("\n")) + "\r\n").encode()


# -- whitespace tokens in plain-text SSE ---------------------------------------------------


def test_whitespace_tokens_are_kept_in_plain_text_sse(server: LoopbackServer) -> None:
    """FastAPI's usual `data: {token}\\n\\n` for tokens without line breaks."""
    tokens = [token for token in TOKENS if "\n" not in token]
    chunks = [f"data: {token}\n\n".encode() for token in tokens]
    deltas = collect(server.route("/stream", Script(chunks)))
    assert text_of(deltas) == "".join(tokens)
    assert deltas[-1] == Done()


def test_line_break_tokens_are_kept_with_crlf(server: LoopbackServer) -> None:
    """sse-starlette's EventSourceResponse: CRLF, a token's lines as several data lines."""
    chunks = [sse_lines(token) for token in TOKENS]
    deltas = collect(server.route("/stream", Script(chunks)))
    assert text_of(deltas) == ANSWER
    assert deltas[-1] == Done()


def test_keep_alives_are_comments_and_empty_data(server: LoopbackServer) -> None:
    chunks = [b": ping\n\n", b"data:\n\n", b"data: Hi\n\n", b"data:\n\n", b"data:  \n\n"]
    chunks += [b": ping\n\n", b"data: there\n\n"]
    assert text_of(collect(server.route("/stream", Script(chunks)))) == "Hi there"


def test_whitespace_between_json_events_is_not_text() -> None:
    parser = make_parser("openai", "text/event-stream")
    chunk = {"choices": [{"index": 0, "delta": {"content": "a"}}]}
    deltas = parser.feed(json.dumps(chunk)) + parser.feed("  ") + parser.feed(json.dumps(chunk))
    assert deltas == [TextDelta("a"), TextDelta("a")]


# -- unframed text bodies ----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", None, "text/markdown"])
def test_text_plain_body_streams_as_text(server: LoopbackServer, content_type: str | None) -> None:
    """FastAPI's StreamingResponse(media_type="text/plain"), toTextStreamResponse()."""
    headers = {"Content-Type": content_type} if content_type else {}
    chunks = [token.encode() for token in ["你", "好 ", *TOKENS]]
    chunks[0:2] = [chunks[0][:2], chunks[0][2:] + chunks[1]]  # a character cut in two
    deltas = collect(server.route("/api/chat", Script(chunks, headers=headers)))
    assert text_of(deltas) == "你好 " + ANSWER
    assert deltas[-1] == Done()
    assert sum(isinstance(d, TextDelta) for d in deltas) > 5  # streamed, not one lump


def test_text_that_looks_like_json_or_a_marker_is_text(server: LoopbackServer) -> None:
    chunks = [b"Answer: ", b"[DONE]", b" ", b'{"a": 1}', b"\n"]
    url = server.route(
        "/v1/chat/completions", Script(chunks, headers={"Content-Type": "text/plain"})
    )
    deltas = collect(url)
    assert text_of(deltas) == 'Answer: [DONE] {"a": 1}\n'
    assert deltas[-1] == Done()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", [b"data: Hel", b"lo\n\n", b"data: [DONE]\n\n"]),
        (None, [b"\n", b"da", b"ta: Hello\n\n"]),
        ("application/octet-stream", [b'{"message": {"content": "Hello"}, "done": false}\n']),
    ],
)
def test_mislabelled_streams_are_framed_by_their_first_bytes(
    server: LoopbackServer, content_type: str | None, body: list[bytes]
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    deltas = collect(server.route("/stream", Script(body, headers=headers)))
    assert text_of(deltas) == "Hello"


@pytest.mark.parametrize("content_type", ["text/plain", "text/event-stream", None])
def test_a_body_with_no_answer_is_an_error(server: LoopbackServer, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    deltas = collect(server.route("/stream", Script([b""], headers=headers)))
    assert len(deltas) == 1 and isinstance(deltas[0], StreamError)
    assert "no answer" in deltas[0].message
    assert (content_type or "without Content-Type") in deltas[0].message


def test_cli_exits_non_zero_on_an_empty_text_body(server: LoopbackServer) -> None:
    url = server.route("/generate", Script([], headers={"Content-Type": "text/plain"}))
    result = subprocess.run(
        [sys.executable, "-m", "streamchat.cli", "chat", url, "q", "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "no answer" in result.stderr


def test_framer_decides_late_and_keeps_held_bytes() -> None:
    framer = Framer("text")
    assert framer.feed(b"\n\n") == []
    assert framer.feed(b"ev") == []
    assert framer.feed(b"ent: x\ndata: 1\n\n") == [Payload("1", "x")]
    assert framer.wire == "sse"
    plain = Framer("text")
    assert plain.feed(b" ") == []
    assert plain.feed(b"\xe4\xbd") == [Payload(" ", None)]
    assert plain.feed(b"\xa0!") == [Payload("你!", None)]
    assert plain.end() == []


def test_framer_bounds_what_it_holds() -> None:
    framer = Framer("text")
    assert framer.feed(b" " * 5000) == [Payload(" " * 5000, None)]
    assert framer.wire == "plain"


# -- the AI SDK's UI message stream ------------------------------------------------------

AI_SDK_HEADERS = {
    "Content-Type": "text/event-stream",
    "x-vercel-ai-ui-message-stream": "v1",
}
AI_SDK_STREAM = sse(
    {"type": "start", "messageId": "msg-1"},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "r1"},
    {"type": "reasoning-delta", "id": "r1", "delta": "Think "},
    {"type": "reasoning-delta", "id": "r1", "delta": "first."},
    {"type": "reasoning-end", "id": "r1"},
    {"type": "text-start", "id": "t1"},
    {"type": "text-delta", "id": "t1", "delta": "Hello"},
    {"type": "text-delta", "id": "t1", "delta": " "},
    {"type": "text-delta", "id": "t1", "delta": "世界"},
    {"type": "text-end", "id": "t1"},
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":'},
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '"Paris"}'},
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "weather", "input": {}},
    {"type": "tool-input-available", "toolCallId": "c2", "toolName": "time", "input": {"tz": 1}},
    {"type": "finish-step"},
    {
        "type": "finish",
        "finishReason": "tool-calls",
        "messageMetadata": {"totalUsage": {"inputTokens": 9, "outputTokens": 7}},
    },
    "[DONE]",
)


def test_ai_sdk_stream_reads_every_part(server: LoopbackServer) -> None:
    url = server.route("/api/chat", Script(AI_SDK_STREAM, headers=AI_SDK_HEADERS))
    deltas = collect(url)
    assert text_of(deltas) == "Hello 世界"
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == "Think first."
    assert merge_tool_calls(deltas) == [
        ToolCall(0, "c1", "weather", '{"city":"Paris"}'),
        ToolCall(1, "c2", "time", '{"tz": 1}'),
    ]
    assert deltas[-2:] == [Usage(9, 7), Done("tool-calls")]


def test_ai_sdk_stream_is_recognised_without_its_header(server: LoopbackServer) -> None:
    url = server.route("/api/stream", Script(AI_SDK_STREAM))
    deltas = collect(url)
    assert text_of(deltas) == "Hello 世界"
    assert deltas[-1] == Done("tool-calls")


def test_ai_sdk_error_shows_its_text_and_keeps_the_partial(server: LoopbackServer) -> None:
    chunks = sse(
        {"type": "start"},
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "Partial"},
        {"type": "error", "errorText": "Rate limit exceeded for model x"},
    )
    deltas = collect(server.route("/api/chat", Script(chunks, headers=AI_SDK_HEADERS)))
    assert text_of(deltas) == "Partial"
    assert deltas[-1] == StreamError("provider", "Rate limit exceeded for model x")


def test_ai_sdk_stream_without_done_is_incomplete(server: LoopbackServer) -> None:
    chunks = sse({"type": "start"}, {"type": "text-delta", "id": "t", "delta": "cut"})
    deltas = collect(server.route("/api/chat", Script(chunks, headers=AI_SDK_HEADERS)))
    assert isinstance(deltas[-1], StreamError) and deltas[-1].kind == "incomplete"
    assert "ai-sdk" in deltas[-1].message


def test_ai_sdk_request_sends_ui_messages(server: LoopbackServer) -> None:
    url = server.route("/api/assistant", Script(AI_SDK_STREAM, headers=AI_SDK_HEADERS))
    request = build_request(
        url,
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        provider="ai-sdk",
        system="Be brief.",
    )
    assert text_of(collect(request)) == "Hello 世界"
    body = server.received[-1].json()
    assert body["messages"] == [
        {"id": "m1", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
        {"id": "m2", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
        {"id": "m3", "role": "assistant", "parts": [{"type": "text", "text": "yo"}]},
    ]
    assert body["trigger"] == "submit-message"


def test_api_chat_body_also_fits_the_ai_sdk_stock_route() -> None:
    """`/api/chat` is Ollama's path and the AI SDK's: one body carries both shapes."""
    body = build_request("http://h/api/chat", [{"role": "user", "content": "hi"}]).json
    assert body is not None
    assert body["messages"] == [
        {"role": "user", "content": "hi", "parts": [{"type": "text", "text": "hi"}]}
    ]


def test_a_plain_500_is_not_retried(server: LoopbackServer) -> None:
    error = Script(
        [b'{"error": "messages[0].parts is not iterable"}'],
        status=500,
        headers={"Content-Type": "application/json"},
    )
    deltas = collect(server.route("/api/chat", error), retries=2)
    assert len(server.received) == 1
    assert isinstance(deltas[-1], StreamError) and "parts is not iterable" in deltas[-1].message


def test_a_503_is_retried(server: LoopbackServer) -> None:
    busy = Script([b"busy"], status=503, headers={"Content-Type": "text/plain", "Retry-After": "0"})
    deltas = collect(
        server.route("/api/chat", busy, Script(AI_SDK_STREAM, headers=AI_SDK_HEADERS)), retries=2
    )
    assert len(server.received) == 2
    assert text_of(deltas) == "Hello 世界"


# -- llama.cpp's native /completion ------------------------------------------------------


def test_llama_cpp_completion_reads_stop_and_token_counts(server: LoopbackServer) -> None:
    pieces = ["Hello", " ", "there", "\n"]
    chunks = sse(
        *({"index": 0, "content": piece, "tokens": [1], "stop": False} for piece in pieces),
        {
            "index": 0,
            "content": "",
            "stop": True,
            "stop_type": "limit",
            "stopping_word": "",
            "tokens_predicted": 4,
            "tokens_evaluated": 11,
            "timings": {"prompt_n": 11, "predicted_n": 4},
        },
    )
    deltas = collect(server.route("/completion", Script(chunks)))
    assert text_of(deltas) == "Hello there\n"
    assert deltas[-2:] == [Usage(11, 4), Done("length")]


def test_llama_cpp_cut_before_stop_is_incomplete(server: LoopbackServer) -> None:
    chunks = sse({"content": "Hel", "stop": False})
    deltas = collect(server.route("/completion", Script(chunks)))
    assert isinstance(deltas[-1], StreamError) and '"stop": true' in deltas[-1].message


# -- Responses API history ---------------------------------------------------------------


def test_responses_history_items_say_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "again"},
    ]
    body = build_request("http://h/v1/responses", messages).json
    assert body is not None
    assert body["instructions"] == "Be brief."
    assert body["input"] == [
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "message", "role": "assistant", "content": "Hello!"},
        {"type": "message", "role": "user", "content": "again"},
    ]


# -- the doctor reads bodies the way the transport does ----------------------------------


def test_doctor_reads_a_text_plain_answer_as_a_stream(server: LoopbackServer) -> None:
    from streamchat.doctor import diagnose

    chunks = [token.encode() for token in TOKENS]
    url = server.route(
        "/generate", Script(chunks, pause=0.02, headers={"Content-Type": "text/plain"})
    )
    diagnosis = diagnose(url, timeout=20)
    assert diagnosis.measurements.wire == "plain"
    assert len(diagnosis.measurements.events) > 5
    assert "content-type" not in diagnosis.ids
    assert diagnosis.verdict == "ok"


def test_doctor_names_an_event_stream_served_as_text_plain(server: LoopbackServer) -> None:
    from streamchat.doctor import diagnose

    chunks = [f"data: {token}\n\n".encode() for token in ["Hello", " ", "world"]]
    url = server.route("/stream", Script(chunks, headers={"Content-Type": "text/plain"}))
    diagnosis = diagnose(url, timeout=20)
    assert diagnosis.measurements.wire == "sse"
    finding = next(f for f in diagnosis.findings if f.id == "content-type")
    assert "not text/event-stream" in finding.message
