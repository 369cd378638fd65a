"""EventStreamDecoder against the WHATWG examples, the known LLM-stream bugs, a literal
transcription of the spec (any chunking of any bytes must agree with it), and a real
HTTP server read through httpx."""

from __future__ import annotations

import itertools
import random
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat.sse import EventStreamDecoder, ServerSentEvent

from loopback import LoopbackServer, Script


def decode(*chunks: bytes) -> tuple[list[ServerSentEvent], EventStreamDecoder]:
    decoder = EventStreamDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.end()
    return events, decoder


def data_of(*chunks: bytes) -> list[str]:
    return [event.data for event in decode(*chunks)[0]]


# --- A literal reading of the spec, kept slow and obvious on purpose -------------------


class SpecModel:
    """#parsing-an-event-stream and #event-stream-interpretation step by step, on a whole body."""

    def __init__(self, body: bytes) -> None:
        text = body.decode("utf-8", "replace")  # the UTF-8 decode algorithm: one BOM goes
        if text.startswith("\ufeff"):
            text = text[1:]
        *lines, self.partial = re.split("\r\n|\r|\n", text)  # end-of-line = CRLF / CR / LF
        self.events: list[ServerSentEvent] = []
        self.retry: int | None = None
        self.last_event_id = ""
        self._data, self._type, self._id_buffer = "", "", self.last_event_id
        self._block_retry: int | None = None
        self._block_has_fields = False
        for line in lines:
            self._line(line)
        self.discarded = bool(self.partial) or self._block_has_fields

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            return
        if ":" in line:
            name, value = line.split(":", 1)
            value = value.removeprefix(" ")
        else:
            name, value = line, ""
        if name in ("data", "event", "id"):
            self._block_has_fields = True
        if name == "event":
            self._type = value
        elif name == "data":
            self._data += value + "\n"
        elif name == "id" and "\0" not in value:
            self._id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            self.retry = self._block_retry = int(value)

    def _dispatch(self) -> None:
        self.last_event_id = self._id_buffer
        if self._data != "":
            data = self._data.removesuffix("\n")
            event = ServerSentEvent(self._type or "message", data, self.last_event_id)
            self.events.append(event._replace(retry=self._block_retry))
        self._data, self._type, self._block_retry = "", "", None
        self._block_has_fields = False


# --- The spec's own examples ------------------------------------------------------------


def test_spec_stock_example_joins_data_lines_with_lf() -> None:
    """#event-stream-interpretation, the "stock" example: three data lines, one event."""
    events, _ = decode(b"data: YHOO\ndata: +2\ndata: 10\n\n")
    assert events == [ServerSentEvent("message", "YHOO\n+2\n10", "", None)]


SPEC_ID_EXAMPLE = (
    b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
)


def test_spec_comment_data_id_example() -> None:
    """The comment block fires nothing; `id` sets then resets the last event ID."""
    events, decoder = decode(SPEC_ID_EXAMPLE + b"\n")
    assert events == [
        ServerSentEvent("message", "first event", "1"),
        ServerSentEvent("message", "second event", ""),
        ServerSentEvent("message", " third event", ""),
    ]
    assert not decoder.discarded


def test_spec_comment_data_id_example_needs_its_final_blank_line() -> None:
    """ "the end of the stream is not enough to trigger the dispatch of the last event"."""
    events, decoder = decode(SPEC_ID_EXAMPLE)
    assert [event.data for event in events] == ["first event", "second event"]
    assert decoder.discarded


def test_spec_empty_data_example() -> None:
    """ "data\\n\\ndata\\ndata\\n\\ndata:": events "" and "\\n"; the last is never dispatched."""
    events, decoder = decode(b"data\n\ndata\ndata\n\ndata:")
    assert [event.data for event in events] == ["", "\n"]
    assert decoder.discarded


def test_spec_one_leading_space_is_removed() -> None:
    """ "data:test" and "data: test" are the same event."""
    assert data_of(b"data:test\n\ndata: test\n\n") == ["test", "test"]


# --- The bugs LLM clients keep shipping -------------------------------------------------


def test_chinese_character_split_across_chunks_is_decoded_whole() -> None:
    body = "data: 你好世界\n\n".encode()
    cut = body.index("好".encode()) + 1  # inside the three bytes of 好
    assert data_of(body[:cut], body[cut:]) == ["你好世界"]


def test_emoji_split_in_every_possible_way() -> None:
    body = "data: a👩‍💻b\n\n".encode()
    for cut in range(len(body) + 1):
        assert data_of(body[:cut], body[cut:]) == ["a👩‍💻b"]


def test_cr_line_ends() -> None:
    events, _ = decode(b"event: add\rdata: 1\rdata: 2\r\rdata: 3\r\r")
    assert events == [ServerSentEvent("add", "1\n2"), ServerSentEvent("message", "3")]


def test_crlf_line_ends_and_a_crlf_split_across_chunks() -> None:
    chunks = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\ndata: c\r\n\r\n"]
    assert data_of(*chunks) == ["a\nb", "c"]


def test_data_lines_are_joined_with_lf_not_space_lf() -> None:
    assert data_of(b"data: one\ndata: two\n\n") == ["one\ntwo"]


def test_a_cr_ends_the_block_at_once_without_waiting_for_an_lf() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(b"data: now\r\r") == [ServerSentEvent("message", "now")]
    assert decoder.feed(b"\ndata: next\n\n") == [ServerSentEvent("message", "next")]


# --- The rest of the parsing rules ------------------------------------------------------


def test_unicode_separators_are_not_line_ends() -> None:
    """Only CR, LF and CRLF end lines: str.splitlines would also split at these."""
    value = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    assert data_of(f"data: {value}\n\n".encode()) == [value]


def test_exactly_one_leading_bom_is_stripped() -> None:
    bom = "\ufeff".encode()
    assert data_of(bom + b"data: x\n\n") == ["x"]
    # A second BOM is part of the first line's field name, so the field is ignored.
    assert data_of(bom + bom + b"data: x\n\ndata: y\n\n") == ["y"]
    # Only at the very start of the stream.
    assert data_of(b"data: x\n\n" + bom + b"data: y\n\n") == ["x"]


def test_a_bom_split_across_chunks_is_still_stripped() -> None:
    assert data_of(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == ["x"]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert data_of(b"data: a\xffb\xe4\xb8c\n\n") == ["a\ufffdb\ufffdc"]


def test_charset_is_ignored_the_stream_is_always_utf8() -> None:
    # "é" in UTF-8; a decoder that trusted charset=latin-1 would give "Ã©".
    assert data_of("data: é\n\n".encode()) == ["é"]


def test_comments_and_unknown_or_miscased_fields_are_ignored() -> None:
    body = b": keep-alive\n\n:\ndata: x\nData: no\nfoo: bar\n: mid-block comment\n\n"
    assert data_of(body) == ["x"]


def test_field_without_colon_has_an_empty_value() -> None:
    events, _ = decode(b"event\ndata\n\n")
    assert events == [ServerSentEvent("message", "")]


def test_only_the_first_colon_and_one_space_are_removed() -> None:
    assert data_of(b"data:  a: b:c \n\n") == [" a: b:c "]


def test_event_type_applies_to_one_event_only() -> None:
    events, _ = decode(b"event: delta\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n")
    assert [event.event for event in events] == ["delta", "message", "message"]


def test_no_phantom_event_for_a_block_without_data() -> None:
    """A comment, or a lone `id:` after an earlier id, dispatches nothing."""
    events, decoder = decode(b"id: 7\ndata: a\n\n: ping\n\nid: 8\n\nevent: x\n\n\n\n")
    assert events == [ServerSentEvent("message", "a", "7")]
    assert decoder.last_event_id == "8"


def test_last_event_id_persists_across_events() -> None:
    events, decoder = decode(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [event.id for event in events] == ["1", "1", ""]
    assert decoder.last_event_id == ""


def test_id_containing_nul_is_ignored() -> None:
    events, decoder = decode(b"id: 1\n\nid: 2\x003\ndata: a\n\n")
    assert events == [ServerSentEvent("message", "a", "1")]
    assert decoder.last_event_id == "1"


def test_an_id_in_an_unterminated_block_is_not_used() -> None:
    _, decoder = decode(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.last_event_id == "1"
    assert decoder.discarded


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3000", 3000), ("0", 0), ("007", 7), ("", None), ("-1", None), ("1.5", None),
     ("30x", None), (" 5", None), ("５", None), ("²", None)],
)  # fmt: skip
def test_retry_only_when_all_ascii_digits(value: str, expected: int | None) -> None:
    events, decoder = decode(f"retry: {value}\ndata: x\n\n".encode())
    assert decoder.retry == expected
    assert events == [ServerSentEvent("message", "x", "", expected)]


def test_retry_without_data_sets_the_decoder_and_dispatches_nothing() -> None:
    events, decoder = decode(b"retry: 100\n\ndata: x\n\n")
    assert events == [ServerSentEvent("message", "x", "", None)]
    assert decoder.retry == 100


def test_retry_line_counts_even_when_its_block_is_cut_off() -> None:
    """The field is processed when its line ends; only dispatching needs the blank line."""
    _, decoder = decode(b"data: x\n\nretry: 250\n")
    assert decoder.retry == 250
    assert not decoder.discarded


@pytest.mark.parametrize(
    ("tail", "discarded"),
    [(b"", False), (b"\n", False), (b": ping\n", False), (b"retry: 9\n", False),
     (b"data: part", True), (b"data: whole line\n", True), (b"id: 3\n", True),
     (b"event: x\n", True), (b":partial comment", True), (b"\xe4\xb8", True)],
)  # fmt: skip
def test_discarded_tells_a_cut_stream_from_a_clean_end(tail: bytes, discarded: bool) -> None:
    events, decoder = decode(b"data: ok\n\n" + tail)
    assert [event.data for event in events] == ["ok"]
    assert decoder.discarded is discarded


def test_events_are_immutable() -> None:
    event = ServerSentEvent(data="x")
    assert (event.event, event.id, event.retry) == ("message", "", None)
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]


# --- Any chunking gives the spec's events, as early as the spec allows ------------------

TOKENS = [
    "data", "data:", "data: ", "event:", "event: up", "id:", "id: 4", "id", "retry:",
    "retry: 15", "retry: x", ":", ": c", " ", "x", "ab", "Data:", "é", "你好", "🙂", "👩‍💻",
    "\u2028", "\x85", "\x00", "\ufeff", "\r", "\n", "\r\n", "\n\n", "\r\r",
]  # fmt: skip
BAD_BYTES = st.sampled_from([b"\xff", b"\xe4\xb8", b"\xf0\x9f\x99", b"\xc3"])  # invalid/cut
TOKEN = st.one_of(st.sampled_from(TOKENS).map(str.encode), BAD_BYTES)
# Well-formed-looking lines too, so that multi-line blocks are common, not just token soup.
EOL = st.sampled_from(["\n", "\r", "\r\n"])
FIELD = st.sampled_from(["data", "data:", "data: ", "event: ", "id: ", "retry: ", ":", "x:"])
VALUE = st.lists(
    st.sampled_from(["1", "a", " ", ":", "你", "🙂", "٣", "\u2028", "\x00"]), max_size=3
)
LINE = st.tuples(FIELD, VALUE.map("".join), EOL).map("".join)
BLOCK = st.tuples(st.lists(LINE, max_size=4).map("".join), EOL).map("".join)  # ends blank
LINES = st.tuples(
    st.sampled_from(["", "\ufeff"]), st.lists(BLOCK, max_size=8), st.lists(LINE, max_size=2)
).map(lambda parts: (parts[0] + "".join(parts[1]) + "".join(parts[2])).encode())
BODY = st.one_of(
    st.lists(TOKEN, max_size=60).map(b"".join),
    LINES,
    st.tuples(LINES, BAD_BYTES, LINES).map(b"".join),
    st.binary(max_size=80),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    body = draw(BODY)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=len(body) + 2)))
    edges = [0, *cuts, len(body)]
    return body, [body[a:b] for a, b in itertools.pairwise(edges)]


def check_against_spec(body: bytes, chunks: list[bytes]) -> None:
    decoder = EventStreamDecoder()
    events: list[ServerSentEvent] = []
    seen = 0
    for chunk in chunks:
        events += decoder.feed(chunk)
        seen += len(chunk)
        # Nothing is held back that the spec would already have dispatched.
        assert events == SpecModel(body[:seen]).events
    assert decoder.end() == []
    model = SpecModel(body)
    assert events == model.events
    assert (decoder.last_event_id, decoder.retry) == (model.last_event_id, model.retry)
    assert decoder.discarded == model.discarded


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(chunked())
def test_any_chunking_matches_the_spec(case: tuple[bytes, list[bytes]]) -> None:
    check_against_spec(*case)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(BODY)
def test_byte_by_byte_matches_the_spec(body: bytes) -> None:
    """One byte per chunk splits every UTF-8 character and every CRLF."""
    check_against_spec(body, [body[i : i + 1] for i in range(len(body))])


@settings(max_examples=200, deadline=None)
@given(chunked())
def test_chunking_does_not_change_the_events(case: tuple[bytes, list[bytes]]) -> None:
    body, chunks = case
    assert decode(*chunks)[0] == decode(body)[0]


def test_long_line_in_tiny_chunks_is_not_quadratic() -> None:
    """Pieces of an unfinished frame are joined once: 1 MB in 4-byte chunks stays fast."""
    line = b"data: " + b"x" * 1_000_000 + b"\n"
    chunks = [line[i : i + 4] for i in range(0, len(line), 4)]
    assert data_of(*chunks, b"\n") == ["x" * 1_000_000]


# --- A real server, read with httpx -----------------------------------------------------

STREAM = (
    "\ufeff: hello\r\n\r\n"
    'id: 1\r\ndata: {"delta": "你好，"}\r\n\r\n'
    'event: delta\ndata: {"delta": "世界 🙂👩‍💻"}\n\n'
    "retry: 1500\rdata: line one\rdata: line two\r\r"
    "data: [DONE]\n\n"
).encode()
STREAM_EVENTS = [
    ServerSentEvent("message", '{"delta": "你好，"}', "1"),
    ServerSentEvent("delta", '{"delta": "世界 🙂👩‍💻"}', "1"),
    ServerSentEvent("message", "line one\nline two", "1", 1500),
    ServerSentEvent("message", "[DONE]", "1"),
]


def random_chunks(body: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, start = [], 0
    while start < len(body):
        size = rng.choice([1, 2, 3, rng.randint(1, 40)])
        chunks.append(body[start : start + size])
        start += size
    return chunks


def read_events(url: str) -> tuple[list[ServerSentEvent], EventStreamDecoder]:
    decoder = EventStreamDecoder()
    events = []
    with httpx.Client() as client, client.stream("GET", url) as response:
        for chunk in response.iter_raw():
            events += decoder.feed(chunk)
    events += decoder.end()
    return events, decoder


@pytest.mark.parametrize("seed", range(8))
def test_loopback_stream_in_random_chunkings(server: LoopbackServer, seed: int) -> None:
    # The charset header is wrong on purpose: event streams are UTF-8 regardless.
    headers = {"Content-Type": "text/event-stream; charset=iso-8859-1"}
    url = server.route("/sse", Script(random_chunks(STREAM, seed), headers=headers))
    events, decoder = read_events(url)
    assert events == STREAM_EVENTS
    assert (decoder.last_event_id, decoder.retry, decoder.discarded) == ("1", 1500, False)


def test_loopback_stream_cut_mid_event(server: LoopbackServer) -> None:
    body = b'data: {"delta": "a"}\n\ndata: {"delta": "b'
    url = server.route("/cut", Script([body[:10], body[10:30], body[30:]], cut_after=3))
    decoder = EventStreamDecoder()
    events = []
    with (
        pytest.raises(httpx.RemoteProtocolError),  # the chunked body never finished
        httpx.Client() as client,
        client.stream("GET", url) as response,
    ):
        for chunk in response.iter_raw():
            events += decoder.feed(chunk)
    events += decoder.end()
    assert events == [ServerSentEvent("message", '{"delta": "a"}')]
    assert decoder.discarded
