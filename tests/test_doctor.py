"""`streamchat doctor`: real streams (direct and through a real nginx) and the pure analysis.

The upstream's pauses between events are the thing measured, not synchronisation:
the doctor must see them, or see them disappear behind a buffer.
"""

from __future__ import annotations

import json
import ssl
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamchat.cli import main
from streamchat.deltas import StreamError
from streamchat.doctor import (
    ACCEPT_ENCODING,
    Measurements,
    analyse,
    bursts,
    diagnose,
    held_events,
    sparkline,
)
from streamchat.providers import MEDIA_TYPES, wire_format

from conftest import require
from loopback import LoopbackServer, Script, free_port, sse
from nginx_fixture import Nginx, nginx_available, recommended_config, simple_config

PATH = "/v1/chat/completions"
SSE = "text/event-stream; charset=utf-8"


def chunk(text: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


def answer(count: int = 15, *, done: bool = True) -> list[bytes]:
    """`count` OpenAI chunks, then `data: [DONE]` (one HTTP chunk per event)."""
    events: list[str | dict] = [chunk(f"word{i} ") for i in range(count)]
    return sse(*events, *(["[DONE]"] if done else []))


def stream(chunks: list[bytes], pause: float, **headers: str) -> Script:
    """The first chunk at once, then one every `pause` seconds."""
    return Script(
        chunks,
        headers={"Content-Type": SSE, **headers},
        pause=[0.0] + [pause] * (len(chunks) - 1),
    )


NO_CACHE = {"Cache-Control": "no-cache"}


# -- direct streams -------------------------------------------------------------------


def test_healthy_stream_is_ok_with_no_findings(server: LoopbackServer) -> None:
    url = server.route(PATH, stream(answer(), 0.05, **NO_CACHE))
    diagnosis = diagnose(url)
    m = diagnosis.measurements
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert diagnosis.findings == ()
    assert m.event_count == 16
    # Arrivals 50 ms apart, counted: on a loaded machine a late read can land within
    # BURST_WINDOW of the next and merge the two, while a proxy that held even two
    # events at a time would leave 8 bursts, and a buffering one 1.
    assert len(bursts(m.events)) >= 12, bursts(m.events)
    assert m.first_event is not None and m.first_event < 0.3
    assert m.total >= 0.7
    assert (m.http_version, m.status, m.ending) == ("HTTP/1.1", 200, "complete")
    sent = server.received[0]
    assert sent.headers["Accept-Encoding"] == ACCEPT_ENCODING
    assert sent.json() == {**sent.json(), "stream": True}


def test_the_callers_accept_encoding_wins(server: LoopbackServer) -> None:
    url = server.route(PATH, stream(answer(2), 0.0))
    diagnose(url, headers={"accept-encoding": "identity"})
    names = {name.lower(): value for name, value in server.received[0].headers.items()}
    assert names["accept-encoding"] == "identity"


def test_gzip_flushed_per_event_is_decoded_and_reported(server: LoopbackServer) -> None:
    compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    pieces = [
        compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH) for event in answer()
    ]
    pieces[-1] += compressor.flush()
    url = server.route(PATH, stream(pieces, 0.05, **NO_CACHE, **{"Content-Encoding": "gzip"}))
    diagnosis = diagnose(url)
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert diagnosis.ids == ("compression",)
    assert diagnosis.measurements.event_count == 16
    assert diagnosis.measurements.byte_count == sum(map(len, pieces))


def test_ndjson_stream(server: LoopbackServer) -> None:
    lines = [
        json.dumps({"message": {"role": "assistant", "content": f"w{i} "}, "done": False})
        for i in range(6)
    ] + [json.dumps({"message": {"role": "assistant", "content": ""}, "done": True})]
    script = Script(
        [line.encode() + b"\n" for line in lines],
        headers={"Content-Type": "application/x-ndjson", **NO_CACHE},
        pause=0.1,
    )
    diagnosis = diagnose(server.route("/api/chat", script))
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert diagnosis.measurements.wire == "ndjson"
    assert diagnosis.measurements.event_count == 7


@pytest.mark.parametrize(
    "media_type", [*MEDIA_TYPES["ndjson"], "application/json-seq", "application/x-lines"]
)
def test_the_doctors_ndjson_types_are_the_transports(
    server: LoopbackServer, media_type: str
) -> None:
    """One rule: a body the transport frames as NDJSON by its type is a well-typed stream."""
    lines = [json.dumps({"response": "w ", "done": False}), json.dumps({"done": True})]
    script = Script(
        [line.encode() + b"\n" for line in lines],
        headers={"Content-Type": media_type, **NO_CACHE},
    )
    diagnosis = diagnose(server.route("/api/generate", script))
    assert diagnosis.measurements.wire == "ndjson"
    transport_frames_it = wire_format("ollama-generate", media_type) == "ndjson"
    assert ("content-type" not in diagnosis.ids) == transport_frames_it, diagnosis.render_text()


def test_json_answer_is_not_streaming(server: LoopbackServer) -> None:
    whole = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
    }
    script = Script([json.dumps(whole).encode()], headers={"Content-Type": "application/json"})
    diagnosis = diagnose(server.route(PATH, script))
    assert diagnosis.verdict == "not-streaming"
    assert diagnosis.ids == ("content-type",)
    assert "application/json" in diagnosis.findings[0].message
    assert '"stream": true' in diagnosis.findings[0].fix


def test_html_page_is_not_streaming_and_quoted(server: LoopbackServer) -> None:
    page = b"<html><head><title>Sign in to Corp Proxy</title></head><body>...</body></html>"
    script = Script([page], headers={"Content-Type": "text/html"})
    diagnosis = diagnose(server.route(PATH, script))
    assert diagnosis.verdict == "not-streaming"
    assert "Sign in to Corp Proxy" in diagnosis.findings[0].message


def test_connection_refused_is_an_error() -> None:
    diagnosis = diagnose(f"http://127.0.0.1:{free_port()}{PATH}", timeout=5)
    assert diagnosis.verdict == "error"
    assert diagnosis.ids == ("connect",)
    assert diagnosis.measurements.status is None


def test_error_status_quotes_the_server(server: LoopbackServer) -> None:
    body = json.dumps({"error": {"message": "The model is overloaded", "type": "server"}})
    script = Script([body.encode()], status=500, headers={"Content-Type": "application/json"})
    diagnosis = diagnose(server.route(PATH, script))
    assert diagnosis.verdict == "error"
    assert diagnosis.ids == ("http-status",)
    assert (
        diagnosis.findings[0].message == "HTTP 500 Internal Server Error: The model is overloaded"
    )


def test_reports_hide_credentials(server: LoopbackServer) -> None:
    secret = "sk-test-1234567890"
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {secret}"}})
    script = Script([body.encode()], status=401, headers={"Content-Type": "application/json"})
    url = server.route(PATH, script) + f"?key={secret}"
    diagnosis = diagnose(url, api_key=secret)
    assert server.received[0].headers["Authorization"] == f"Bearer {secret}"
    report = json.dumps(diagnosis.to_json()) + diagnosis.render_text() + diagnosis._repr_html_()
    assert secret not in report
    assert "Incorrect API key provided: [redacted]" in diagnosis.findings[0].message
    assert "OPENAI_API_KEY" in diagnosis.findings[0].fix


def test_redirect_names_its_target(server: LoopbackServer) -> None:
    script = Script([], status=307, headers={"Location": "https://elsewhere.test/v1"})
    diagnosis = diagnose(server.route(PATH, script))
    assert diagnosis.verdict == "error"
    assert "redirects to https://elsewhere.test/v1" in diagnosis.findings[0].message


def test_error_inside_the_stream(server: LoopbackServer) -> None:
    events = [*sse(chunk("Hi")), *sse({"error": {"message": "quota exceeded", "type": "x"}})]
    diagnosis = diagnose(server.route(PATH, stream(events, 0.0)))
    assert diagnosis.verdict == "error"
    assert "provider-error" in diagnosis.ids
    assert "quota exceeded" in diagnosis.findings[0].message


def test_clean_end_without_marker(server: LoopbackServer) -> None:
    url = server.route(PATH, stream(answer(6, done=False), 0.0, **NO_CACHE))
    diagnosis = diagnose(url)
    assert diagnosis.verdict == "incomplete"
    assert diagnosis.ids == ("no-end-marker", "short-stream")
    assert "[DONE]" in diagnosis.findings[0].message


def test_unterminated_last_event(server: LoopbackServer) -> None:
    chunks = [*answer(6, done=False), b"data: [DONE]"]
    diagnosis = diagnose(server.route(PATH, stream(chunks, 0.0, **NO_CACHE)))
    assert diagnosis.verdict == "incomplete"
    assert {"unterminated-event", "no-end-marker"} <= set(diagnosis.ids)


def test_cut_stream_direct(server: LoopbackServer) -> None:
    script = stream(answer(), 0.0)
    script.cut_after = 3
    diagnosis = diagnose(server.route(PATH, script))
    assert diagnosis.verdict == "incomplete"
    assert diagnosis.ids[0] == "incomplete-chunked"
    assert "ERR_INCOMPLETE_CHUNKED_ENCODING" in diagnosis.findings[0].message
    assert diagnosis.measurements.event_count == 3


def test_stream_still_running_at_the_timeout(server: LoopbackServer) -> None:
    script = stream(answer(2, done=False), 0.0)
    script.hang = 30
    diagnosis = diagnose(server.route(PATH, script), timeout=0.5)
    assert diagnosis.verdict == "incomplete"
    assert "timeout" in diagnosis.ids
    assert diagnosis.measurements.event_count == 2


# -- the command line ------------------------------------------------------------------


def test_cli_json_output(server: LoopbackServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = server.route(PATH, stream(answer(6), 0.1, **NO_CACHE))
    assert main(["doctor", url, "--json", "--timeout", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "ok"
    assert report["findings"] == []
    assert report["headers"]["content-type"] == SSE
    assert report["event_count"] == 7
    assert len(report["chunks"]) == len(report["events"]) == 7
    assert all(isinstance(t, float) and size > 0 for t, size in report["chunks"])
    assert {"time_to_first_byte", "time_to_first_event", "total", "http_version"} <= set(report)


def test_cli_text_output_exits_1_when_not_ok(
    server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.route(PATH, stream(answer(3, done=False), 0.0))
    assert main(["doctor", url, "Count to 3."]) == 1
    out = capsys.readouterr().out
    assert "verdict: incomplete" in out
    assert "[no-end-marker]" in out
    assert server.received[0].json()["messages"][-1]["content"] == "Count to 3."


# -- the pure analysis -----------------------------------------------------------------


def measured(events: list[tuple[float, int]], total: float, **changes: object) -> Measurements:
    fields: dict = {
        "url": "http://upstream.test/v1/chat/completions",
        "provider": "openai",
        "http_version": "HTTP/1.1",
        "status": 200,
        "reason": "OK",
        "headers": (("content-type", "text/event-stream"), ("cache-control", "no-cache")),
        "headers_at": 0.01,
        "wire": "sse",
        "chunks": tuple((t, 120 * n) for t, n in events),
        "events": tuple(events),
        "total": total,
        "complete": True,
    }
    return Measurements(**{**fields, **changes})  # type: ignore[arg-type]


def steps(start: float, every: float, count: int, size: int = 1) -> list[tuple[float, int]]:
    return [(start + every * i, size) for i in range(count)]


TIMELINES = {
    "all at the end": ([(1.5, 16)], 1.5, "buffered"),
    "one event per 0.1 s": (steps(0.1, 0.1, 16), 1.6, "ok"),
    "a fast model, 2 ms apart": (steps(0.5, 0.002, 500), 1.5, "ok"),
    "a slow first token, then steady": (steps(5.0, 0.05, 20), 6.0, "ok"),
    "gzip on a long answer: 4 bursts of 100": (steps(2.0, 2.0, 4, 100), 8.0, "buffered"),
    "small buffers: 10 bursts of 10": (steps(1.0, 1.0, 10, 10), 10.0, "buffered"),
    "two hiccups in a steady stream": (
        [*steps(0.1, 0.05, 50), (2.9, 5), *steps(3.0, 0.05, 50), (5.8, 5)],
        6.0,
        "ok",
    ),
    "all at once, but short": ([(0.3, 16)], 0.3, "ok"),
}


@pytest.mark.parametrize("name", TIMELINES)
def test_analyse_timelines(name: str) -> None:
    events, total, verdict = TIMELINES[name]
    diagnosis = analyse(measured(events, total))
    assert diagnosis.verdict == verdict
    assert ("buffering" in diagnosis.ids) == (verdict == "buffered")


def test_short_stream_gets_advice() -> None:
    assert analyse(measured([(0.3, 16)], 0.3)).ids == ("short-stream",)


def test_bursts_use_a_window_from_their_first_event() -> None:
    arrivals = [(0.0, 1), (0.006, 1), (0.012, 1), (0.5, 2), (0.505, 3)]
    assert bursts(arrivals) == [(0.0, 2), (0.012, 1), (0.5, 5)]
    assert held_events(arrivals) == 5


def test_verdict_order_incomplete_before_buffered() -> None:
    m = measured([(1.5, 16)], 1.5, ending="cut", complete=False, error="peer closed")
    diagnosis = analyse(m)
    assert diagnosis.verdict == "incomplete"
    assert diagnosis.ids[:2] == ("incomplete-chunked", "buffering")


def test_buffering_names_compression_and_nginx_advice() -> None:
    headers = (
        ("content-type", "text/event-stream"),
        ("content-encoding", "gzip"),
        ("server", "nginx/1.22.1"),
        ("content-length", "196"),
    )
    diagnosis = analyse(measured([(1.5, 16)], 1.5, headers=headers))
    assert diagnosis.ids == (
        "buffering",
        "compression",
        "content-length",
        "cache-control",
        "no-accel-header",
    )
    assert "gzip-compressed" in diagnosis.findings[0].message
    assert "proxy_buffering off" in diagnosis.findings[0].fix


@pytest.mark.parametrize(
    ("changes", "finding"),
    [
        ({"http_version": "HTTP/2"}, "came over HTTP/2"),
        ({"alpn": "h2"}, "ALPN h2"),
        ({"headers": (("content-type", "text/event-stream"), ("alt-svc", 'h3=":443"'))}, "h3"),
    ],
)
def test_http2_finding(changes: dict, finding: str) -> None:
    diagnosis = analyse(measured(steps(0.1, 0.1, 16), 1.6, **changes))
    http2 = next(f for f in diagnosis.findings if f.id == "http2")
    assert finding in http2.message
    assert "HTTP/1.1" in http2.fix
    assert diagnosis.verdict == "ok"


def test_timeout_without_any_data_is_an_error() -> None:
    m = measured([], 30.0, ending="timeout", complete=False, status=None, headers=(), wire=None)
    diagnosis = analyse(m)
    assert (diagnosis.verdict, diagnosis.ids) == ("error", ("timeout",))


def test_protocol_error_is_not_streaming() -> None:
    error = StreamError("protocol", "no text found in the stream")
    m = measured(steps(0.1, 0.1, 3), 0.5, stream_error=error, complete=False)
    diagnosis = analyse(m)
    assert diagnosis.verdict == "not-streaming"
    assert "no text found" in diagnosis.findings[0].message


# -- renderings ------------------------------------------------------------------------


def test_sparkline_buckets_and_heights() -> None:
    assert sparkline([(0.0, 1), (0.5, 8), (0.99, 4)], 1.0, 4) == "▁ █▄"
    assert sparkline([], 1.0, 3) == "   "
    assert sparkline([(2.0, 1)], 1.0, 3) == "  █"


def test_render_text_has_chart_timings_and_findings() -> None:
    headers = (("content-type", "text/event-stream"), ("server", "evil\x1b[2J\x07"))
    text = analyse(measured([(1.5, 16)], 1.5, headers=headers)).render_text(width=20)
    lines = text.splitlines()
    assert lines[1] == "verdict: buffered"
    assert "  bytes  |                   █|" in lines
    assert "  events |                   █|" in lines
    assert "          0       0.75  1.50 s" in lines
    assert "[buffering]" in text and "  fix: " in text
    assert "first event after   1.500 s" in text
    assert "\x1b" not in text and "\x07" not in text


def test_repr_html_escapes_and_embeds_svg() -> None:
    evil = "<script>alert(1)</script>"
    headers = (("content-type", "text/event-stream"), ("server", evil))
    m = measured([(1.5, 16)], 1.5, headers=headers, url=f"http://x.test/{evil}")
    page = analyse(m)._repr_html_()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<svg") == 1 and "<rect" in page and "<circle" in page
    assert "src=" not in page and "href=" not in page and "<style" not in page


# -- through a real nginx ----------------------------------------------------------------

# The upstream of the nginx tests: 15 chunks and [DONE], 0.1 s apart (1.5 s).
SLOW = 0.1


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    require(nginx_available(), "nginx is not installed (apt-get install -y nginx)")
    started: list[Nginx] = []

    def start(snippet: str, upstream: LoopbackServer, listen_options: str = "") -> Nginx:
        directory = tmp_path / f"nginx{len(started)}"
        directory.mkdir()
        proxy = Nginx(directory, snippet, upstream.port, listen_options).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


GZIP_ON = "gzip on;\ngzip_types text/event-stream;"


def test_nginx_with_gzip_delivers_everything_at_the_end(
    server: LoopbackServer, nginx: Callable[..., Nginx]
) -> None:
    server.route(PATH, stream(answer(), SLOW))
    proxy = nginx(simple_config(http=GZIP_ON), server)
    diagnosis = diagnose(proxy.url + PATH)
    m = diagnosis.measurements
    assert diagnosis.verdict == "buffered", diagnosis.render_text()
    assert {"buffering", "compression", "no-accel-header"} <= set(diagnosis.ids)
    assert m.header("content-encoding") == "gzip"
    assert m.event_count == 16
    assert len(bursts(m.events)) == 1
    assert m.first_event is not None and m.first_event > 1.2


def test_nginx_defaults_without_gzip_pass_small_events(
    server: LoopbackServer, nginx: Callable[..., Nginx]
) -> None:
    server.route(PATH, stream(answer(), SLOW, **NO_CACHE))
    proxy = nginx(simple_config(), server)
    diagnosis = diagnose(proxy.url + PATH)
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert diagnosis.ids == ("no-accel-header",)
    assert len(bursts(diagnosis.measurements.events)) >= 12


def test_nginx_gzip_flushes_when_the_upstream_says_no_buffering(
    server: LoopbackServer, nginx: Callable[..., Nginx]
) -> None:
    server.route(PATH, stream(answer(), SLOW, **NO_CACHE, **{"X-Accel-Buffering": "no"}))
    proxy = nginx(simple_config(http=GZIP_ON), server)
    diagnosis = diagnose(proxy.url + PATH)
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    # nginx acts on X-Accel-Buffering and hides it: the advice stays.
    assert diagnosis.ids == ("compression", "no-accel-header")
    assert diagnosis.measurements.header("x-accel-buffering") is None
    assert len(bursts(diagnosis.measurements.events)) >= 12


def test_nginx_recommended_config_streams(
    server: LoopbackServer, nginx: Callable[..., Nginx]
) -> None:
    server.route(PATH, stream(answer(), SLOW, **NO_CACHE))
    proxy = nginx(recommended_config(), server)
    diagnosis = diagnose(proxy.url + PATH)
    m = diagnosis.measurements
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert "buffering" not in diagnosis.ids and "compression" not in diagnosis.ids
    assert m.first_event is not None and m.first_event < 0.5
    assert len(bursts(m.events)) >= 12


def test_nginx_closes_without_the_terminal_chunk_when_the_upstream_dies(
    server: LoopbackServer, nginx: Callable[..., Nginx]
) -> None:
    script = stream(answer(), SLOW, **NO_CACHE)
    script.cut_after = 5
    server.route(PATH, script)
    proxy = nginx(recommended_config(), server)
    diagnosis = diagnose(proxy.url + PATH)
    assert diagnosis.verdict == "incomplete", diagnosis.render_text()
    assert diagnosis.ids[0] == "incomplete-chunked"
    assert "incomplete chunked read" in diagnosis.findings[0].message
    assert diagnosis.measurements.event_count == 5
    assert "upstream prematurely closed connection" in proxy.log()


def test_nginx_over_tls_offering_http2(
    server: LoopbackServer, nginx: Callable[..., Nginx], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server.route(PATH, stream(answer(6), SLOW, **NO_CACHE))
    tls = f"ssl_certificate {cert};\nssl_certificate_key {key};\n"
    proxy = nginx(tls + recommended_config(), server, listen_options="ssl http2")
    diagnosis = diagnose(proxy.url + PATH, verify=ssl.create_default_context(cafile=str(cert)))
    m = diagnosis.measurements
    assert (m.alpn, m.http_version) == ("h2", "HTTP/1.1")
    assert diagnosis.verdict == "ok", diagnosis.render_text()
    assert "http2" in diagnosis.ids
