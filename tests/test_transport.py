"""The transport against a real loopback server: happy paths, HTTP errors, broken streams."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from streamchat.deltas import Done, StreamError, TextDelta, Usage
from streamchat.providers import ChatRequest, build_request
from streamchat.transport import Retries, Timeouts, retry_after, server_message, stream_deltas

from answers import collect, read_all, text_of
from loopback import LoopbackServer, Script, free_port, sse, wait_until

SECRET = "sk-test-0123456789abcdef"


def openai_chunk(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


ANSWER = ["你好", "，世界", "! 👨‍👩‍👧", " done"]
OPENAI_STREAM = sse(
    {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
    *(openai_chunk(piece) for piece in ANSWER),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    "[DONE]",
)


def test_streams_text_usage_and_done(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM))
    deltas = collect(url, api_key=SECRET)
    assert text_of(deltas) == "".join(ANSWER)
    assert Usage(input_tokens=3, output_tokens=4) in deltas or any(
        isinstance(d, Usage) and d.output_tokens == 4 for d in deltas
    )
    assert deltas[-1] == Done("stop")
    sent = server.received[0]
    assert sent.headers["Accept"] == "text/event-stream"
    assert sent.headers["Accept-Encoding"] == "identity"
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.json()["stream"] is True


def test_bytes_split_anywhere_decode_whole(server: LoopbackServer) -> None:
    body = b"".join(OPENAI_STREAM).replace(b"\n", b"\r\n")
    one_byte_chunks = [body[i : i + 1] for i in range(len(body))]
    url = server.route("/v1/chat/completions", Script(one_byte_chunks))
    deltas = collect(url)
    assert text_of(deltas) == "".join(ANSWER)
    assert "\ufffd" not in text_of(deltas)
    assert deltas[-1] == Done("stop")


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (
            401,
            "application/json",
            b'{"error": {"message": "Incorrect API key"}}',
            "Incorrect API key",
        ),
        (403, "application/json", b'{"error": "forbidden here"}', "forbidden here"),
        (
            404,
            "text/html",
            b"<html><title>404 Not Found</title><body>x</body></html>",
            "404 Not Found",
        ),
        (429, "application/json", b'{"error": {"message": "Rate limit reached"}}', "Rate limit"),
        (500, "text/html", b"<h1>Internal  Server\nError</h1>", "Internal Server Error"),
    ],
)
def test_http_errors_carry_status_and_server_message(
    server: LoopbackServer, status: int, content_type: str, body: bytes, expected: str
) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script([body], status=status, headers={"Content-Type": content_type, "Retry-After": "7"}),
    )
    deltas = collect(url)
    assert len(deltas) == 1
    error = deltas[0]
    assert isinstance(error, StreamError)
    assert error.kind == "http"
    assert error.status == status
    assert f"HTTP {status}" in error.message
    assert expected in error.message
    assert error.retry_after == 7.0


def test_echoed_key_is_redacted(server: LoopbackServer) -> None:
    body = b'{"error": {"message": "Incorrect API key provided: ' + SECRET.encode() + b'"}}'
    url = server.route(
        "/v1/chat/completions",
        Script([body], status=401, headers={"Content-Type": "application/json"}),
    )
    (error,) = collect(url, api_key=SECRET)
    assert isinstance(error, StreamError)
    assert SECRET not in error.message
    assert "[redacted]" in error.message


def test_connection_refused() -> None:
    (error,) = collect(f"http://127.0.0.1:{free_port()}/v1/chat/completions")
    assert isinstance(error, StreamError)
    assert error.kind == "connect"
    assert "127.0.0.1" in error.message


def test_cut_mid_event_keeps_partial(server: LoopbackServer) -> None:
    chunks = [*OPENAI_STREAM[:3], b'data: {"choices": [{"index": 0, "delta": {"con']
    url = server.route("/v1/chat/completions", Script(chunks, cut_after=4))
    deltas = collect(url)
    assert text_of(deltas) == "".join(ANSWER[:2])
    error = deltas[-1]
    assert isinstance(error, StreamError)
    assert error.kind == "incomplete"
    assert "ERR_INCOMPLETE_CHUNKED_ENCODING" in error.message


def test_clean_end_without_done_marker_is_incomplete(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM[:3]))
    deltas = collect(url)
    assert text_of(deltas) == "".join(ANSWER[:2])
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].kind == "incomplete"


def test_cut_after_done_marker_loses_nothing(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM, cut_after=len(OPENAI_STREAM)))
    deltas = collect(url)
    assert text_of(deltas) == "".join(ANSWER)
    assert isinstance(deltas[-1], Done)


def test_idle_timeout_keeps_partial(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM[:2], hang=5))
    deltas = collect(url, Timeouts(idle=0.3))
    assert text_of(deltas) == ANSWER[0]
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].kind == "timeout"
    assert "idle" in deltas[-1].message


def test_total_timeout(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM, pause=0.2))
    deltas = collect(url, Timeouts(idle=5, total=0.5))
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].kind == "timeout"
    assert 0 < len(text_of(deltas)) < len("".join(ANSWER))


def test_html_with_status_200_is_a_protocol_error(server: LoopbackServer) -> None:
    url = server.route(
        "/v1/chat/completions",
        Script([b"<html><body>Please log in</body></html>"], headers={"Content-Type": "text/html"}),
    )
    deltas = collect(url)
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].kind in ("protocol", "incomplete")


def test_cancelling_closes_the_connection(server: LoopbackServer) -> None:
    many = OPENAI_STREAM[:1] + [sse(openai_chunk("x"))[0]] * 200
    url = server.route("/v1/chat/completions", Script(many, pause=0.02))
    request = build_request(url, [{"role": "user", "content": "hi"}])

    async def run() -> None:
        async def consume(first: asyncio.Event) -> None:
            async for delta in stream_deltas(request):
                if isinstance(delta, TextDelta):
                    first.set()

        first = asyncio.Event()
        task = asyncio.ensure_future(consume(first))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    wait_until(lambda: server.broken == ["/v1/chat/completions"], timeout=5)


def test_server_message_shapes() -> None:
    assert server_message(b'[{"error": {"message": "bad key"}}]', "application/json") == "bad key"
    assert server_message(b'{"detail": "Not Found"}', "application/json") == "Not Found"
    assert server_message(b"plain words", "text/plain") == "plain words"
    assert server_message(b"", "text/plain") == ""
    assert len(server_message(b"x" * 5000, "text/plain")) == 300


def test_retry_after_forms() -> None:
    assert retry_after("12") == 12.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_given_client_is_not_closed(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM))
    request = build_request(url, [{"role": "user", "content": "hi"}])

    async def run() -> bool:
        async with httpx.AsyncClient() as client:
            deltas = [d async for d in stream_deltas(request, client=client)]
            assert isinstance(deltas[-1], Done)
            return client.is_closed

    assert asyncio.run(run()) is False


class RecordedSleeps:
    """A Retries.sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(status: int, retry_after: str | None = None) -> Script:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Script([b'{"error": {"message": "busy"}}'], status=status, headers=headers)


def test_retries_5xx_and_429_before_first_byte(server: LoopbackServer) -> None:
    sleeps = RecordedSleeps()
    url = server.route(
        "/v1/chat/completions", failing(503), failing(429, "2"), Script(OPENAI_STREAM)
    )
    deltas = collect(url, retries=Retries(attempts=3, backoff=0.5, sleep=sleeps, jitter=lambda: 1))
    assert text_of(deltas) == "".join(ANSWER)
    assert isinstance(deltas[-1], Done)
    assert sleeps.waits == [0.5, 2.0]  # backoff for 503, then the server's Retry-After
    assert len(server.received) == 3


def test_backoff_grows_exponentially_with_jitter(server: LoopbackServer) -> None:
    sleeps = RecordedSleeps()
    url = server.route("/v1/chat/completions", failing(502))
    deltas = collect(url, retries=Retries(attempts=3, backoff=1, sleep=sleeps, jitter=lambda: 0.5))
    assert isinstance(deltas[-1], StreamError)
    assert deltas[-1].status == 502
    assert sleeps.waits == [0.5, 1.0, 2.0]
    assert len(server.received) == 4


def test_no_retry_for_client_errors_or_long_retry_after(server: LoopbackServer) -> None:
    sleeps = RecordedSleeps()
    retries = Retries(attempts=3, sleep=sleeps, max_wait=10)
    url = server.route("/v1/chat/completions", failing(401))
    assert collect(url, retries=retries)[-1].status == 401
    url = server.route("/v1/chat/completions", failing(429, "3600"))
    assert collect(url, retries=retries)[-1].retry_after == 3600
    assert sleeps.waits == []


def test_never_retries_after_output_started(server: LoopbackServer) -> None:
    sleeps = RecordedSleeps()
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM[:3], cut_after=3))
    deltas = collect(url, retries=Retries(attempts=3, sleep=sleeps))
    assert text_of(deltas) == "".join(ANSWER[:2])
    assert deltas[-1].kind == "incomplete"
    assert sleeps.waits == []
    assert len(server.received) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    sleeps = RecordedSleeps()
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    deltas = collect(url, retries=Retries(attempts=2, sleep=sleeps, jitter=lambda: 1))
    assert [type(d) for d in deltas] == [StreamError]
    assert deltas[0].kind == "connect"
    assert sleeps.waits == [0.5, 1.0]


def test_get_event_stream_resumes_with_last_event_id(server: LoopbackServer) -> None:
    first = [b"retry: 25\nid: 1\ndata: Hello\n\n", b"id: 2\ndata: , wor\n\n", b"data: lost"]
    second = [b"id: 3\ndata: ld\n\n", b"data: [DONE]\n\n"]
    url = server.route("/events", Script(first, cut_after=3), Script(second))
    request = ChatRequest("GET", url, {"Accept": "text/event-stream"}, None, "custom")
    sleeps = RecordedSleeps()

    deltas = read_all(stream_deltas(request, retries=Retries(sleep=sleeps)))
    assert text_of(deltas) == "Hello, world"
    assert isinstance(deltas[-1], Done)
    assert sleeps.waits == [0.025]  # the server's `retry`, in seconds
    assert "Last-Event-ID" not in server.received[0].headers
    assert server.received[1].headers["Last-Event-ID"] == "2"


def test_get_event_stream_gives_up_without_progress(server: LoopbackServer) -> None:
    url = server.route(
        "/events", Script([b"id: 1\ndata: a\n\n"], cut_after=1), Script([b""], cut_after=0)
    )
    request = ChatRequest("GET", url, {"Accept": "text/event-stream"}, None, "custom")
    sleeps = RecordedSleeps()

    deltas = read_all(stream_deltas(request, retries=Retries(sleep=sleeps)))
    assert text_of(deltas) == "a"
    assert isinstance(deltas[-1], StreamError)
    assert len(server.received) == 2
    assert len(sleeps.waits) == 1


def test_post_chat_is_never_resumed(server: LoopbackServer) -> None:
    url = server.route("/v1/chat/completions", Script(OPENAI_STREAM[:3], cut_after=3))
    deltas = collect(url, retries=Retries())
    assert deltas[-1].kind == "incomplete"
    assert len(server.received) == 1
