"""Throughput of `streamchat.sse.EventStreamDecoder` against the SSE decoders people use.

The stream is what a chat completion looks like on the wire: a few thousand OpenAI-style
`chat.completion.chunk` events whose content mixes English, Chinese and emoji (so UTF-8
characters get split across chunks), generated from a fixed seed. It is cut three ways:

- event-sized: random 50-400 byte chunks, what a socket usually hands over;
- tiny: random 1-7 byte chunks, the worst case for per-chunk overhead;
- bulk: 64 KiB chunks, a stream read after the fact or through a buffering proxy.

Each implementation is driven the way its own library drives it, without a network:

- httpx-sse: `EventSource.iter_sse()` over a response stand-in whose `iter_text()` does
  what httpx's does (httpx's own `TextDecoder` and `TextChunker` over the byte chunks);
  httpx-sse then splits lines with its `SSELineDecoder` and decodes them with `SSEDecoder`.
- openai: `openai._streaming.SSEDecoder().iter_bytes(chunks)`, as `Stream._iter_events` calls it.
- sseclient-py: `sseclient.SSEClient(chunks).events()`.

All must give the same (event, data) pairs. Each timing is the best of N runs
(time.perf_counter; N >= 5, more for short runs), with the implementations interleaved in
every round, to stay robust on a busy machine.
Run: `python benchmarks/bench_sse.py [--quick] [--rounds N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import httpx_sse
import sseclient
from httpx._decoders import TextChunker, TextDecoder
from openai._streaming import SSEDecoder as OpenAIDecoder

from streamchat.sse import EventStreamDecoder

Events = list[tuple[str, str]]
Decoder = Callable[[list[bytes]], Events]

WORDS = [
    "the",
    "stream",
    "token",
    "Markdown",
    "`code`",
    "**bold**",
    "你好",
    "世界",
    "流式",
    "输出",
    "模型",
    "中文字符",
    "🙂",
    "🚀",
    "👩‍💻",
    "🇯🇵",
    "é",
    "naïve",
    "—",
    "\\n",
]


def make_stream(events: int, seed: int = 1) -> bytes:
    """An OpenAI chat completions stream: role, content deltas, finish, usage, [DONE]."""
    rng = random.Random(seed)
    head = {"id": "chatcmpl-9xYz", "object": "chat.completion.chunk", "created": 1718000000}
    head |= {"model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1"}

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = json.dumps(head | {"choices": [choice]}, ensure_ascii=False)
        return f"data: {body}\n\n".encode()

    parts = [chunk({"role": "assistant", "content": ""})]
    for _ in range(events):
        text = "".join(rng.choice(WORDS) + rng.choice(["", " "]) for _ in range(rng.randint(1, 4)))
        parts.append(chunk({"content": text}))
    parts.append(chunk({}, "stop"))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def cut(body: bytes, low: int, high: int, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    chunks, start = [], 0
    while start < len(body):
        size = rng.randint(low, high)
        chunks.append(body[start : start + size])
        start += size
    return chunks


def ours(chunks: list[bytes]) -> Events:
    decoder = EventStreamDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.end()
    return [(event.event, event.data) for event in events]


class _TextResponse:
    """What `httpx_sse.EventSource` uses of an `httpx.Response`: headers and iter_text()."""

    headers: ClassVar[dict[str, str]] = {"content-type": "text/event-stream"}

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def iter_text(self) -> Iterator[str]:
        # httpx.Response.iter_text with chunk_size=None, minus the network.
        decoder, chunker = TextDecoder("utf-8"), TextChunker()
        for chunk in self._chunks:
            yield from chunker.decode(decoder.decode(chunk))
        yield from chunker.decode(decoder.flush())
        yield from chunker.flush()


def httpx_sse_events(chunks: list[bytes]) -> Events:
    source = httpx_sse.EventSource(_TextResponse(chunks))  # type: ignore[arg-type]
    return [(event.event, event.data) for event in source.iter_sse()]


def openai_events(chunks: list[bytes]) -> Events:
    events = OpenAIDecoder().iter_bytes(iter(chunks))
    return [(event.event or "message", event.data) for event in events]


def sseclient_events(chunks: list[bytes]) -> Events:
    events = sseclient.SSEClient(iter(chunks)).events()
    return [(event.event, event.data) for event in events]


IMPLEMENTATIONS: dict[str, Decoder] = {
    "streamchat": ours,
    "httpx-sse": httpx_sse_events,
    "openai": openai_events,
    "sseclient-py": sseclient_events,
}


def best_times(chunks: list[bytes], rounds: int, budget: float) -> tuple[dict[str, float], int]:
    """Best wall time per implementation, and the number of rounds that took.

    The implementations are interleaved in each round so noise hits all alike. Short runs
    get more rounds (up to `budget` seconds a round's worth), since on a busy machine the
    best of a few 10 ms runs is still mostly noise.
    """
    slowest = 0.0
    for decode in IMPLEMENTATIONS.values():
        start = time.perf_counter()
        decode(chunks)
        slowest = max(slowest, time.perf_counter() - start)
    rounds = max(rounds, min(50, int(budget / slowest)))
    best = dict.fromkeys(IMPLEMENTATIONS, float("inf"))
    for _ in range(rounds):
        for name, decode in IMPLEMENTATIONS.items():
            gc.collect()
            start = time.perf_counter()
            decode(chunks)
            best[name] = min(best[name], time.perf_counter() - start)
    return best, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer events, rounds)")
    parser.add_argument("--rounds", type=int, help="timed runs per implementation (best counts)")
    args = parser.parse_args()
    body = make_stream(events=600 if args.quick else 4000)
    rounds = args.rounds or (3 if args.quick else 5)
    budget = 0.2 if args.quick else 1.0
    profiles = {
        "event-sized": cut(body, 50, 400),
        "tiny": cut(body, 1, 7),
        "bulk": cut(body, 64 * 1024, 64 * 1024),
    }
    expected = ours([body])
    print(f"stream: {len(body) / 1e6:.2f} MB, {len(expected)} events; best of >= {rounds} runs")
    row = "{:<12} {:<14} {:>8} {:>11} {:>18} {:>6}"
    print(row.format("profile", "implementation", "MB/s", "events/s", "ours/fastest peer", "runs"))
    for profile, chunks in profiles.items():
        for name, decode in IMPLEMENTATIONS.items():
            if decode(chunks) != expected:
                raise SystemExit(f"{name} decodes the {profile} chunking differently")
        times, runs = best_times(chunks, rounds, budget)
        fastest_peer = min(seconds for name, seconds in times.items() if name != "streamchat")
        for name, seconds in times.items():
            megabytes = f"{len(body) / seconds / 1e6:.1f}"
            events = f"{len(expected) / seconds:,.0f}"
            ratio = f"{fastest_peer / seconds:.2f}x" if name == "streamchat" else ""
            print(row.format(profile, name, megabytes, events, ratio, runs))


if __name__ == "__main__":
    main()
