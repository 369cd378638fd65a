"""Fuzzing the sans-I/O stages: they never raise, and chunking never changes the result.

(The provider parsers' own fuzz test, any JSON payloads ending in exactly one terminal
delta, lives with their recordings in test_providers_streams.py.)

Inputs are arbitrary bytes and text biased towards each format's syntax, so the
fuzzer reaches the interesting branches instead of only the error paths.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamchat.ndjson import NDJSONDecoder
from streamchat.render import MarkdownStream, render_markdown
from streamchat.sse import EventStreamDecoder

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SSE_PIECES = st.sampled_from(
    [
        b"data:",
        b"data: ",
        b"event: ",
        b"id: ",
        b"retry: 10",
        b":",
        b"\r",
        b"\n",
        b"\r\n",
        b"\xef\xbb\xbf",
        b"\xe4\xbd",
        b"\xa0",
        b"\xff",
        b"\x00",
        b"[DONE]",
        b'{"choices":[',
        b"x",
    ]
)
MD_PIECES = st.sampled_from(
    [
        "**",
        "*",
        "_",
        "`",
        "```",
        "~~",
        "[",
        "](",
        ")",
        "<",
        ">",
        "#",
        "- ",
        "1. ",
        "  ",
        "|",
        "---",
        "\n",
        "\n\n",
        "> ",
        "<script>",
        "javascript:",
        "![x](",
        "http://a.b/",
        "你好",
        "👨‍👩‍👧",
        "a",
    ]
)


def byte_streams() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), st.lists(SSE_PIECES, max_size=60).map(b"".join))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def decode_all(decoder_type: type, chunks: list[bytes]) -> list:
    decoder = decoder_type()
    out = [item for chunk in chunks for item in decoder.feed(chunk)]
    return out + decoder.end()


@FUZZ
@given(byte_streams(), st.lists(st.integers(min_value=0), max_size=20))
def test_sse_decoder_total_and_chunking_invariant(data: bytes, cuts: list[int]) -> None:
    assert decode_all(EventStreamDecoder, chunked(data, cuts)) == decode_all(
        EventStreamDecoder, [data]
    )


@FUZZ
@given(byte_streams(), st.lists(st.integers(min_value=0), max_size=20))
def test_ndjson_decoder_total_and_chunking_invariant(data: bytes, cuts: list[int]) -> None:
    assert decode_all(NDJSONDecoder, chunked(data, cuts)) == decode_all(NDJSONDecoder, [data])


@FUZZ
@given(st.lists(MD_PIECES, max_size=40).map("".join), st.lists(st.integers(1, 9), max_size=30))
def test_markdown_stream_chunking_invariant(text: str, sizes: list[int]) -> None:
    stream = MarkdownStream()
    position = 0
    for size in sizes or [len(text) + 1]:
        stream.append(text[position : position + size])
        position += size
    stream.append(text[position:])
    stream.finish()
    assert stream.text == text
    assert stream.html == render_markdown(text)
