"""`streamchat race`: one prompt to several endpoints in the terminal, lanes stacked.

Every lane's request starts in one event-loop tick (`asyncio.gather` of tasks made
together); each lane's text shows in its own panel as it arrives (a terminal has no
room for a typewriter per lane: this is the race's "true speed"), and a table of the
figures (`race.RESULT_KEYS`) ends the run. Model output is untrusted: it is shown
through `_terminal.neutralize`, never as control sequences.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ._explain import explain
from ._race_results import RESULT_KEYS
from ._terminal import neutralize
from .deltas import Delta, Done, Handlers, StreamError, TextDelta, Usage
from .providers import build_request
from .transport import Retries, Timeouts, stream_deltas

__all__ = ["LaneRun", "run_race"]

# Lines of each lane's answer shown while racing (the end of it): lanes are stacked.
TAIL_LINES = 6


@dataclass
class LaneRun:
    """One lane's answer as it arrives, and its figures."""

    label: str
    model: str
    text: list[str] = field(default_factory=list)
    started: float = 0.0
    first: float | None = None
    last: float | None = None
    chars: int = 0
    tokens: int | None = None
    finish: str | None = None
    error: str | None = None
    ended: float | None = None

    def handlers(self) -> Handlers:
        def token(_delta: Delta) -> None:
            self.last = time.monotonic()
            self.first = self.first or self.last

        def text(delta: TextDelta) -> None:
            self.text.append(delta.text)
            self.chars += len(delta.text)

        def usage(delta: Usage) -> None:
            self.tokens = delta.output_tokens

        def done(delta: Done) -> None:
            self.finish = delta.finish_reason

        def error(delta: StreamError) -> None:
            self.error = str(explain(delta))

        return Handlers(token=token, text=text, usage=usage, done=done, error=error)

    @property
    def status(self) -> str:
        if self.ended is None:
            return "waiting" if self.first is None else "streaming"
        return "error" if self.error else "done"

    def row(self, prompt: str) -> dict[str, Any]:
        """The lane's figures, as `Race.results` gives them."""
        ttft = None if self.first is None else round(self.first - self.started, 4)
        span = (self.last or 0) - (self.first or 0)
        speed = round(self.chars / span, 1) if span > 0 else None
        per_second = round(self.tokens / span, 1) if self.tokens and span > 0 else None
        duration = None if self.ended is None else round(self.ended - self.started, 4)
        values = {
            "label": self.label,
            "model": self.model,
            "turn": 1,
            "prompt": prompt,
            "status": self.status,
            "ttft": ttft,
            "duration": duration,
            "chars": self.chars,
            "chars/s": speed,
            "tokens": self.tokens,
            "tokens/s": per_second,
            "finish": self.finish,
            "error": self.error,
        }
        return {key: values[key] for key in RESULT_KEYS}

    def panel(self, lines: int | None = TAIL_LINES) -> Panel:
        shown = neutralize("".join(self.text))
        if lines is not None:
            shown = "\n".join(shown.splitlines()[-lines:])
        body = Text(shown)
        if self.error:
            body.append(("\n" if shown else "") + neutralize(self.error), style="red")
        title = f"{neutralize(self.label)} · {self.status}"
        return Panel(body, title=title, title_align="left", border_style=_STYLE[self.status])


_STYLE = {"waiting": "dim", "streaming": "cyan", "done": "green", "error": "red"}


async def _run_lane(lane: LaneRun, request: Any, timeouts: Timeouts, retries: Retries) -> None:
    handle = lane.handlers()
    lane.started = time.monotonic()
    try:
        async for delta in stream_deltas(request, timeouts=timeouts, retries=retries):
            handle(delta)
    except Exception as exc:  # a bad configuration: this lane fails, the others go on
        lane.error = f"{type(exc).__name__}: {exc}"
    lane.ended = time.monotonic()


# The table's columns: the figures that compare lanes (the model is in the label unless
# told apart; an error shows its first line, the whole of it is in the lane's panel).
_COLUMNS = ("label", "status", "ttft", "chars/s", "tokens", "tokens/s", "duration", "finish")


def results_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The figures of every lane, one row each."""
    table = Table(title="Race results")
    models = any(row["model"] and row["model"] != row["label"] for row in rows)
    keys = list(_COLUMNS)
    if models:
        keys.insert(1, "model")
    for key in keys:
        left = key in ("label", "model", "status")
        table.add_column(
            key, justify="left" if left else "right", no_wrap=True, min_width=max(len(key), 5)
        )
    table.add_column("error", overflow="ellipsis", no_wrap=True, max_width=24)
    for row in rows:
        cells = [_cell(row[key]) for key in keys]
        error = (row["error"] or "").splitlines()
        table.add_row(*cells, neutralize(error[0]) if error else "")
    return table


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return neutralize(str(value))


def run_race(
    lanes: Sequence[tuple[str, str, Any]],
    prompt: str,
    *,
    console: Console,
    timeouts: Timeouts,
    retries: Retries,
) -> list[dict[str, Any]]:
    """Race `lanes` ((label, model, request) each) on `prompt`; print the lanes and the
    results table; return the results."""
    runs = [LaneRun(label, model) for label, model, _ in lanes]

    async def race() -> None:
        tasks = [
            asyncio.ensure_future(_run_lane(run, request, timeouts, retries))
            for run, (_, _, request) in zip(runs, lanes, strict=True)
        ]
        if not console.is_terminal:
            await asyncio.gather(*tasks)
            return
        with Live(console=console, refresh_per_second=12, transient=True) as live:
            while not all(task.done() for task in tasks):
                live.update(Group(*(run.panel() for run in runs)))
                await asyncio.wait(tasks, timeout=1 / 12)

    asyncio.run(race())
    for run in runs:
        console.print(run.panel(lines=None))
    rows = [run.row(prompt) for run in runs]
    console.print(results_table(rows))
    return rows


def lane_requests(
    urls: Sequence[str],
    prompt: str,
    *,
    models: Sequence[str],
    labels: Sequence[str],
    provider: str,
    headers: dict[str, str],
    system: str | None,
    options: dict[str, Any],
) -> list[tuple[str, str, Any]]:
    """A (label, model, request) per URL: the i-th --model and --label go to the i-th
    URL, a single one to every URL."""

    def nth(values: Sequence[str], index: int) -> str | None:
        if not values:
            return None
        return values[index] if len(values) > 1 else values[0]

    for name, values in (("--model", models), ("--label", labels)):
        if len(values) > 1 and len(values) != len(urls):
            raise ValueError(f"give one {name} for every URL, or one for all")
    lanes = []
    for index, url in enumerate(urls):
        model = nth(models, index)
        messages = [{"role": "user", "content": prompt}]
        request = build_request(
            url,
            messages,
            provider=provider,
            model=model,
            system=system,
            headers=headers,
            options=options,
        )
        label = (labels[index] if len(labels) > 1 else None) or model or f"lane {index + 1}"
        lanes.append((label, model or "", request))
    seen: dict[str, int] = {}
    unique = []
    for label, model, request in lanes:
        seen[label] = seen.get(label, 0) + 1
        unique.append((label if seen[label] == 1 else f"{label} #{seen[label]}", model, request))
    return unique
