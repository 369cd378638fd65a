"""CPU per streamed event between the socket and the typewriter, against plain httpx.

A loopback server (its own process: its CPU is not counted) streams an OpenAI-style
answer as 4-character `chat.completion.chunk` events, paced so that each event
arrives in its own read, as a real model's do. This process reads it three ways, in
turn, in the same run, and reports `time.process_time()` per event:

* peer: what a notebook user writes, `httpx.AsyncClient.stream` + `aiter_lines()` +
  `json.loads` of each `data:` line, appending the content;
* stream_deltas, httpx client: `streamchat.stream_deltas` through a default
  `httpx.AsyncClient` (httpcore reads through anyio), every delta consumed;
* stream_deltas: the same through `new_client()`, as the widget does (one shared
  client; its sockets read by `streamchat._network.AsyncioBackend`);
* + typewriter: the same deltas typed out by `_pacing.type_out` at the stream's own
  rate (the widget's path minus rendering and comm messages);
* new client: CPU of `new_client()`, the first in the process and later ones, and of
  a default `httpx.AsyncClient()` (the widget shares one client per kernel;
  `stream_deltas` without `client=` makes one per answer).

Ratios are to the peer, measured in the same rounds, so figures from a busy machine
stay comparable. Each figure is the median of `--rounds` rounds (variants interleaved).

    python benchmarks/bench_stream_cpu.py [--events 1500] [--rate 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

import paced
from streamchat import build_request, stream_deltas
from streamchat._pacing import type_out
from streamchat.deltas import TextDelta
from streamchat.transport import new_client
from streamchat.typewriter import Typewriter

TOKEN = "abcd"  # 4 characters per event, as in bench_kernel_cost


def serve(events: int, rate: float) -> None:
    paced.serve(lambda prompt: [TOKEN] * events, rate)


BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "go"}]}


def request(url: str):
    return build_request(url, [{"role": "user", "content": "go"}], model="m")


async def peer(url: str, client: httpx.AsyncClient) -> int:
    text = []
    async with client.stream("POST", url, json=BODY, timeout=60) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
    return len("".join(text))


async def deltas(url: str, client: httpx.AsyncClient) -> int:
    size = 0
    async for delta in stream_deltas(request(url), client=client):
        if isinstance(delta, TextDelta):
            size += len(delta.text)
    return size


async def typed(url: str, client: httpx.AsyncClient, chars_per_s: float) -> int:
    shown = []
    await type_out(
        stream_deltas(request(url), client=client),
        Typewriter(chars_per_s, max_lag=0.5),
        shown.append,
    )
    return len("".join(shown))


async def cpu_of(run: Callable[[], Awaitable[int]], expected: int) -> float:
    c0 = time.process_time()
    size = await run()
    cpu = time.process_time() - c0
    assert size == expected, (size, expected)
    return cpu


def client_ms(make: Callable[[], httpx.AsyncClient]) -> float:
    c0 = time.process_time()
    client = make()
    cpu = time.process_time() - c0
    asyncio.run(client.aclose())
    return 1e3 * cpu


async def measure(url: str, events: int, rate: float, rounds: int) -> dict[str, list[float]]:
    expected = events * len(TOKEN)
    runs = {
        "peer": lambda plain, ours: peer(url, plain),
        "stream_deltas, httpx client": lambda plain, ours: deltas(url, plain),
        "stream_deltas": lambda plain, ours: deltas(url, ours),
        "+ typewriter": lambda plain, ours: typed(url, ours, rate * len(TOKEN)),
    }
    figures: dict[str, list[float]] = {name: [] for name in runs}
    async with httpx.AsyncClient() as plain, new_client() as ours:
        for run in runs.values():  # warm the connections and imports
            await cpu_of(lambda run=run: run(plain, ours), expected)
        for _ in range(rounds):
            for name, run in runs.items():
                figures[name].append(await cpu_of(lambda run=run: run(plain, ours), expected))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.events, args.rate)
        return
    server, url = paced.start(__file__, "--events", str(args.events), "--rate", str(args.rate))
    clients = {  # before anything else: the first new_client() builds the TLS context
        "new_client(), first": client_ms(new_client),
        "new_client(), later": min(client_ms(new_client) for _ in range(3)),
        "httpx.AsyncClient()": min(client_ms(httpx.AsyncClient) for _ in range(3)),
    }
    try:
        figures = asyncio.run(measure(url, args.events, args.rate, args.rounds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    per_event = {k: 1e6 * statistics.median(v) / args.events for k, v in figures.items()}
    print(f"{args.events} events of {len(TOKEN)} chars at {args.rate:g}/s, median of {args.rounds}")
    print(f"{'':<30}{'us/event':>10}{'x peer':>8}")
    for name, us in per_event.items():
        print(f"{name:<30}{us:>10.1f}{us / per_event['peer']:>8.2f}")
    for name, ms in clients.items():
        print(f"{name:<30}{ms:>10.1f} ms CPU")


if __name__ == "__main__":
    main()
