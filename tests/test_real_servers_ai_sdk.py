"""A Vercel AI SDK app on loopback (tests/servers/node), in front of the demo server.

The app is what the AI SDK docs teach: `streamText(...)` with an OpenAI-compatible
model, answered as `toUIMessageStreamResponse()` (the UI message stream `useChat`
reads) or `toTextStreamResponse()` (unframed text). The demo server behind it answers
`answer_for(prompt)`, so every answer is known to the byte.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamchat import StreamChat
from streamchat.deltas import Done, StreamError, Usage
from streamchat.providers import build_request
from streamchat.server import answer_for, tokens

from answers import collect, text_of
from servers.real import Process

pytestmark = pytest.mark.real_servers

CLI = [sys.executable, "-m", "streamchat.cli"]


def chat_cli(url: str, prompt: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "chat", url, prompt, "--speed", "0", *options],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("options", [["--provider", "ai-sdk"], []], ids=["ai-sdk", "auto"])
def test_cli_reads_the_ui_message_stream(ai_sdk_app: Process, options: list[str]) -> None:
    # Without --provider, /api/chat sends the Ollama body (which carries UIMessage parts
    # too) and the response's x-vercel-ai-ui-message-stream header picks the reader.
    result = chat_cli(ai_sdk_app.base_url + "/api/chat", "Tell me about streams", *options)
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer_for("Tell me about streams")


def test_cli_reads_the_text_stream(ai_sdk_app: Process) -> None:
    result = chat_cli(ai_sdk_app.base_url + "/api/text", "Plain, please", "--provider", "ai-sdk")
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer_for("Plain, please")


def test_finish_reason_and_token_counts_arrive(ai_sdk_app: Process) -> None:
    request = build_request(
        ai_sdk_app.base_url + "/api/chat",
        [{"role": "user", "content": "Count"}],
        provider="ai-sdk",
    )
    deltas = collect(request)
    text = text_of(deltas)
    assert text == answer_for("Count")
    assert deltas[-1] == Done("stop")
    usage = [d for d in deltas if isinstance(d, Usage)]
    # The demo server counts its tokens and says 12 for the prompt; the SDK passes both on.
    assert usage == [Usage(12, len(list(tokens(text))), 0)]


@pytest.mark.parametrize("route", ["/api/chat", "/api/text"])
def test_streamchat_two_turns(ai_sdk_app: Process, route: str) -> None:
    chat = StreamChat(ai_sdk_app.base_url + route, provider="ai-sdk", speed=0)
    try:
        for prompt in ("First question", "Second question"):
            chat.ask(prompt)
            assert chat.wait(30)
            assert chat.turns[-1]["status"] == "done", chat.turns[-1]
            assert chat.messages[-1] == {"role": "assistant", "content": answer_for(prompt)}
        if route == "/api/chat":
            assert chat.stats["finish_reason"] == "stop"
    finally:
        chat.close()


def test_an_error_chunk_is_an_error_with_its_text(ai_sdk_app: Process) -> None:
    result = chat_cli(ai_sdk_app.base_url + "/api/fail", "Hello?", "--provider", "ai-sdk")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the model backend is unreachable" in result.stderr
    assert "errorText" not in result.stderr  # the message, not the raw JSON


def test_an_error_chunk_shows_in_the_bubble(ai_sdk_app: Process) -> None:
    request = build_request(
        ai_sdk_app.base_url + "/api/fail", [{"role": "user", "content": "Hi"}], provider="ai-sdk"
    )
    error = collect(request)[-1]
    assert isinstance(error, StreamError)
    assert error.kind == "provider"
    assert "the model backend is unreachable" in error.message
    chat = StreamChat(ai_sdk_app.base_url + "/api/fail", provider="ai-sdk", speed=0)
    try:
        chat.ask("Hi")
        assert chat.wait(30)
        assert chat.turns[-1]["status"] == "error"
        assert "the model backend is unreachable" in chat.turns[-1]["error"]
    finally:
        chat.close()
