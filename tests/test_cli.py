"""The CLI and the demo server, as a person runs them: real processes, real sockets."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import streamchat
from streamchat.deltas import Done, Usage
from streamchat.providers import build_request
from streamchat.server import DemoServer, answer_for, tokens

from answers import collect, text_of
from loopback import LoopbackServer, Script, sse

CLI = [sys.executable, "-m", "streamchat.cli"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_demo_answer_exercises_everything() -> None:
    answer = answer_for("*inject* `snippet` [x](javascript:alert(1))")
    for piece in ("## ", "| Transport |", "```python", "> ", "中文", "👨‍👩‍👧‍👦", "- [x]", "1. "):
        assert piece in answer
    assert "\\*inject\\*" in answer
    assert "[x](javascript" not in answer
    assert "".join(tokens(answer)) == answer


def test_demo_server_streams_openai_format(fast_demo: DemoServer) -> None:
    request = build_request(fast_demo.url, [{"role": "user", "content": "hello"}])
    deltas = collect(request)
    assert text_of(deltas) == answer_for("hello")
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_the_library_never_imports_the_cli() -> None:
    """The CLI imports the library, never the reverse (not even lazily, in a function)."""
    package = Path(streamchat.__file__).parent
    importers = []
    for module in package.rglob("*.py"):
        if module.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                names = [base] + [f"{base}.{alias.name}".replace("..", ".") for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if any(name.endswith(".cli") or name == "streamchat.cli" for name in names):
                importers.append(module.name)
    assert importers == []


ANTHROPIC_ANSWER = sse(
    {"type": "message_start", "message": {"id": "m", "role": "assistant", "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
    {"type": "message_stop"},
)


def test_max_tokens_and_options_reach_the_request_body(server: LoopbackServer) -> None:
    url = server.route("/v1/messages", Script(ANTHROPIC_ANSWER))
    options = ["--option", "temperature=0.2", "--option", 'stop_sequences=["END"]']
    options += ["--option", 'metadata={"user_id": "u1"}', "--option", "service_tier=auto"]
    result = run_cli("chat", url, "q", "--speed", "0", "--max-tokens", "32", *options)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hi."
    body = server.received[0].json()
    assert body["max_tokens"] == 32  # not the default 4096
    assert body["temperature"] == 0.2  # JSON: a number
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u1"}
    assert body["service_tier"] == "auto"  # not JSON: the text itself
    assert body["stream"] is True  # the request's own fields are kept


def test_max_tokens_uses_each_providers_field(server: LoopbackServer) -> None:
    chunks = sse({"choices": [{"index": 0, "delta": {"content": "Hi."}}]}, "[DONE]")
    url = server.route("/v1/chat/completions", Script(chunks))
    result = run_cli("chat", url, "q", "--speed", "0", "--max-tokens", "7")
    assert result.returncode == 0, result.stderr
    assert server.received[0].json()["max_tokens"] == 7
    url = server.route("/v1/responses", Script([b"data: {}\n\n"]))
    run_cli("chat", url, "q", "--speed", "0", "--max-tokens", "9", "--retries", "0")
    body = server.received[1].json()
    assert body["max_output_tokens"] == 9
    assert "max_tokens" not in body


def test_an_option_overrides_the_max_tokens_field(server: LoopbackServer) -> None:
    url = server.route("/v1/messages", Script(ANTHROPIC_ANSWER))
    result = run_cli(
        "chat", url, "q", "--speed", "0", "--max-tokens", "32", "--option", "max_tokens=5"
    )
    assert result.returncode == 0, result.stderr
    assert server.received[0].json()["max_tokens"] == 5


def test_the_doctor_sends_max_tokens_and_options(server: LoopbackServer) -> None:
    url = server.route("/v1/messages", Script(ANTHROPIC_ANSWER))
    result = run_cli("doctor", url, "--json", "--max-tokens", "16", "--option", "top_k=3")
    assert result.returncode in (0, 1), result.stderr  # the verdict is not the point here
    body = server.received[0].json()
    assert (body["max_tokens"], body["top_k"]) == (16, 3)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (["--option", "novalue"], "KEY=VALUE"),
        (["--option", "=1"], "KEY=VALUE"),
        (["--max-tokens", "0"], "at least 1"),
        (["--max-tokens", "many"], "invalid"),
    ],
)
def test_bad_request_options_are_refused(argument: list[str], message: str) -> None:
    result = run_cli("chat", "http://127.0.0.1:9/x", "q", *argument)
    assert result.returncode != 0
    assert message in result.stderr


def run_in_terminal(args: list[str], columns: int, rows: int, timeout: float = 60) -> str:
    """Run the CLI in a pseudo-terminal of `columns` x `rows`; all it wrote, as text."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [*CLI, *args], stdin=terminal, stdout=terminal, stderr=terminal, env=environment
    )
    os.close(terminal)
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not data:
                break
            out += data
        elif process.poll() is not None:
            break
    process.kill()
    process.wait()
    os.close(controller)
    return out.decode("utf-8", "replace")


def test_a_terminal_that_reports_no_size_gets_80_columns(fast_demo: DemoServer) -> None:
    """Some CI runners, `script` and IDE consoles report 0x0: the answer still shows."""
    shown = run_in_terminal(["chat", fast_demo.url, "hi", "--speed", "0"], columns=0, rows=0)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert "Streaming, explained" in plain, plain[-2000:]
    assert "typed out token by token like a real model" in plain  # 80 columns: one line
