"""NDJSONDecoder: line framing for Ollama-style streams, under any chunking, and over a real
HTTP server read through httpx."""

from __future__ import annotations

import itertools
import json
import random
import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamchat.ndjson import NDJSONDecoder

from loopback import LoopbackServer, Script


def lines_of(*chunks: bytes) -> list[str]:
    decoder = NDJSONDecoder()
    lines = []
    for chunk in chunks:
        lines += decoder.feed(chunk)
    return lines + decoder.end()


def expected_lines(body: bytes) -> list[str]:
    """The obvious whole-body reading: UTF-8 with U+FFFD, one BOM, CR / LF / CRLF."""
    text = body.decode("utf-8", "replace").removeprefix("\ufeff")
    return [line for line in re.split("\r\n|\r|\n", text) if line.strip(" \t")]


def test_lines_are_returned_as_soon_as_they_end() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"b"') == ['{"a": 1}']
    assert decoder.feed(b": 2}\n") == ['{"b": 2}']
    assert decoder.end() == []


def test_last_line_without_newline_comes_from_end() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"done": true}') == ['{"a": 1}']
    assert decoder.end() == ['{"done": true}']


def test_blank_and_whitespace_lines_are_skipped() -> None:
    assert lines_of(b'\n\n{"a": 1}\n  \t\n\r\n{"b": 2}\n \n') == ['{"a": 1}', '{"b": 2}']


def test_cr_and_crlf_line_ends_even_split_across_chunks() -> None:
    assert lines_of(b"1\r\n2\r", b"\n3\r", b"4\r\n") == ["1", "2", "3", "4"]


def test_unicode_line_separators_inside_json_strings_do_not_split_lines() -> None:
    """JSON allows raw U+2028 / U+2029 in strings; str.splitlines would cut there."""
    line = json.dumps({"content": "a\u2028b\u2029c\x85d"}, ensure_ascii=False)
    assert lines_of(line.encode() + b"\n") == [line]


def test_character_split_across_chunks_is_decoded_whole() -> None:
    body = '{"content": "你好 🙂"}\n'.encode()
    for cut in range(len(body) + 1):
        assert lines_of(body[:cut], body[cut:]) == ['{"content": "你好 🙂"}']


def test_invalid_bytes_become_replacement_characters_and_a_bom_is_dropped() -> None:
    assert lines_of(b"\xef\xbb\xbf{\xff}\n{\xe4\xb8") == ["{\ufffd}", "{\ufffd"]


PIECES = st.sampled_from(['{"a": 1}', "你好", "🙂", " ", "\t", "\r", "\n", "\r\n", "\u2028"])
BAD_BYTES = st.sampled_from([b"\xff", b"\xe4\xb8", b"\xef\xbb\xbf"])
BODY = st.one_of(
    st.lists(st.one_of(PIECES.map(str.encode), BAD_BYTES), max_size=40).map(b"".join),
    st.binary(max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(BODY, st.data())
def test_any_chunking_gives_the_same_lines(body: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=len(body) + 2)))
    edges = [0, *cuts, len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(edges)]
    assert lines_of(*chunks) == expected_lines(body)
    assert lines_of(*[body[i : i + 1] for i in range(len(body))]) == expected_lines(body)


def test_long_line_in_tiny_chunks_is_not_quadratic() -> None:
    line = b'{"x": "' + b"y" * 1_000_000 + b'"}'
    assert lines_of(*[line[i : i + 4] for i in range(0, len(line), 4)], b"\n") == [line.decode()]


OLLAMA = [
    {"model": "llama3.2", "message": {"role": "assistant", "content": "你好"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": " 🙂\n"}, "done": False},
    {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True},
]


@pytest.mark.parametrize("seed", range(6))
def test_loopback_ollama_stream_in_random_chunkings(server: LoopbackServer, seed: int) -> None:
    body = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in OLLAMA).encode()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(body)), 12))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    headers = {"Content-Type": "application/x-ndjson"}
    url = server.route("/api/chat", Script(chunks, headers=headers))
    decoder = NDJSONDecoder()
    lines = []
    with httpx.Client() as client, client.stream("POST", url, json={}) as response:
        for chunk in response.iter_raw():
            lines += decoder.feed(chunk)
    lines += decoder.end()
    assert [json.loads(line) for line in lines] == OLLAMA
