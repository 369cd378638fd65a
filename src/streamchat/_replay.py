"""A tape played back: the recorded answers as a Python source, on their recorded time.

A replay is a Python source (`_sources`) like any function of the conversation, so a
replayed answer goes through the same typewriter, renderer and stats as a live one,
with no network and no key. Only the pacing is its own: each delta is delivered at
its recorded time (divided by `rate`) and the typewriter shows text as it arrives, or
all at once for the Speed slider to pace (`pace="typed"`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from ._frames import PERIOD
from ._tape import Tape, TapeTurn, entry_delta
from .deltas import Delta, Done, StreamError, TextDelta

__all__ = ["RATES", "Pace", "Replay"]

RATES = (0.25, 8.0)  # the replay's `rate`, slowest and fastest
Pace = Literal["recorded", "typed"]


class Replay:
    """A tape as a Python source: the answer recorded for each prompt, at its pace.

    `pace="recorded"`: each delta arrives at its recorded time divided by `rate`, and
    the chat's typewriter shows text as it arrives (speed 0), so the audience sees the
    text appear as it did when recorded. `pace="typed"`: the deltas arrive at once and
    the typewriter types at the Speed slider's pace. A prompt that is not on the tape
    gets an answer that says so.
    """

    def __init__(self, tape: Tape, pace: Pace = "recorded", rate: float = 1.0) -> None:
        if pace not in ("recorded", "typed"):
            raise ValueError(f"pace is 'recorded' or 'typed', got {pace!r}")
        if not RATES[0] <= rate <= RATES[1]:
            raise ValueError(f"rate must be between {RATES[0]} and {RATES[1]}, got {rate!r}")
        self.tape = tape
        self.pace = pace
        self.rate = float(rate)

    def find(self, messages: Sequence[Mapping[str, Any]]) -> TapeTurn | None:
        """The recorded turn that answers the last prompt of `messages`: the one at its
        place in the conversation if it was asked there, else the first asked so."""
        asked = [m.get("content") for m in messages if m.get("role") == "user"]
        if not asked:
            return None
        matches = [i for i, turn in enumerate(self.tape.turns) if turn.prompt == asked[-1]]
        if not matches:
            return None
        place = len(asked) - 1
        return self.tape.turns[place if place in matches else matches[0]]

    def schedule(self, turn: TapeTurn) -> list[tuple[float, Delta]]:
        """(seconds after the request, delta) as this replay delivers `turn`'s deltas.

        A stopped answer had shown only its `text` (the typewriter may have been behind
        the stream): its text is cut there, and it ends as stopped. A turn with no
        deltas (resumed from a history, written by hand) has its text at once.
        """
        timed = [(entry["t"] / self.rate, entry_delta(entry)) for entry in turn.deltas]
        if not timed:
            timed = [(0.0, TextDelta(turn.text)), (0.0, Done())]
        if turn.status == "stopped":
            timed = _cut(timed, len(turn.text))
        if self.pace == "typed":
            return [(0.0, delta) for _, delta in timed]
        return timed

    async def answer(self, messages: list[dict[str, Any]]) -> AsyncIterator[Delta]:
        """The recorded answer to the last prompt in `messages`, as deltas on time."""
        turn = self.find(messages)
        if turn is None:
            yield TextDelta(self.not_on_tape())
            yield Done("not_on_tape")
            return
        loop = asyncio.get_running_loop()
        # A recorded time is the frame the delta was read on (`_frames`); a delta given
        # to the loop is read at the next frame, half a frame later on average. So each
        # goes half a frame early: on average it is read when it was recorded.
        start = loop.time() - PERIOD / 2
        for at, delta in self.schedule(turn):
            wait = start + at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            yield delta

    def not_on_tape(self) -> str:
        prompts = "\n".join(f"- {_quoted(prompt)}" for prompt in self.tape.prompts)
        return (
            "*This prompt is not on the tape, so there is no answer to replay.* "
            "The recorded prompts are:\n\n" + (prompts or "- (none)")
        )

    def options(self, given: Mapping[str, Any], disclaimer: str) -> dict[str, Any]:
        """A replay chat's options: the recorded prompts as its presets, speed 0 at the
        recorded pace (the text shows as it arrives), the footer saying it is a replay;
        what the caller `given` wins, but the footer still says so."""
        options = {"prompts": self.tape.prompts, **given}
        if self.pace == "recorded":
            options.setdefault("speed", 0.0)
        options["disclaimer"] = self.disclaimer(given.get("disclaimer", disclaimer))
        return options

    def disclaimer(self, disclaimer: str) -> str:
        """The answers' footer line: a replay, from when and what."""
        source = self.tape.source
        model = source.get("model") or f"an {source.get('provider') or 'unnamed'} endpoint"
        when = self.tape.created[:10] or "earlier"
        return f"Replayed from a tape recorded {when} from {model}. {disclaimer}".strip()


def _cut(timed: list[tuple[float, Delta]], length: int) -> list[tuple[float, Delta]]:
    """The deltas up to `length` characters of text, then `Done("stopped")`."""
    kept: list[tuple[float, Delta]] = []
    for at, delta in timed:
        if isinstance(delta, (Done, StreamError)):
            break
        if isinstance(delta, TextDelta):
            if length <= 0:
                break
            delta, length = TextDelta(delta.text[:length]), length - len(delta.text)
        kept.append((at, delta))
    end = kept[-1][0] if kept else 0.0
    return [*kept, (end, Done("stopped"))]


def _quoted(prompt: str) -> str:
    """A prompt on one line, as Markdown code (its own Markdown is not interpreted)."""
    line = " ".join(prompt.split())
    fence = "`" * (max((len(run) for run in line.split("`")[1::2]), default=0) + 1)
    return f"{fence} {line} {fence}" if "`" in line else f"`{line}`"
