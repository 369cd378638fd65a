"""Tapes: a conversation recorded with its timing, to save, replay and resume it.

A live demo's enemies are the network, the API key, the model's randomness and its
latency on the day. So every answer keeps the deltas it was made of (text,
reasoning, tool calls, usage, the end or the error) with their arrival times
relative to the request (`Recording`), and `save` writes the conversation as a tape:
a versioned JSON document (docs/tape.md) with the prompts, the answers' timed deltas
and the source's description (provider, model, system, the URL without
credentials). `_replay.Replay` plays a tape back as a Python source, and
`resumed_turns` turns a tape or a list of messages into the turns and history a new
chat carries on from.

Sans-I/O but for `record` (it reads the clock) and `save`/`load` (a file): the
format and its checks are plain functions of their input.

Nothing secret goes on a tape: no header value, no key. The URL is masked
(`_secrets.mask_url`) and every text the tape holds has the request's secret values,
and the process's key variables, masked (`Secrets.mask`); error messages are
redacted in full as the widget shows them (`Secrets.redact`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._secrets import Secrets, mask_url
from .deltas import Delta, Done, ReasoningDelta, StreamError, TextDelta, ToolCallDelta, Usage

__all__ = [
    "FORMAT",
    "MAX_ENTRIES",
    "VERSION",
    "Recording",
    "Tape",
    "TapeError",
    "TapeTurn",
    "load",
    "record",
    "recorded_answer",
    "resumed",
    "resumed_turns",
    "save",
]

FORMAT = "streamchat-tape"
VERSION = 1
# Deltas one answer's recording keeps at most, besides its characters (the answer's own
# limit, `transport.Limits.answer`): a stream of a million empty tool-call fragments is
# bounded too. Past either bound the recording stops (`truncated`) and keeps its end.
MAX_ENTRIES = 200_000

Entry = dict[str, Any]  # one recorded delta: {"t": seconds, <kind>: value}


class TapeError(ValueError):
    """A file that is not a tape this version of streamchat can read, and why."""


# -- recording ------------------------------------------------------------------------


def delta_entry(delta: Delta, t: float) -> Entry:
    """One delta as the tape holds it: its time and one field named after its kind."""
    t = round(t, 4)
    if isinstance(delta, TextDelta):
        return {"t": t, "text": delta.text}
    if isinstance(delta, ReasoningDelta):
        return {"t": t, "reasoning": delta.text}
    if isinstance(delta, ToolCallDelta):
        call = {"index": delta.index, "id": delta.id, "name": delta.name}
        return {"t": t, "tool_call": {**call, "arguments": delta.arguments}}
    if isinstance(delta, Usage):
        usage = {"input_tokens": delta.input_tokens, "output_tokens": delta.output_tokens}
        return {"t": t, "usage": {**usage, "reasoning_tokens": delta.reasoning_tokens}}
    if isinstance(delta, Done):
        return {"t": t, "done": {"finish_reason": delta.finish_reason}}
    error = {"kind": delta.kind, "message": delta.message, "status": delta.status}
    return {"t": t, "error": {**error, "retry_after": delta.retry_after}}


def entry_delta(entry: Mapping[str, Any]) -> Delta:
    """The delta an entry records (checked by `_check_entry` first)."""
    if "text" in entry:
        return TextDelta(entry["text"])
    if "reasoning" in entry:
        return ReasoningDelta(entry["reasoning"])
    if "tool_call" in entry:
        return ToolCallDelta(**entry["tool_call"])
    if "usage" in entry:
        return Usage(**entry["usage"])
    if "done" in entry:
        return Done(entry["done"].get("finish_reason"))
    return StreamError(**entry["error"])


@dataclass
class Recording:
    """One answer's deltas and their times (seconds since its request), bounded.

    Pure: `add` is given the time. Keeps at most `chars` characters and
    `MAX_ENTRIES` deltas; past either it keeps only the terminal delta, and says so.
    The deltas are kept as they are (the pipeline made them anyway) and their times in
    an array: ~110 bytes per token-sized delta, not the ~260 of a JSON-ready entry,
    which `entries` makes only when the tape is saved.
    """

    chars: int
    deltas: list[Delta] = field(default_factory=list)
    times: array[float] = field(default_factory=lambda: array("d"))
    truncated: bool = False
    _size: int = 0

    def add(self, delta: Delta, t: float) -> None:
        terminal = isinstance(delta, (Done, StreamError))
        if not terminal:
            size = len(getattr(delta, "text", "")) + len(getattr(delta, "arguments", ""))
            if self.truncated or len(self.deltas) >= MAX_ENTRIES or self._size + size > self.chars:
                self.truncated = True
                return
            self._size += size
        self.deltas.append(delta)
        self.times.append(t)

    @property
    def entries(self) -> list[Entry]:
        return [delta_entry(delta, t) for delta, t in zip(self.deltas, self.times, strict=True)]


async def record(
    deltas: AsyncIterator[Delta],
    recording: Recording,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Delta]:
    """`deltas` passed through unchanged, each added to `recording` with its time since
    this call (the request is made as the stream is first read)."""
    start = clock()
    try:
        async for delta in deltas:
            recording.add(delta, clock() - start)
            yield delta
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()


class Recordings:
    """A chat's recordings by turn id: one per answer still in the conversation."""

    def __init__(self) -> None:
        self._by_turn: dict[int, Recording] = {}

    def start(self, turn_id: int, chars: int, turns: Iterable[Mapping[str, Any]]) -> Recording:
        """A new answer's recording; those of answers no longer in `turns` (retried) go."""
        kept = {turn["id"] for turn in turns}
        self._by_turn = {key: value for key, value in self._by_turn.items() if key in kept}
        recording = self._by_turn[turn_id] = Recording(chars)
        return recording

    def get(self, turn_id: int) -> Recording | None:
        return self._by_turn.get(turn_id)


# -- the tape -------------------------------------------------------------------------


@dataclass(frozen=True)
class TapeTurn:
    """A prompt and its answer: status, Markdown text as the history keeps it, the error
    shown (if any) and the recorded deltas."""

    prompt: str
    status: str = "done"
    text: str = ""
    error: str | None = None
    note: str | None = None
    deltas: tuple[Entry, ...] = ()
    truncated: bool = False


@dataclass(frozen=True)
class Tape:
    """A recorded conversation (see docs/tape.md for its JSON form)."""

    turns: tuple[TapeTurn, ...]
    source: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def prompts(self) -> list[str]:
        """The recorded prompts, each once, in the order first asked."""
        return list(dict.fromkeys(turn.prompt for turn in self.turns))

    def to_json(self) -> dict[str, Any]:
        turns = []
        for turn in self.turns:
            answer: dict[str, Any] = {"status": turn.status, "text": turn.text}
            answer |= {"error": turn.error, "note": turn.note, "truncated": turn.truncated}
            turns.append({"prompt": turn.prompt, "answer": answer | {"deltas": list(turn.deltas)}})
        head = {"format": FORMAT, "version": VERSION, "created": self.created}
        return head | {"source": dict(self.source), "turns": turns}


def describe(
    url: str, *, provider: str | None, model: str | None, system: str | None, secrets: Secrets
) -> dict[str, Any]:
    """The source as a tape names it: never a key or a header value."""
    return {
        "kind": "http" if url else "python",
        "url": secrets.redact(mask_url(url)) if url else None,
        "provider": provider,
        "model": model,
        "system": secrets.mask(system) if system else system,
    }


def from_chat(
    turns: Sequence[Mapping[str, Any]],
    sources: Sequence[str],
    recordings: Recordings,
    source: Mapping[str, Any],
    secrets: Secrets,
) -> Tape:
    """A chat's conversation as a tape: each finished answer after its prompt.

    An answer still being typed is left out (and the prompt it answers), as in the
    saved copy; so is an answer with no prompt (a single stream's).
    """
    taped: list[TapeTurn] = []
    prompt: str | None = None
    for turn, text in zip(turns, sources, strict=True):
        if turn["role"] == "user":
            prompt = text
            continue
        if prompt is None or turn.get("status") not in ("done", "stopped", "error"):
            continue
        recording = recordings.get(turn["id"])
        entries = () if recording is None else tuple(_masked(recording.entries, secrets))
        taped.append(
            TapeTurn(
                prompt=secrets.mask(prompt),
                status=turn["status"],
                text=secrets.mask(text),
                error=secrets.redact(turn["error"]) if turn.get("error") else None,
                note=turn.get("note"),
                deltas=entries,
                truncated=recording is not None and recording.truncated,
            )
        )
        prompt = None
    return Tape(tuple(taped), source, _now())


def recorded_answer(
    prompt: str, recording: Recording, source: Mapping[str, Any], secrets: Secrets
) -> Tape:
    """One prompt and the answer `recording` holds, as a tape (the CLI's `--record`)."""
    entries = list(recording.entries)
    end = entries[-1] if entries and ("done" in entries[-1] or "error" in entries[-1]) else None
    status = "stopped" if end is None else "error" if "error" in end else "done"
    text = "".join(entry.get("text", "") for entry in entries)
    error = secrets.redact(end["error"]["message"]) if end is not None and "error" in end else None
    turn = TapeTurn(
        prompt=secrets.mask(prompt),
        status=status,
        text=secrets.mask(text),
        error=error,
        deltas=tuple(_masked(entries, secrets)),
        truncated=recording.truncated,
    )
    return Tape((turn,), source, _now())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _masked(entries: Iterable[Entry], secrets: Secrets) -> Iterable[Entry]:
    for entry in entries:
        if "error" in entry:
            error = entry["error"]
            yield {**entry, "error": {**error, "message": secrets.redact(error["message"])}}
        elif "tool_call" in entry:
            call = entry["tool_call"]
            yield {**entry, "tool_call": {**call, "arguments": secrets.mask(call["arguments"])}}
        elif "text" in entry or "reasoning" in entry:
            kind = "text" if "text" in entry else "reasoning"
            yield {**entry, kind: secrets.mask(entry[kind])}
        else:
            yield entry


def save(path: str | os.PathLike[str], tape: Tape) -> Path:
    """Write `tape` to `path` as UTF-8 JSON (written whole, then moved into place)."""
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(_dumps(tape.to_json()) + "\n", encoding="utf-8")
    partial.replace(target)
    return target


def _dumps(data: dict[str, Any]) -> str:
    """The tape's JSON, indented, with each delta on a line of its own (diffable, and a
    third of the lines of indenting them too)."""
    compact: list[str] = []
    mark = uuid.uuid4().hex  # no text on the tape can be a placeholder by chance

    def placeholder(entry: Entry) -> str:
        compact.append(json.dumps(entry, ensure_ascii=False))
        return f"{mark}{len(compact) - 1}"

    for turn in data["turns"]:
        turn["answer"]["deltas"] = [placeholder(entry) for entry in turn["answer"]["deltas"]]
    text = json.dumps(data, ensure_ascii=False, indent=1)
    return re.sub(f'"{mark}(\\d+)"', lambda match: compact[int(match.group(1))], text)


def load(path: str | os.PathLike[str] | Tape) -> Tape:
    """The tape in `path`, checked; a `TapeError` that says what is wrong otherwise."""
    if isinstance(path, Tape):
        return path
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TapeError(f"no tape at {os.fspath(path)!r}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TapeError(f"{os.fspath(path)!r} is not a tape (not JSON: {exc})") from None
    return from_json(data, where=os.fspath(path))


def from_json(data: object, where: str = "the tape") -> Tape:
    """A tape from its JSON form, checked field by field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TapeError(f'{where} is not a tape (no "format": {FORMAT!r})')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TapeError(f'{where}: "version" must be a positive integer, got {version!r}')
    if version > VERSION:
        raise TapeError(
            f"{where} is a tape of version {version}; this streamchat reads version"
            f" {VERSION} and older: upgrade streamchat to replay it"
        )
    source = data.get("source", {})
    turns = data.get("turns")
    if not isinstance(source, dict) or not isinstance(turns, list):
        raise TapeError(f'{where}: "source" must be an object and "turns" a list')
    checked = tuple(_turn(turn, f"{where}: turn {number}") for number, turn in enumerate(turns, 1))
    return Tape(checked, source, str(data.get("created", "")))


def _turn(data: object, where: str) -> TapeTurn:
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise TapeError(f'{where} needs a "prompt" (text)')
    answer = data.get("answer")
    if not isinstance(answer, dict) or not isinstance(answer.get("deltas", []), list):
        raise TapeError(f'{where} needs an "answer" object with a "deltas" list')
    status = answer.get("status", "done")
    if status not in ("done", "stopped", "error"):
        raise TapeError(f"{where}: unknown answer status {status!r}")
    entries = answer.get("deltas", [])
    last = 0.0
    for index, entry in enumerate(entries, 1):
        last = _check_entry(entry, last, f"{where}, delta {index}")
    text = answer.get("text")
    if text is None:  # written by hand: the text is what the deltas say
        text = "".join(entry.get("text", "") for entry in entries)
    if not isinstance(text, str):
        raise TapeError(f'{where}: the answer\'s "text" must be text')
    return TapeTurn(
        prompt=data["prompt"],
        status=status,
        text=text,
        error=_optional_text(answer.get("error"), where),
        note=_optional_text(answer.get("note"), where),
        deltas=tuple(entries),
        truncated=bool(answer.get("truncated", False)),
    )


def _optional_text(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TapeError(f'{where}: an answer\'s "error" and "note" are text or null')
    return value


_KINDS = ("text", "reasoning", "tool_call", "usage", "done", "error")


def _check_entry(entry: object, last: float, where: str) -> float:
    """`entry`'s time, checked with its one delta; times never go back."""
    if not isinstance(entry, dict):
        raise TapeError(f"{where} must be an object")
    t = entry.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < last:
        raise TapeError(f'{where}: "t" must be seconds since the request, never decreasing')
    kinds = [kind for kind in _KINDS if kind in entry]
    if len(kinds) != 1:
        raise TapeError(f"{where} must hold exactly one of {', '.join(_KINDS)}")
    try:
        entry_delta(entry)
    except (TypeError, AttributeError, KeyError) as exc:
        raise TapeError(f"{where}: {kinds[0]} is malformed ({exc})") from None
    if kinds[0] in ("text", "reasoning") and not isinstance(entry[kinds[0]], str):
        raise TapeError(f"{where}: {kinds[0]} must be text")
    return float(t)


# -- resume ---------------------------------------------------------------------------


def resumed_turns(
    history: str | os.PathLike[str] | Tape | Sequence[Mapping[str, Any]], *, allow_images: bool
) -> tuple[list[tuple[dict[str, Any], str]], list[dict[str, str]]]:
    """The chat's turns (each with its Markdown source) and history messages for the
    conversation in `history`: answers shown as finished, their Markdown rendered."""
    from .render import render_markdown  # the CLI never resumes: it does not load the renderer

    turns: list[tuple[dict[str, Any], str]] = []
    messages = []
    for role, text in resumed(history):
        if role == "user":
            turns.append(({"role": "user", "text": text}, text))
        else:
            html = render_markdown(text, allow_images=allow_images)
            shown = {"html": html, "reasoning_html": "", "source": text, "tool_calls": []}
            turn: dict[str, Any] = {"role": "assistant", **shown, "status": "done", "error": None}
            turn["stats"] = {}
            turns.append((turn, text))
        if text or role == "user":  # as a live chat's history: no empty answer
            messages.append({"role": role, "content": text})
    return turns, messages


def resumed(
    history: str | os.PathLike[str] | Tape | Sequence[Mapping[str, Any]],
) -> list[tuple[str, str]]:
    """(role, Markdown) of each turn to carry on from: a tape's prompts and answers, or
    OpenAI messages (system messages are left out: the chat has its own `system`)."""
    if isinstance(history, (str, os.PathLike, Tape)):
        tape = load(history)
        pairs = [(("user", turn.prompt), ("assistant", turn.text)) for turn in tape.turns]
        return [pair for both in pairs for pair in both]
    turns = []
    for index, message in enumerate(history, 1):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant", "system") or not isinstance(content, str):
            raise TapeError(
                f"history message {index}: expected {{'role': 'user' | 'assistant', "
                f"'content': text}}, got {dict(message)!r:.120}"
            )
        if role != "system":
            turns.append((role, content))
    return turns
