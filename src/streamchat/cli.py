"""`streamchat`: chat, serve, demo and doctor from the terminal.

stdout carries exactly the assistant's text, so `streamchat chat ... > answer.md`
saves the answer; reasoning, progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TextIO

from ._pacing import type_out
from .deltas import Delta, Done, ReasoningDelta, StreamError, ToolCallDelta
from .providers import PROVIDERS, build_request
from .transport import Retries, Timeouts, stream_deltas
from .typewriter import Typewriter

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("\nstreamchat: stopped", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamchat", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="stream one answer into the terminal")
    chat.add_argument("url", help="the endpoint, e.g. https://api.openai.com/v1/chat/completions")
    chat.add_argument("prompt")
    _request_arguments(chat)
    _pace_arguments(chat)
    chat.set_defaults(run=_run_chat)

    demo = commands.add_parser("demo", help="stream the demo answer from the embedded server")
    demo.add_argument("prompt", nargs="?", default="Show me what streamchat can render.")
    _pace_arguments(demo)
    demo.set_defaults(run=_run_demo)

    serve = commands.add_parser("serve", help="run the embedded demo server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8008)
    serve.add_argument("--token-delay", type=float, default=0.03, help="seconds per token")
    serve.set_defaults(run=_run_serve)

    doctor = commands.add_parser("doctor", help="diagnose why an endpoint does not stream")
    doctor.add_argument("url")
    doctor.add_argument("prompt", nargs="?", default="Say hello.")
    _request_arguments(doctor)
    from . import doctor as doctor_module

    doctor_module.add_arguments(doctor)
    doctor.set_defaults(run=doctor_module.run_cli)
    return parser


def _request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model name (default: the provider's or the server's)")
    parser.add_argument("--provider", default="auto", choices=("auto", *PROVIDERS))
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="extra header (repeatable)"
    )
    parser.add_argument("--system", help="system prompt")
    parser.add_argument(
        "--idle-timeout", type=float, default=Timeouts().idle, help="seconds of silence allowed"
    )
    parser.add_argument(
        "--total-timeout", type=float, default=Timeouts().total, help="seconds for the whole answer"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=Retries().attempts,
        help="retries of a request that failed before its first byte (connect, 429, 5xx)",
    )


def _pace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="characters per second (0 = as they arrive; default 120 on a terminal, else 0)",
    )
    parser.add_argument("--step", type=int, default=1, help="characters per tick")


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"streamchat: --header needs K:V, got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def _run_chat(args: argparse.Namespace) -> int:
    request = build_request(
        args.url,
        [{"role": "user", "content": args.prompt}],
        provider=args.provider,
        model=args.model,
        system=args.system,
        headers=parse_headers(args.header),
    )
    timeouts = Timeouts(idle=args.idle_timeout, total=args.total_timeout)
    deltas = stream_deltas(request, timeouts=timeouts, retries=Retries(attempts=args.retries))
    return _type_answer(deltas, args)


def _run_demo(args: argparse.Namespace) -> int:
    from .server import demo_server

    request = build_request(demo_server().url, [{"role": "user", "content": args.prompt}])
    return _type_answer(stream_deltas(request), args)


def _run_serve(args: argparse.Namespace) -> int:
    from .server import DemoServer

    server = DemoServer(token_delay=args.token_delay, host=args.host, port=args.port)
    print(f"streamchat demo server: {server.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


def _type_answer(deltas: AsyncIterator[Delta], args: argparse.Namespace) -> int:
    speed = args.speed if args.speed is not None else (120.0 if sys.stdout.isatty() else 0.0)
    terminal = asyncio.run(_type(deltas, Typewriter(speed, args.step), sys.stdout, sys.stderr))
    if isinstance(terminal, StreamError):
        print(f"\nstreamchat: error ({terminal.kind}): {terminal.message}", file=sys.stderr)
        return 1
    return 0


async def _type(
    deltas: AsyncIterator[Delta], typewriter: Typewriter, out: TextIO, err: TextIO
) -> Delta:
    def on_text(text: str) -> None:
        out.write(text)
        out.flush()

    def on_delta(delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            err.write(delta.text)
            err.flush()
        elif isinstance(delta, ToolCallDelta) and delta.name:
            err.write(f"\n[tool call: {delta.name}]\n")

    terminal = await type_out(deltas, typewriter, on_text, on_delta)
    if isinstance(terminal, Done) and out.isatty():
        out.write("\n")
    return terminal


if __name__ == "__main__":
    raise SystemExit(main())
