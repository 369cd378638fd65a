"""Failures read as plain words first, then the fix, then the technical detail."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from streamchat._explain import explain
from streamchat.deltas import ErrorKind, StreamError

from loopback import LoopbackServer, Script, sse

JARGON = ("HTTP", "chunked", "ERR_", "protocol", "encoding", "idle", "ECONN", "errno")


@pytest.mark.parametrize("kind", typing.get_args(ErrorKind))
def test_every_kind_has_plain_words_and_a_fix(kind: ErrorKind) -> None:
    error = StreamError(kind, "technical detail", status=500 if kind == "http" else None)
    told = explain(error)
    assert told.what.endswith(".") and told.fix.endswith(".")
    assert not any(word in told.what for word in JARGON), told.what
    assert told.detail == "technical detail"
    assert str(told) == f"{told.what}\n{told.fix}\ntechnical detail"


def test_a_401_names_the_key_variable_and_the_option() -> None:
    error = StreamError("http", "HTTP 401 Unauthorized: Incorrect API key", status=401)
    told = explain(error, provider="openai")
    assert told.what == "The server refused the API key."
    assert "OPENAI_API_KEY" in told.fix and "api_key=" in told.fix
    assert told.detail == error.message
    assert "ANTHROPIC_API_KEY" in explain(error, provider="anthropic").fix
    custom = explain(error, provider="custom")
    assert "API_KEY" not in custom.fix and "api_key=" in custom.fix
    assert "--header" in explain(error, provider="openai", audience="terminal").fix


@pytest.mark.parametrize(
    ("provider", "header"),
    [
        ("openai", "'Authorization: Bearer ...'"),
        ("anthropic", "'x-api-key: ...'"),
        ("gemini", "'x-goog-api-key: ...'"),
        ("custom", "'Authorization: Bearer ...'"),
        (None, "'Authorization: Bearer ...'"),
    ],
)
def test_a_401_in_the_terminal_names_the_providers_key_header(
    provider: str | None, header: str
) -> None:
    """Anthropic and Gemini refuse a Bearer token: the fix names the header they read."""
    error = StreamError("http", "HTTP 401 Unauthorized", status=401)
    assert f"--header {header}" in explain(error, provider=provider, audience="terminal").fix


def test_a_cut_stream_says_so_before_the_jargon() -> None:
    message = (
        "the connection closed before the stream ended (incomplete chunked encoding, what"
        " browsers call ERR_INCOMPLETE_CHUNKED_ENCODING): peer closed connection"
    )
    text = str(explain(StreamError("incomplete", message)))
    assert text.startswith("The connection closed before the answer was complete.\nRetry.")
    assert text.endswith(message)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "refused access"),
        (404, "no such endpoint or model"),
        (429, "limiting requests"),
        (400, "rejected the request"),
        (503, "could not get an answer"),
        (500, "failed while answering"),
    ],
)
def test_http_statuses(status: int, words: str) -> None:
    assert words in explain(StreamError("http", f"HTTP {status}", status=status)).what


def test_rate_limit_says_how_long_to_wait() -> None:
    told = explain(StreamError("http", "HTTP 429", status=429, retry_after=20.0))
    assert "wait 20 s" in told.fix


def test_cli_prints_the_plain_words_first(server: LoopbackServer) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script(
            [b'{"error": {"message": "Incorrect API key provided"}}'],
            status=401,
            headers={"Content-Type": "application/json"},
        ),
    )
    command = [sys.executable, "-m", "streamchat.cli", "chat", url, "q", "--speed", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "streamchat: The server refused the API key."
    assert lines[1].startswith("  Check the key:") and "--header" in lines[1]
    assert lines[2].startswith("  error (http): HTTP 401")
    assert "Incorrect API key provided" in lines[2]


def test_cli_cut_stream(server: LoopbackServer) -> None:
    chunks = sse({"choices": [{"index": 0, "delta": {"content": "Partial"}}]})
    url = server.route("/v1/chat/completions", Script(chunks, cut_after=1))
    command = [sys.executable, "-m", "streamchat.cli", "chat", url, "q", "--speed", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.stdout == "Partial"
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "streamchat: The connection closed before the answer was complete."
    assert "error (incomplete)" in lines[2]
