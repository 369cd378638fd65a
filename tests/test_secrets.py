"""No secret echoes: a server that repeats the request back never gets a key on screen.

The echo server below answers every request with everything it received (each
header, the URL) in four shapes: a 401 JSON error, a 200 SSE error event, a 200 HTML
page, and a long error body with the key near character 290 (where a message is cut
at 300). The key, a custom header and the URL's password must appear in none of:
widget state, comm messages, the transcript, logs at DEBUG, the doctor's text, JSON
and HTML, the CLI's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ipywidgets
import pytest

from streamchat._secrets import EchoMask, Secrets, mask_headers, mask_url, scrub
from streamchat.deltas import StreamError
from streamchat.doctor import diagnose
from streamchat.providers import build_request
from streamchat.transport import Retries, server_message, stream_deltas
from streamchat.widget import StreamChat
from test_widget import Capture

from answers import collect

KEY = "sk-echo-0123456789abcdefSECRET"
CUSTOM = "portal-4242-custom-value"  # a header whose name does not say "secret"
PASSWORD = "pw-9876-in-the-url"
SHAPES = ("401", "sse-error", "html", "long")
NO_RETRY = Retries(attempts=0)
HEADERS = ["--header", f"Authorization: Bearer {KEY}", "--header", f"X-Portal-Id: {CUSTOM}"]


def echo_of(handler: BaseHTTPRequestHandler) -> str:
    lines = [f"{handler.command} {handler.path}"]
    lines += [f"{name}: {value}" for name, value in handler.headers.items()]
    return " | ".join(lines)


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        shape = self.path.split("/")[1]
        echo = echo_of(self)
        if shape == "401":
            self._send(401, "application/json", json.dumps({"error": {"message": echo}}))
        elif shape == "sse-error":
            event = json.dumps({"error": {"message": f"rejected: {echo}"}})
            self._send(200, "text/event-stream", f"data: {event}\n\n")
        elif shape == "html":
            page = f"<html><title>Login</title><body><p>{echo}</p></body></html>"
            self._send(200, "text/html", page)
        elif shape == "answer":  # the model repeats the request, a few characters a chunk
            self._send(200, "text/event-stream", echoed_answer(echo))
        elif shape == "tool":  # ... into a tool call's arguments
            self._send(200, "text/event-stream", echoed_tool_call(echo))
        else:  # the key (the first secret header) near character 290
            auth = self.headers.get("Authorization", "")
            self._send(500, "text/plain", "x" * (290 - len("Bearer ")) + auth + " " + echo)

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def echoed_answer(echo: str) -> str:
    """An OpenAI stream whose reasoning and answer quote `echo`, cut into pieces of one to
    seven characters, so every secret in it is split across deltas somewhere."""
    events = []
    for field, text in (("reasoning_content", f"They sent {echo}."), ("content", echo)):
        at, size = 0, 1
        while at < len(text):
            delta = {field: text[at : at + size]}
            events.append({"choices": [{"index": 0, "delta": delta}]})
            at, size = at + size, size % 7 + 1
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"


def echoed_tool_call(echo: str) -> str:
    """An OpenAI stream that calls a tool with `echo` in its JSON arguments, cut into
    pieces of one to seven characters, beside a short answer."""
    arguments = json.dumps({"query": echo})
    events: list[dict[str, object]] = [{"choices": [{"index": 0, "delta": {"content": "Ok."}}]}]
    at, size = 0, 1
    while at < len(arguments):
        call: dict[str, object] = {"index": 0, "function": {"arguments": arguments[at : at + size]}}
        if at == 0:
            call.update(id="call_1", type="function")
            call["function"] = {"name": "lookup", "arguments": arguments[at : at + size]}
        events.append({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
        at, size = at + size, size % 7 + 1
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def url_for(host: str, shape: str) -> str:
    return f"http://reader:{PASSWORD}@{host}/{shape}/v1/chat/completions?key={KEY}x"


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (KEY, CUSTOM, PASSWORD):
            assert secret not in text
        # Nor a piece long enough to matter (a cut key): its first 12 characters.
        for secret in (KEY, CUSTOM, PASSWORD):
            assert secret[:12] not in text, text


@pytest.mark.parametrize("shape", SHAPES)
def test_widget_state_messages_transcript_and_logs(echo: str, shape: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    chat = StreamChat(
        url_for(echo, shape),
        api_key=KEY,
        headers={"X-Portal-Id": CUSTOM},
        retries=NO_RETRY,
        speed=0,
    )
    capture = Capture(chat)
    try:
        chat.ask("hi")
        assert chat.wait(20)
        assert chat.status == "error"
        error = chat.turns[-1]["error"]
        if shape != "html":  # the page's title is shown, not its echoing body
            assert "[redacted]" in error or "***" in error, error
        state = json.dumps(ipywidgets.Widget.get_manager_state(), default=str)
        assert_clean(state, capture.raw(), chat.transcript, caplog.text, repr(chat), error)
    finally:
        chat.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_doctor_text_json_and_html(echo: str, shape: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    diagnosis = diagnose(
        url_for(echo, shape), api_key=KEY, headers={"X-Portal-Id": CUSTOM}, timeout=10
    )
    assert diagnosis.verdict != "ok"
    texts = (
        diagnosis.render_text(),
        json.dumps(diagnosis.to_json()),
        diagnosis._repr_html_(),
        repr(diagnosis),
    )
    assert_clean(*texts, caplog.text)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_cli_stderr(echo: str, shape: str) -> None:
    for command in ("chat", "doctor"):
        result = subprocess.run(
            [sys.executable, "-m", "streamchat.cli", command, url_for(echo, shape), "hi", *HEADERS],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert_clean(result.stdout, result.stderr)


def test_the_transport_redacts_before_the_message_is_cut(echo: str) -> None:
    (error,) = collect(build_request(url_for(echo, "long"), [], api_key=KEY))
    assert isinstance(error, StreamError) and error.status == 500
    assert "[redacted]" in error.message
    assert_clean(error.message)


def test_httpx_info_log_and_the_request_repr_hide_url_credentials(echo: str, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # Importing litellm (another test's SDK) sets the httpx logger to WARNING for good.
    caplog.set_level(logging.DEBUG, logger="httpx")
    request = build_request(url_for(echo, "401"), [], api_key=KEY)

    async def run() -> None:
        async for _ in stream_deltas(request, retries=NO_RETRY):
            pass

    asyncio.run(run())
    assert any(r.name == "httpx" and "HTTP Request" in r.getMessage() for r in caplog.records)
    assert_clean(caplog.text, repr(request))


def test_secret_forms_and_shapes() -> None:
    secrets = Secrets.of(
        f"https://user:{PASSWORD}@host.example/p?key={KEY}&alt=sse",
        {"Authorization": f"Bearer {KEY}", "X-Portal-Id": CUSTOM, "Accept": "text/plain"},
    )
    echoed = [
        f"https%3A%2F%2Fuser%3A{PASSWORD}%40host.example",  # percent-encoded on the way back
        json.dumps({"a": f"Bearer {KEY}"}),
        f"{KEY[:20]}…",  # cut by someone else's truncation
        "dXNlcjpwdy05ODc2LWluLXRoZS11cmw=",  # Basic user:PASSWORD
        f"http://someone:else@other.example/?token={KEY}&sig=abc",
    ]
    for text in echoed:
        assert_clean(secrets.redact(text))
    assert secrets.redact("text/plain and alt=sse stay") == "text/plain and alt=sse stay"
    assert scrub("Authorization: Bearer abcdefgh12345") == "Authorization: Bearer ***"
    assert mask_url(f"https://u:{PASSWORD}@h.example/x?key={KEY}&alt=sse") == (
        "https://***@h.example/x?key=***&alt=sse"
    )
    assert mask_headers({"Authorization": f"Bearer {KEY}", "X-Portal-Id": CUSTOM, "X-V": "1"}) == {
        "Authorization": "Bearer ***",
        "X-Portal-Id": "***",
        "X-V": "1",
    }
    message = server_message(("y" * 290 + KEY).encode(), "text/plain", secrets)
    assert_clean(message)


def test_a_401_from_a_host_without_the_environment_key_says_so(monkeypatch) -> None:
    from loopback import LoopbackServer, Script

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = LoopbackServer().start()
    try:
        url = server.route(
            "/v1/chat/completions",
            Script(
                [b'{"error": "no key"}'], status=401, headers={"Content-Type": "application/json"}
            ),
        )
        (error,) = collect(url)
        assert "Authorization" not in server.received[-1].headers
    finally:
        server.close()
    assert isinstance(error, StreamError) and error.status == 401
    assert "OPENAI_API_KEY is set, but it is sent only to its provider's own host" in error.message
    assert_clean(error.message)


def test_prose_about_tokens_is_left_alone() -> None:
    for text in (
        "Bearer authentication failed: Token expired",
        "see https://docs.example/auth?lang=en",
        "mail me at a@b.example",
        "pip install sk-learn-compatible-estimators; task-0123456789-abcdefghij",
        "AIza is how Google's keys start",
    ):
        assert scrub(text) == text


def test_bare_keys_are_masked_by_their_shape() -> None:
    """Servers quote keys without a scheme: "Incorrect API key provided: sk-..."."""
    keys = (
        "sk-proj-Zq3vT8kLm2Wn5Rb7Yc1Xd4Fg6Hj9Kp0Qs",
        "sk-ant-api03-Hq7Lm2Vn4Bc8Xz1Wk5Jd9Rt3Yp6Fs0Ga",
        "sk-or-v1-0123456789abcdef0123456789abcdef",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    )
    for key in keys:
        text = f'{{"error": "Incorrect API key provided: {key}. See the docs."}}'
        assert scrub(text) == '{"error": "Incorrect API key provided: [redacted]. See the docs."}'
        assert Secrets().redact(f"key={key}") == "key=[redacted]"


def test_the_environments_keys_are_masked_everywhere(monkeypatch, caplog) -> None:
    """Whatever sent it (an SDK reads OPENAI_API_KEY itself), a provider variable's value is
    masked in every message and log record; a short test value garbles nothing."""
    value = "proxy-master-7f3a9c2e41b8"
    monkeypatch.setenv("OPENAI_API_KEY", value)
    monkeypatch.setenv("GEMINI_API_KEY", "test")
    echoed = f"bad key {value}, JSON {json.dumps(value)}, cut {value[:10]}…; a test"
    assert (
        Secrets().redact(echoed) == 'bad key [redacted], JSON "[redacted]", cut [redacted]…; a test'
    )
    assert Secrets.of("http://h.example/v1", {}).redact(value) == "[redacted]"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("streamchat").warning("the proxy refused %s", value)
    assert value not in caplog.text and "[redacted]" in caplog.text


@contextlib.contextmanager
def echoed(echo: str, shape: str) -> Iterator[tuple[StreamChat, Capture]]:
    """A chat (and what it sent) asked "hi" by the echo server's `shape`, with its key and
    custom header; the answer is complete when the block starts."""
    chat = StreamChat(url_for(echo, shape), api_key=KEY, headers={"X-Portal-Id": CUSTOM})
    chat.speed = 0
    capture = Capture(chat)
    try:
        chat.ask("hi")
        assert chat.wait(20)
        yield chat, capture
    finally:
        chat.close()


def kept(chat: StreamChat, capture: Capture) -> list[str]:
    """Everything a chat keeps or sends: synced state, comm messages, transcript, history,
    turns and tape."""
    state = json.dumps(ipywidgets.Widget.get_manager_state(), default=str)
    tape = json.dumps(chat._driver.post(chat._driver.tape).to_json())  # type: ignore[union-attr]
    history = json.dumps([chat.messages, chat.turns])
    return [state, capture.raw(), chat.transcript, history, tape]


def test_an_answer_that_echoes_the_key_shows_and_keeps_none_of_it(echo: str) -> None:
    """A model that repeats its request (the key, the custom header, the URL's password)
    token by token: the answer and its reasoning are masked before the typewriter, so no
    view, saved state, copy, history or tape holds a secret, whole or cut."""
    with echoed(echo, "answer") as (chat, capture):
        assert chat.status == "done", chat.turns[-1]
        answer = chat.messages[-1]["content"]
        assert "[redacted]" in answer and "POST /answer/v1/chat/completions" in answer
        assert_clean(*kept(chat, capture))


def test_a_tool_call_that_echoes_the_key_keeps_none_of_it(echo: str) -> None:
    """The same echo in a tool call's arguments, split across deltas: the turn's tool
    calls (synced, saved, copied) hold the request with every secret masked."""
    with echoed(echo, "tool") as (chat, capture):
        calls = chat.turns[-1]["tool_calls"]
        assert [call["name"] for call in calls] == ["lookup"], chat.turns[-1]
        query = json.loads(calls[0]["arguments"])["query"]
        assert "[redacted]" in query and "POST /tool/v1/chat/completions" in query
        assert_clean(*kept(chat, capture))


def test_an_echo_of_a_key_cut_short_is_masked_too() -> None:
    """A server that shortens what it echoes (`sk-echo-0123…`): the answer's mask masks
    that prefix as the error messages' redaction does, in pieces as it arrives."""
    mask = EchoMask(Secrets([KEY]))
    echoed = f"You sent {KEY[:14]}… and {KEY}."
    shown = "".join(mask.feed(echoed[at : at + 3]) for at in range(0, len(echoed), 3))
    shown += mask.flush()
    assert KEY[:12] not in shown, shown
    assert shown.startswith("You sent ") and shown.endswith(".")
