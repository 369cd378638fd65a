"""The CLI and the demo server, as a person runs them: real processes, real sockets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from streamchat.deltas import Done, TextDelta, Usage
from streamchat.providers import build_request
from streamchat.server import DemoServer, answer_for, tokens
from streamchat.transport import stream_deltas

from loopback import LoopbackServer, Script, sse

CLI = [sys.executable, "-m", "streamchat.cli"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fast_demo() -> Iterator[DemoServer]:
    with DemoServer(rate=0) as server:
        yield server


def test_demo_answer_exercises_everything() -> None:
    answer = answer_for("*inject* `snippet` [x](javascript:alert(1))")
    for piece in ("## ", "| Transport |", "```python", "> ", "中文", "👨‍👩‍👧‍👦", "- [x]", "1. "):
        assert piece in answer
    assert "\\*inject\\*" in answer
    assert "[x](javascript" not in answer
    assert "".join(tokens(answer)) == answer


def test_demo_server_streams_openai_format(fast_demo: DemoServer) -> None:
    request = build_request(fast_demo.url, [{"role": "user", "content": "hello"}])

    async def run() -> list:
        return [delta async for delta in stream_deltas(request)]

    deltas = asyncio.run(run())
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert text == answer_for("hello")
    assert any(isinstance(d, Usage) and d.output_tokens for d in deltas)
    assert deltas[-1] == Done("stop")


def test_demo_server_sends_anti_buffering_headers(fast_demo: DemoServer) -> None:
    with httpx.stream("POST", fast_demo.url, json={"messages": []}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in response.headers
    assert httpx.post(fast_demo.url, content=b"{not json").status_code == 400
    assert httpx.get(fast_demo.base_url + "/models").json()["data"][0]["id"]


def test_chat_prints_exactly_the_answer(fast_demo: DemoServer) -> None:
    result = run_cli("chat", fast_demo.url, "Hello there", "--speed", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer_for("Hello there")


def test_chat_paced_output_is_identical(fast_demo: DemoServer) -> None:
    result = run_cli("chat", fast_demo.url, "pace", "--speed", "4000", "--step", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer_for("pace")


def test_reasoning_goes_to_stderr(server: LoopbackServer) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Let me think."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Answer."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )
    url = server.route("/v1/chat/completions", Script(chunks))
    result = run_cli("chat", url, "q", "--speed", "0", "--header", "X-Trace: 42", "--system", "S")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Answer."
    assert "Let me think." in result.stderr
    sent = server.received[0]
    assert sent.headers["X-Trace"] == "42"
    assert sent.json()["messages"][0] == {"role": "system", "content": "S"}


def test_broken_stream_keeps_partial_and_fails(server: LoopbackServer) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"content": "Partial "}}]},
        {"choices": [{"index": 0, "delta": {"content": "answer"}}]},
    )
    url = server.route("/v1/chat/completions", Script(chunks, cut_after=2))
    result = run_cli("chat", url, "q", "--speed", "0")
    assert result.returncode == 1
    assert result.stdout == "Partial answer"
    assert "incomplete" in result.stderr


def test_http_error_message_on_stderr(server: LoopbackServer) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script(
            [b'{"error": {"message": "model not found"}}'],
            status=404,
            headers={"Content-Type": "application/json"},
        ),
    )
    result = run_cli("chat", url, "q", "--speed", "0")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "HTTP 404" in result.stderr
    assert "model not found" in result.stderr


def test_bad_header_argument() -> None:
    result = run_cli("chat", "http://127.0.0.1:9/x", "q", "--header", "nocolon")
    assert result.returncode != 0
    assert "K:V" in result.stderr


def test_serve_then_chat() -> None:
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--rate", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stderr is not None
        banner = serve.stderr.readline()
        url = banner.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        result = run_cli("chat", url, "via serve", "--speed", "0")
        assert result.returncode == 0, result.stderr
        assert result.stdout == answer_for("via serve")
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def test_demo_command_streams_from_embedded_server() -> None:
    result = run_cli("demo", "terminal demo", "--speed", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == answer_for("terminal demo")


def test_piped_answer_keeps_every_byte_and_stderr_escapes_them(server: LoopbackServer) -> None:
    """A pipe gets the model's text exactly, controls included (scripts want the data);
    stderr, read by a person, shows them escaped, with the reasoning labelled."""
    hostile = "A\x1b]52;c;aGk=\x07 B\x1b]0;t\x07 C\r\x1b[2K D\x9b1m\x7f 中文 👨‍👩‍👧‍👦\r\n"
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "think\x1b]0;t\x07"}}]},
        *[{"choices": [{"index": 0, "delta": {"content": c}}]} for c in hostile],
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )
    url = server.route("/v1/chat/completions", Script(chunks))
    for extra in ([], ["--plain"]):
        result = subprocess.run(
            [*CLI, "chat", url, "q", "--speed", "0", *extra], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == hostile.encode()
        assert result.stderr.decode() == "reasoning:\nthink␛]0;t␇\n\n"


def test_error_message_from_the_server_is_escaped(server: LoopbackServer) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script(
            [b'{"error": {"message": "bad \\u001b]0;pwned\\u0007 model"}}'],
            status=400,
            headers={"Content-Type": "application/json"},
        ),
    )
    result = run_cli("chat", url, "q", "--speed", "0")
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "bad ␛]0;pwned␇ model" in result.stderr


def test_a_closed_pipe_ends_quietly(server: LoopbackServer) -> None:
    """`streamchat chat ... | head -c 10`: head leaves while the answer is still coming."""
    events = [{"choices": [{"index": 0, "delta": {"content": "0123456789 and more"}}]}] * 3
    chunks = sse(*events, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    url = server.route("/v1/chat/completions", Script(chunks, pause=[0, 1.0, 0, 0]))
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run(
        [*CLI, "chat", url, "q", "--speed", "0"],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert reader.communicate(timeout=10)[0] == b"0123456789"
    assert writer.returncode == 141, writer.stderr
    assert "Traceback" not in writer.stderr
