"""`streamchat`: chat, replay, serve, demo and doctor from the terminal.

On a terminal, `chat` and `demo` render the answer as live Markdown (`_terminal`).
Piped, or with `--plain`, stdout carries exactly the assistant's text, so
`streamchat chat ... > answer.md` saves the answer; reasoning, progress and errors go
to stderr. Nothing the model or the server sends drives the terminal: control
characters are shown escaped wherever they would reach one (`_terminal.neutralize`).
`chat --record FILE` saves the answer as a tape (docs/tape.md), which `replay FILE`
types again at its recorded pace, with no network and no key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from . import _replay, _tape
from ._explain import explain
from ._pacing import type_out
from ._secrets import Secrets
from ._terminal import LiveDisplay, Stats, neutralize
from .deltas import Delta, Handlers, ReasoningDelta, StreamError, ToolCallDelta
from .providers import PROVIDERS, ChatRequest, build_request
from .transport import Limits, Retries, Timeouts, stream_deltas
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
    except BrokenPipeError:  # `streamchat chat ... | head`: the reader has all it wanted
        # https://docs.python.org/3/library/signal.html#note-on-sigpipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamchat", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="stream one answer into the terminal")
    chat.add_argument("url", help="the endpoint, e.g. https://api.openai.com/v1/chat/completions")
    chat.add_argument("prompt")
    _request_arguments(chat)
    _pace_arguments(chat)
    chat.add_argument(
        "--record", metavar="FILE", help="save the prompt and the timed answer as a tape"
    )
    chat.set_defaults(run=_run_chat)

    replay = commands.add_parser(
        "replay", help="type a recorded conversation (a tape) again, offline"
    )
    replay.add_argument("tape", help="a tape, from `chat --record` or StreamChat.save")
    replay.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="how much faster than recorded (0.25 to 8; default 1: the recorded pace)",
    )
    replay.add_argument(
        "--typed",
        action="store_true",
        help="type at --speed instead of the recorded pace",
    )
    _pace_arguments(replay)
    replay.set_defaults(run=_run_replay)

    demo = commands.add_parser("demo", help="stream the demo answer from the embedded server")
    demo.add_argument("prompt", nargs="?", default="Show me what streamchat can render.")
    _pace_arguments(demo)
    demo.set_defaults(run=_run_demo)

    serve = commands.add_parser("serve", help="run the embedded demo server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8008)
    serve.add_argument(
        "--rate",
        type=float,
        help="characters per second, 0 = unthrottled (default: faster than the Speed slider)",
    )
    serve.set_defaults(run=_run_serve)

    race = commands.add_parser(
        "race", help="one prompt to several endpoints at once, with their figures"
    )
    race.add_argument("urls", nargs="+", metavar="URL", help="an endpoint per lane")
    race.add_argument("prompt")
    race.add_argument(
        "--label", action="append", default=[], help="a lane's name (one per URL, in order)"
    )
    race.add_argument("--json", action="store_true", help="print the results as JSON lines")
    _request_arguments(race, lanes=True)
    race.set_defaults(run=_run_race)

    doctor = commands.add_parser("doctor", help="diagnose why an endpoint does not stream")
    doctor.add_argument("url")
    doctor.add_argument("prompt", nargs="?", default="Say hello.")
    _request_arguments(doctor)
    _doctor_arguments(doctor)
    doctor.set_defaults(run=_run_doctor)
    return parser


def _request_arguments(parser: argparse.ArgumentParser, *, lanes: bool = False) -> None:
    if lanes:  # `race`: one --model for every URL, or one per URL in order
        parser.add_argument(
            "--model", action="append", default=[], help="model name (one, or one per URL)"
        )
    else:
        parser.add_argument("--model", help="model name (default: the provider's or the server's)")
    parser.add_argument("--provider", default="auto", choices=("auto", *PROVIDERS))
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V", help="extra header (repeatable)"
    )
    parser.add_argument("--system", help="system prompt")
    parser.add_argument(
        "--max-tokens",
        type=_positive_int,
        metavar="N",
        help="cap the answer at N tokens, in the provider's own field (default: the server's;"
        " 4096 for Anthropic, which requires one)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra top-level body field in the provider's terms, e.g. temperature=0.2 or"
        " stop='[\"END\"]' (VALUE is JSON when it parses, else a string; repeatable;"
        " overrides --max-tokens's field)",
    )
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


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's own options (the request options are shared with `chat`)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for the whole answer"
    )
    parser.add_argument(
        "--http2", action="store_true", help="ask for HTTP/2 like a browser (needs h2)"
    )


def _pace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="characters per second (0 = as they arrive; default 120 on a terminal, else 0)",
    )
    parser.add_argument("--step", type=int, default=1, help="characters per tick")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print the answer's text as it is, without rendering it (always so when piped)",
    )


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"streamchat: --header needs K:V, got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def parse_options(values: Sequence[str]) -> dict[str, Any]:
    """`--option KEY=VALUE` pairs as body fields: VALUE as JSON when it parses, else text."""
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"streamchat: --option needs KEY=VALUE, got {value!r}")
        try:
            options[key.strip()] = json.loads(raw)
        except ValueError:
            options[key.strip()] = raw
    return options


def _positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _run_chat(args: argparse.Namespace) -> int:
    request = build_request(
        args.url,
        [{"role": "user", "content": args.prompt}],
        provider=args.provider,
        model=args.model,
        system=args.system,
        headers=parse_headers(args.header),
        options=parse_options(args.option),
        max_tokens=args.max_tokens,
    )
    timeouts = Timeouts(idle=args.idle_timeout, total=args.total_timeout)
    deltas = stream_deltas(request, timeouts=timeouts, retries=Retries(attempts=args.retries))
    if not args.record:
        return _type_answer(deltas, args, request.provider)
    recording = _tape.Recording(Limits().answer)
    try:
        return _type_answer(_tape.record(deltas, recording), args, request.provider)
    finally:  # also when stopped (Ctrl-C): what came is kept
        _save_recording(args, request, recording)


def _save_recording(args: argparse.Namespace, request: ChatRequest, recording: Any) -> None:
    secrets = Secrets.of(request.url, request.headers)
    source = _tape.describe(
        request.url,
        provider=request.provider,
        model=args.model,
        system=args.system,
        secrets=secrets,
    )
    tape = _tape.recorded_answer(args.prompt, recording, source, secrets)
    _tape.save(args.record, tape)
    print(f"streamchat: recorded to {args.record}", file=sys.stderr)


def _run_replay(args: argparse.Namespace) -> int:
    """`streamchat replay FILE`: each recorded prompt (on stderr) and its answer, typed
    as recorded (`--rate` times as fast) or, with `--typed`, at `--speed`."""
    try:
        tape = _tape.load(args.tape)
        replay = _replay.Replay(tape, "typed" if args.typed else "recorded", args.rate)
    except ValueError as exc:  # TapeError too: a clear message, no traceback
        raise SystemExit(f"streamchat: {exc}") from None
    if not args.typed and args.speed is None:
        args.speed = 0.0  # the text shows as it arrives: at the recorded pace
    code = 0
    messages: list[dict[str, Any]] = []
    for number, turn in enumerate(tape.turns):
        if number:
            sys.stdout.write("\n")
        print(f"> {neutralize(turn.prompt)}", file=sys.stderr, flush=True)
        messages.append({"role": "user", "content": turn.prompt})
        deltas = replay.answer(list(messages))
        code = max(code, _type_answer(deltas, args, str(tape.source.get("provider") or "")))
        messages.append({"role": "assistant", "content": turn.text})
    return code


def _run_race(args: argparse.Namespace) -> int:
    """Every URL answers the prompt at once; `--model` once for all or once per URL."""
    from ._race_terminal import lane_requests, run_race

    try:
        lanes = lane_requests(
            args.urls,
            args.prompt,
            models=args.model,
            labels=args.label,
            provider=args.provider,
            headers=parse_headers(args.header),
            system=args.system,
            options=parse_options(args.option),
        )
    except ValueError as exc:
        print(f"streamchat race: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=args.json)
    rows = run_race(
        lanes,
        args.prompt,
        console=console,
        timeouts=Timeouts(idle=args.idle_timeout, total=args.total_timeout),
        retries=Retries(attempts=args.retries),
    )
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    return 1 if all(row["error"] for row in rows) else 0


def _run_demo(args: argparse.Namespace) -> int:
    from .server import demo_server

    request = build_request(demo_server().url, [{"role": "user", "content": args.prompt}])
    return _type_answer(stream_deltas(request), args, request.provider)


def _run_serve(args: argparse.Namespace) -> int:
    from .server import DEFAULT_RATE, DemoServer

    rate = DEFAULT_RATE if args.rate is None else args.rate
    server = DemoServer(rate=rate, host=args.host, port=args.port)
    print(f"streamchat demo server: {server.url}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


def _run_doctor(args: argparse.Namespace) -> int:
    """The doctor's report; on a terminal, a progress line on stderr while it measures.

    The report is held back until the progress line is gone, so the two never mix
    when stdout and stderr are the same terminal.
    """
    if not sys.stderr.isatty():
        return _print_diagnosis(args)
    report = io.StringIO()
    console = Console(stderr=True, highlight=False)
    with _measuring(console) as progress, contextlib.redirect_stdout(report):
        code = _print_diagnosis(args, progress)
    sys.stdout.write(report.getvalue())
    return code


def _print_diagnosis(
    args: argparse.Namespace, progress: Callable[[int, int], None] | None = None
) -> int:
    """`streamchat doctor URL [PROMPT]`: print the report; exit 0 only for `ok`."""
    from .doctor import diagnose  # only the doctor needs it: keep `chat`'s start-up short

    try:
        diagnosis = diagnose(
            args.url,
            prompt=args.prompt,
            provider=args.provider,
            model=args.model,
            headers=parse_headers(args.header),
            system=args.system,
            timeout=args.timeout,
            http2=args.http2,
            progress=progress,
            options=parse_options(args.option),
            max_tokens=args.max_tokens,
        )
    except ImportError as exc:  # --http2 without the h2 package
        raise SystemExit(f"streamchat: {exc}") from None
    print(json.dumps(diagnosis.to_json()) if args.json else diagnosis.render_text())
    return 0 if diagnosis.verdict == "ok" else 1


@contextlib.contextmanager
def _measuring(console: Console) -> Iterator[Callable[[int, int], None]]:
    """A transient status line: bytes and events so far, and the seconds it has taken."""
    start = time.monotonic()
    counts = [0, 0]

    def update(received: int, events: int) -> None:
        counts[:] = received, events

    class Status:
        def __rich__(self) -> Text:
            line = f"measuring · {counts[0]:,} bytes · {counts[1]:,} events"
            return Text(f"{line} · {time.monotonic() - start:.1f} s", "dim")

    spinner = Spinner("dots", Status(), style="dim")
    with Live(spinner, console=console, transient=True, redirect_stdout=False):
        yield update


def _type_answer(deltas: AsyncIterator[Delta], args: argparse.Namespace, provider: str) -> int:
    tty = sys.stdout.isatty()
    speed = args.speed if args.speed is not None else (120.0 if tty else 0.0)
    typewriter = Typewriter(speed, args.step)
    stats = Stats(time.monotonic())
    timed = _timed(deltas, stats)
    console = None if args.plain or not tty else _live_console()
    if console is not None:
        terminal = asyncio.run(_type_live(timed, typewriter, LiveDisplay(console)))
    else:
        terminal = asyncio.run(_type_plain(timed, typewriter, sys.stdout, sys.stderr, tty))
    if isinstance(terminal, StreamError):
        # Plain words and the fix first; the technical detail (server text) neutralized.
        told = explain(terminal, provider=provider, audience="terminal")
        detail = f"error ({terminal.kind}): {neutralize(told.detail)}"
        message = f"streamchat: {told.what}\n  {told.fix}\n  {detail}"
        print(message if tty else "\n" + message, file=sys.stderr)  # a tty's line has ended
    if sys.stderr.isatty():
        Console(stderr=True, highlight=False).print(Text(stats.summary(), "dim"))
    return 1 if isinstance(terminal, StreamError) else 0


def _live_console() -> Console | None:
    """A console that can redraw in place, or None (a dumb terminal gets the plain text)."""
    console = Console(highlight=False, markup=False, emoji=False)
    return None if console.is_dumb_terminal else console


async def _timed(deltas: AsyncIterator[Delta], stats: Stats) -> AsyncIterator[Delta]:
    async for delta in deltas:
        stats.observe(delta, time.monotonic())
        yield delta


async def _type_live(
    deltas: AsyncIterator[Delta], typewriter: Typewriter, display: LiveDisplay
) -> Delta:
    def reasoning(delta: ReasoningDelta) -> None:
        display.reasoning(neutralize(delta.text))

    def tool_call(delta: ToolCallDelta) -> None:
        if delta.name:
            display.note(f"[tool call: {neutralize(delta.name)}]")

    on_delta = Handlers(reasoning=reasoning, tool_call=tool_call)

    async def paint() -> None:
        while True:
            display.paint()
            await asyncio.sleep(display.interval)

    painter = asyncio.ensure_future(paint())
    try:
        return await type_out(deltas, typewriter, lambda t: display.answer(neutralize(t)), on_delta)
    finally:
        painter.cancel()
        display.close()
        if painter.done() and not painter.cancelled() and painter.exception():
            raise RuntimeError("drawing the answer failed") from painter.exception()


async def _type_plain(
    deltas: AsyncIterator[Delta], typewriter: Typewriter, out: TextIO, err: TextIO, tty: bool
) -> Delta:
    """The answer's text as it is on a pipe; on a terminal, with its controls escaped.

    Reasoning goes to stderr, labelled, and ends with a blank line before the answer.
    """
    show: Callable[[str], str] = neutralize if tty else str
    thinking = False
    last = "\n"

    def end_reasoning() -> None:
        nonlocal thinking
        if thinking:
            err.write("\n\n")
            thinking = False

    def on_text(text: str) -> None:
        nonlocal last
        end_reasoning()
        last = text[-1]
        out.write(show(text))
        out.flush()

    def reasoning(delta: ReasoningDelta) -> None:
        nonlocal thinking
        if not thinking:
            err.write("reasoning:\n")
            thinking = True
        err.write(neutralize(delta.text))
        err.flush()

    def tool_call(delta: ToolCallDelta) -> None:
        if delta.name:
            err.write(f"\n[tool call: {neutralize(delta.name)}]\n")

    on_delta = Handlers(reasoning=reasoning, tool_call=tool_call)

    if not tty and hasattr(out, "reconfigure"):
        out.reconfigure(errors="replace")  # a lone surrogate from JSON has no UTF-8 bytes
    terminal = await type_out(deltas, typewriter, on_text, on_delta)
    end_reasoning()
    if tty and last != "\n":
        out.write("\n")  # the prompt, the summary or an error starts on a line of its own
    return terminal


if __name__ == "__main__":
    raise SystemExit(main())
