"""`Race`: one prompt to several models, side by side on one clock, with their figures.

A race is several chats that share a prompt box. Each lane is a chat's loop-thread side
(`_driver.Driver` with its `Conversation`): the same request, typewriter, renderer and
figures as `StreamChat`, and its own history. `Race` is the facade over them: one
widget, whose `lanes` trait mirrors each lane's status and turns, whose messages
reach the views as a chat's do (turn ids are unique in the kernel, so a patch finds
its lane), and whose commands run on the loop thread one at a time.

One clock: a prompt starts every lane's request in one loop-thread callback (no await
between the starts), so the requests leave within the same event-loop tick.
Two paces: "true" (each lane types as its text arrives: compare latency) and "equal"
(every lane typed at the Speed slider's pace: compare content).

`race.results` holds a dict per lane and answer (time to first token, speed, tokens,
finish reason, error); `race.results_frame()` is the same as a pandas DataFrame.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import html
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anywidget
import ipywidgets
import traitlets

from . import _messages, _runner
from ._conversation import check_owner
from ._driver import COMMAND_WAIT, Driver, Endpoint, Settings
from ._finished import FinishedAnswers, without_html
from ._kernel import Displays, replace_in_cell
from ._pace_traits import PaceTraits
from ._pacing import Lockstep
from ._race_results import RESULT_KEYS, format_results, race_status, result_rows
from ._replay import Replay
from ._sources import PythonSource
from ._stage import Redaction
from ._static_copy import static_copy
from ._tape import Tape, load
from .transport import Limits, Retries, Timeouts

__all__ = ["RESULT_KEYS", "Lane", "Race", "format_results", "race_status", "result_rows"]

T = TypeVar("T")

_STATIC = Path(__file__).parent / "static"
_LOOP_TRAITS = ("status", "lanes", "finished")
_RACE_MIME_TYPE = "application/vnd.streamchat.race+json"


@dataclass(frozen=True)
class Lane(Settings):
    """One lane: what `StreamChat` takes (a URL with its settings, a Python source, or a
    tape: a `Tape`, or the path of a tape file), and the `label` it is shown under (by
    default its model, or the URL's host and path, or the function's name)."""

    source: str | Any
    label: str | None = None

    @classmethod
    def of(cls, lane: Lane | str | Mapping[str, Any] | Any) -> Lane:
        """A lane from what `Race` takes: a `Lane`, a URL, a dict of `Lane`'s fields
        (`url` for `source`), or a Python source."""
        if isinstance(lane, Lane):
            return lane
        if isinstance(lane, Mapping):
            fields = dict(lane)
            if "url" in fields:
                fields["source"] = fields.pop("url")
            return cls(**fields)
        return cls(lane)

    def default_label(self) -> str:
        if self.label:
            return self.label
        if self.model:
            return self.model
        if isinstance(self.source, str):
            parts = urlsplit(self.source)
            return f"{parts.netloc}{parts.path}".rstrip("/") or self.source
        return getattr(self.source, "__name__", None) or type(self.source).__name__


def _tape(source: object) -> Tape | None:
    """The tape a lane's source is, if it is one: a `Tape`, a path object, or a string
    that is not a URL and names a file (or ends in .json: a missing tape says so)."""
    if isinstance(source, Tape):
        return source
    if isinstance(source, os.PathLike) or (
        isinstance(source, str)
        and "://" not in source
        and (source.endswith(".json") or os.path.isfile(source))
    ):
        return load(source)
    return None


def _replayed(lane: Lane) -> Lane:
    """A tape's lane as a Python source: its recorded answers at their recorded pace
    (`_replay.Replay`, what `StreamChat.replay` plays), under its model's name, else the
    file's. At equal speed the Speed slider types them, as any lane."""
    tape = _tape(lane.source)
    if tape is None:
        return lane
    name = lane.source if isinstance(lane.source, (str, os.PathLike)) else None
    model = lane.model or tape.source.get("model") or None
    label = lane.label or model or (Path(name).name if name is not None else "tape")
    return dataclasses.replace(lane, source=Replay(tape).answer, label=label, model=model)


def _labels(lanes: Sequence[Lane]) -> list[str]:
    """Each lane's label, made unique ("name", "name #2")."""
    seen: dict[str, int] = {}
    labels = []
    for lane in lanes:
        label = lane.default_label()
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return labels


def _lanes_to_json(lanes: list[dict[str, Any]], _widget: object) -> list[dict[str, Any]]:
    """The lanes as synced: their turns without the answers' HTML (it is in `finished`)."""
    return [{**lane, "turns": without_html(lane["turns"])} for lane in lanes]


class _LaneChat:
    """One lane's face to its `Driver`: what a Driver writes to its `StreamChat` (the
    traits that mirror its conversation, messages, finished answers), forwarded to the
    race. Loop thread only, except `speed`/`step`, which read the race's settings."""

    def __init__(
        self,
        race: Race,
        label: str,
        lane: Lane,
        endpoint: Endpoint,
        *,
        allow_images: bool,
        max_lag: float | None,
    ) -> None:
        self._race = race
        self.label = label
        self.model = lane.model or (label if endpoint.source is not None else "")
        self._status = "idle"
        # What a Driver reads of a chat's stage settings (`_stage`): a race shows all.
        self._redaction = Redaction()
        self.pauses = False
        self.driver = Driver(self, endpoint, allow_images=allow_images, max_lag=max_lag)  # type: ignore[arg-type]
        self.core = self.driver.core

    # What the Driver reads when an answer starts: the race's pace.
    @property
    def speed(self) -> float:
        return 0.0 if self._race.pace == "true" else self._race.speed

    @property
    def step(self) -> int:
        return self._race.step

    # What the Driver writes (loop thread): the lane's mirror traits.
    @property
    def turns(self) -> list[dict[str, Any]]:
        return self.core.turns

    @turns.setter
    def turns(self, _value: list[dict[str, Any]]) -> None:
        self._race._sync_lanes()

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value
        self._race._sync_lanes()

    def repace(self) -> None:
        """(loop thread) The live answer takes the race's pace now."""
        self.driver.pace("speed", self.speed)
        self.driver.pace("step", self.step)

    def synced(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model,
            "status": self._status,
            "turns": list(self.core.turns),
        }

    def _emit(self, content: Any) -> None:
        self._race._emit(content)

    def _forget(self, turn: int) -> None:
        self._race._forget(turn)

    def _keep(self, turn: dict[str, Any]) -> None:
        self._race._keep(turn)

    def _publish(self, turn: dict[str, Any], fields: _messages.TurnEnd) -> None:
        self._race._publish(turn, fields)

    def _show_static_copy(self) -> None:
        self._race._show_static_copy()

    def results(self) -> list[dict[str, Any]]:
        return result_rows(self.label, self.model, self.core.view.turns)


def _endpoint(lane: Lane, timeouts: Timeouts, retries: Retries, limits: Limits) -> Endpoint:
    source = None
    if not isinstance(lane.source, str):
        source = PythonSource(lane.source)
        if source.single:
            raise ValueError(
                f"a race lane asks every prompt again: give a function of the conversation "
                f"or a URL, not one stream ({type(lane.source).__name__})"
            )
    url = lane.source if isinstance(lane.source, str) else ""
    return Endpoint(
        url, source, timeouts=timeouts, retries=retries, limits=limits, **lane.settings()
    )


class Race(PaceTraits, FinishedAnswers, anywidget.AnyWidget):
    """One prompt to several models, side by side: a lane per source, one prompt box.

    `lanes` is a list of what `StreamChat` takes (a URL, a Python source), of `Lane`s
    (a source with its model, provider, key and label), or of dicts of `Lane`'s fields.
    `pace` is "true" (each lane shows its text as it arrives) or "equal" (every lane is
    typed at `speed` chars/s, `step` at a time). Each lane keeps its own history; a
    failing lane shows its error and never stops the others.
    """

    _esm = _STATIC / "widget.js"
    _css = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (_STATIC / "widget.css", _STATIC / "highlight.css")
        if path.is_file()
    )

    kind = traitlets.Unicode("race", read_only=True).tag(sync=True)
    status = traitlets.Unicode("idle").tag(sync=True)
    pace = traitlets.Enum(("true", "equal"), "true").tag(sync=True)
    disclaimer = traitlets.Unicode("").tag(sync=True)
    lanes: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True, to_json=_lanes_to_json)

    def __init__(
        self,
        lanes: Sequence[Lane | str | Mapping[str, Any] | Any],
        *,
        pace: str = "true",
        speed: float = 120.0,
        step: int = 1,
        disclaimer: str = "Answers generated by AI. Check important facts.",
        allow_images: bool = False,
        timeouts: Timeouts = Timeouts(),
        retries: Retries = Retries(),
        max_lag: float | None = None,
        limits: Limits = Limits(),
    ) -> None:
        specs = [_replayed(Lane.of(lane)) for lane in lanes]
        if not specs:
            raise ValueError("a race needs at least one lane")
        self._commands: asyncio.Lock | None = None
        self._closed = False
        self._outgoing: list[Any] = []
        self._lanes = [
            _LaneChat(
                self,
                label,
                spec,
                _endpoint(spec, timeouts, retries, limits),
                allow_images=allow_images,
                max_lag=max_lag,
            )
            for spec, label in zip(specs, _labels(specs), strict=True)
        ]
        super().__init__(
            pace=pace,
            speed=speed,
            step=step,
            disclaimer=disclaimer,
            lanes=[lane.synced() for lane in self._lanes],
        )
        self._built = True
        self._displays = Displays()
        self.on_msg(self._on_frontend_msg)
        if self.comm is not None:
            self.comm.on_close(lambda _msg: self._shut(wait=False))
        replace_in_cell(self)

    # -- validation and settings ----------------------------------------------------

    @traitlets.observe("speed", "step", "pace")
    def _pace_changed(self, _change: dict[str, Any]) -> None:
        """A slider or pace change reaches every lane's live answer at once."""
        if not hasattr(self, "_lanes") or not _runner.running():
            return
        for lane in self._lanes:
            _runner.call_soon(lane.repace)

    @traitlets.observe(*_LOOP_TRAITS)
    def _loop_trait_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_built", False):  # the constructor sets the first lanes
            check_owner(_runner.in_loop_thread, f"Race.{change['name']} written")

    # -- public API -------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        return [lane.label for lane in self._lanes]

    def ask(self, prompt: str) -> None:
        """Ask every lane `prompt`, each with its own history; returns at once. The
        requests start in one loop-thread callback. Live answers are stopped first."""
        prompt = str(prompt)
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        if self._closed:
            raise RuntimeError("this race is closed")
        self._post(lambda: self._start_all(prompt))

    def stop(self) -> None:
        """Stop every lane's live answer; partial text is kept."""
        self._post(lambda: self._stop(None))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no lane is typing; False if `timeout` passed first."""
        deadline = None if timeout is None else _runner.loop().time() + timeout
        for lane in self._lanes:
            left = None if deadline is None else max(0.0, deadline - _runner.loop().time())
            if not lane.driver.idle.wait(left):
                return False
        return True

    @property
    def results(self) -> list[dict[str, Any]]:
        """A dict per lane and finished answer (`RESULT_KEYS`): label, model, turn,
        prompt, status, ttft (s), duration (s), chars, chars/s, tokens, tokens/s,
        finish, error. Lanes in order, each lane's answers in order."""
        return [row for lane in self._lanes for row in lane.results()]

    def results_frame(self) -> Any:
        """`results` as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError("results_frame() needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.results, columns=list(RESULT_KEYS))

    def transcripts(self) -> dict[str, list[dict[str, Any]]]:
        """Each lane's turns by label (the kernel's copy, HTML included)."""
        return {lane.label: [dict(t) for t in lane.core.view.turns] for lane in self._lanes}

    def close(self) -> None:
        """Stop every lane; no prompt can be asked after."""
        self._shut(wait=True)
        super().close()

    def __repr__(self) -> str:
        return f"Race(status={self.status!r}, lanes={self.labels!r}, pace={self.pace!r})"

    # -- commands (loop thread) ---------------------------------------------------------

    def _post(self, command: Callable[[], Awaitable[T]], *, wait: bool = True) -> T | None:
        """Run `command` on the loop thread after the race's earlier commands."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        _runner.submit(self._in_turn(command, done))
        if not wait or _runner.in_loop_thread():
            return None
        return done.result(COMMAND_WAIT)

    async def _in_turn(
        self, command: Callable[[], Awaitable[T]], done: concurrent.futures.Future[T]
    ) -> None:
        if self._commands is None:
            self._commands = asyncio.Lock()
        try:
            async with self._commands:
                result = await command()
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(result)

    async def _stop(self, turn: int | None, note: str | None = None) -> None:
        """Stop the live answers (only the lane's that holds `turn`, when given)."""
        drivers = [lane.driver for lane in self._lanes]
        if turn is not None:
            drivers = [lane.driver for lane in self._lanes_holding(turn)]
        await asyncio.gather(*(driver.stop(turn, note=note) for driver in drivers))

    async def _start_all(self, prompt: str) -> None:
        """Stop what is live, then start every lane in this one callback: `Driver.start`
        does not await, so the lanes' tasks are made in the same tick, in lane order.
        At equal speed the lanes type in lockstep: from one start, on one frame grid."""
        await self._stop(None, note="Stopped: a new prompt was sent.")
        if self._closed:
            return
        lockstep = Lockstep() if self.pace == "equal" and len(self._lanes) > 1 else None
        for lane in self._lanes:
            await lane.driver.start(prompt, lockstep)

    async def _retry(self, turn: int) -> None:
        for lane in self._lanes_holding(turn):
            await lane.driver.retry(turn)

    def _lanes_holding(self, turn: int) -> list[_LaneChat]:
        return [lane for lane in self._lanes if any(t["id"] == turn for t in lane.core.turns)]

    def _shut(self, *, wait: bool) -> None:
        self._closed = True
        if not hasattr(self, "_lanes") or sys.is_finalizing():
            return
        for lane in self._lanes:
            lane.driver.closed = True
        if _runner.running():
            self._post(lambda: self._stop(None), wait=wait)

    # -- what the lanes tell the views (loop thread) ------------------------------------

    def _sync_lanes(self) -> None:
        self._flush()
        self.lanes = [lane.synced() for lane in self._lanes]
        self.status = race_status([lane.status for lane in self._lanes])

    def _emit(self, content: Any) -> None:
        """Queue a lane's message; what the lanes send in one loop tick goes as one
        comm message (`_messages.LanesMessage`) at the end of the tick: the lanes'
        outboxes send on the same frames, so a frame of four lanes is one message."""
        self._outgoing.append(content)
        if len(self._outgoing) == 1:
            _runner.loop().call_soon(self._flush)

    def _flush(self) -> None:
        """(loop thread) Send the queued messages: alone as themselves, else together.
        Also before a trait change, so the page reads them in the order they were made."""
        messages, self._outgoing = self._outgoing, []
        if len(messages) == 1:
            ipywidgets.Widget.send(self, messages[0])
        elif messages:
            ipywidgets.Widget.send(self, {"type": "lanes", "messages": messages})

    def _send_snapshots(self) -> None:
        for lane in self._lanes:
            live = lane.driver.snapshot()
            if live is not None:
                answer, shown = live
                self._emit(_messages.snapshot(answer.outbox.turn_id, shown, answer.tool_calls))  # type: ignore[arg-type]

    def _on_frontend_msg(self, _widget: object, content: object, _buffers: object) -> None:
        message = _messages.parse_browser_message(content)
        if message is None:
            return
        if message["type"] == "send":
            self.ask(message["prompt"])
        elif message["type"] == "stop":
            stop = message["turn"]
            self._post(lambda: self._stop(stop), wait=False)
        elif message["type"] == "retry":
            retry = message["turn"]
            self._post(lambda: self._retry(retry), wait=False)
        elif message["type"] == "resend":
            resend = message["turn"]
            _runner.call_soon(lambda: self._resend(resend))
        else:
            _runner.call_soon(self._send_snapshots)

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A browser's update, without the traits the loop thread owns."""
        super().set_state({k: v for k, v in sync_data.items() if k not in _LOOP_TRAITS})

    # -- display ------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_()
        if bundle is None:
            return None
        data, metadata = bundle
        return {_RACE_MIME_TYPE: {}, **data, **self._static()}, metadata

    def _ipython_display_(self) -> None:
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            self._displays.show(*bundle)

    def _show_static_copy(self) -> None:
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            self._displays.update(*bundle)

    def _static(self) -> dict[str, str]:
        """The lanes side by side with their figures, for where the widget cannot be
        drawn (a saved notebook on GitHub, nbconvert). Inline styles: no widget CSS there."""
        columns = min(len(self._lanes), 4)
        cells = []
        for lane in self._lanes:
            view = lane.core.view
            copy = static_copy(view.turns, view.sources)["text/html"]
            rows = lane.results()
            figures = _figures_html(rows[-1]) if rows else ""
            cells.append(
                '<div class="streamchat-race-lane" style="min-width:0;border:1px solid #ddd;'
                'border-radius:6px;padding:0 0.6em;overflow-wrap:anywhere">'
                f"<h4>{html.escape(lane.label)}</h4>{copy}{figures}</div>"
            )
        body = (
            '<div class="streamchat-race-static" style="display:grid;gap:0.6em;'
            f'grid-template-columns:repeat({columns},minmax(0,1fr))">' + "".join(cells) + "</div>"
        )
        return {"text/html": body, "text/plain": format_results(self.results)}


def _figures_html(row: Mapping[str, Any]) -> str:
    shown = [
        (key, row[key])
        for key in ("ttft", "duration", "chars", "chars/s", "tokens", "tokens/s", "finish")
        if row.get(key) is not None
    ]
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
        f"<td>{html.escape(str(value))}</td></tr>"
        for key, value in shown
    )
    return f'<table class="streamchat-race-figures">{cells}</table>'
