"""`StreamChat`: a notebook chat widget that types streamed answers as live Markdown.

Each answer runs on the shared background loop (`_runner`), so it keeps typing while
a cell blocks. The pipeline is the package's: `providers.build_request` ->
`transport.stream_deltas` -> `Typewriter` (pace) -> `MarkdownStream` (HTML patches)
-> one small comm message per tick. The synced traits change only at turn
boundaries; the answer itself travels as patches, never as the whole HTML per tick,
because Jupyter drops IOPub messages above ~1000/s and a long answer re-sent per
token would be quadratic in bytes.

Secrets (`api_key`, `headers`) are plain Python attributes, not traits: traits are
synced to the browser and saved with the notebook's widget state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import httpx
import ipywidgets
import traitlets

from . import _messages, _runner
from ._kernel import Displays, replace_in_cell
from ._pacing import type_out
from ._secrets import Secrets
from ._sources import PythonSource
from ._static_copy import static_copy, transcript
from .deltas import (
    Delta,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    merge_tool_calls,
)
from .providers import build_request
from .render import MarkdownStream, Patch
from .transport import Limits, Retries, Timeouts, new_client, stream_deltas
from .typewriter import Typewriter

if TYPE_CHECKING:
    from .doctor import Diagnosis

__all__ = ["StreamChat"]

_STATIC = Path(__file__).parent / "static"

# Jupyter's IOPub rate limit drops messages above 1000/s for the whole kernel; half of
# that is the budget shared by every live answer, and no widget needs more than 60/s
# (one per display frame).
_KERNEL_BUDGET = 500.0
_MAX_RATE = 60.0
# Each tick re-sends the open block (the "tail"), so a long code block still being
# typed costs its whole size per message: bytes are budgeted too, for the browser's
# sake (it re-parses the tail each time) and for remote notebooks' bandwidth.
_KERNEL_BYTES = 250_000.0
# Rendering and sending run on the background thread, which shares the GIL with the
# kernel's main thread: all live answers together may use this share of one core,
# so a new cell still gets an answer at once while twenty chats type.
_KERNEL_CPU = 0.25

# Answers being typed right now, across widgets (touched only on the loop thread).
_LIVE: set[_Answer] = set()

_turn_ids = itertools.count(1)

_http: httpx.AsyncClient | None = None


def _client() -> httpx.AsyncClient:
    """(loop thread) One HTTP client for every answer in the kernel.

    A new `AsyncClient` builds an SSL context first (~50 ms here), which would be
    added to every answer's time to first token; sharing one also reuses
    keep-alive connections. It keeps no cookies and has no connection cap
    (`transport.new_client`). Timeouts are passed per request by the transport.
    """
    global _http
    if _http is None:
        _http = new_client()
    return _http


def _load_css() -> str:
    """The widget's CSS plus the syntax-highlighting classes the renderer emits."""
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in (_STATIC / "widget.css", _STATIC / "highlight.css")
        if path.is_file()
    )


def min_interval(live_answers: int, messages: int = 1, size: int = 0, cost: float = 0) -> float:
    """Seconds to wait after sending `messages` of `size` bytes that took `cost` seconds
    to render and send, so all live answers together stay within the kernel's message,
    byte and CPU budgets."""
    live = max(1, live_answers)
    return max(
        messages / _MAX_RATE,
        messages * live / _KERNEL_BUDGET,
        size * live / _KERNEL_BYTES,
        cost * live / _KERNEL_CPU,
    )


def _drop_units(text: str, units: int) -> tuple[str, int]:
    """`text` without its last `units` UTF-16 code units (how JavaScript counts length),
    and how many units were left to drop because `text` was shorter."""
    size = len(text.encode("utf-16-le")) // 2
    if units >= size:
        return "", units - size
    encoded = text.encode("utf-16-le")
    return encoded[: 2 * (size - units)].decode("utf-16-le"), 0


def compact(patches: Iterable[Patch]) -> list[dict[str, Any]]:
    """Reduce queued patches to at most reset + append + one change of the live part.

    A tail is dead once a later tail or reset replaces it, appends concatenate, a reset
    makes everything before it irrelevant, and extends fold into the tail or extend
    before them, so a tick that was delayed by the rate limit still sends one small
    message instead of every intermediate state.
    """
    reset: str | None = None
    appended = ""
    live: dict[str, Any] | None = None  # {"op": "tail"|"extend", ...}
    for patch in patches:
        if patch.op == "reset":
            reset, appended, live = patch.html, "", None
        elif patch.op == "append":
            appended += patch.html
        elif patch.op == "tail":
            live = {"op": "tail", "html": patch.html}
        elif live is None:
            live = {"op": "extend", "drop": patch.drop, "html": patch.html}
        else:
            kept, rest = _drop_units(live["html"], patch.drop)
            live = {**live, "html": kept + patch.html}
            if live["op"] == "extend":
                live["drop"] += rest
    ops: list[dict[str, Any]] = []
    if reset is not None:
        ops.append({"op": "reset", "html": reset + appended})
    elif appended:
        ops.append({"op": "append", "html": appended})
    if live is not None:
        ops.append(live)
    return ops


def applied(shown: tuple[str, str], ops: list[dict[str, Any]]) -> tuple[str, str]:
    """(frozen, tail) HTML after `ops`: what every view that applied them shows."""
    frozen, tail = shown
    for op in ops:
        if op["op"] == "append":
            frozen += op["html"]
        elif op["op"] == "tail":
            tail = op["html"]
        elif op["op"] == "extend":
            tail = _drop_units(tail, op["drop"])[0] + op["html"]
        else:
            frozen, tail = op["html"], ""
    return frozen, tail


class _Outbox:
    """One answer's way to the browser: rendered and sent no faster than the budget allows.

    Lives on the loop thread. Revealed text is queued as text and rendered only when
    a message can go: `MarkdownStream.append` re-renders the open block, so a long
    code block costs its whole size per call, and a tick that the rate limit would
    merge into the next message anyway should not pay for it. A timer sends what
    came too soon, so the message rate is bounded however fast text arrives.
    """

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        turn_id: int,
        streams: dict[str, MarkdownStream],
    ) -> None:
        self._emit = emit
        self.turn_id = turn_id
        self._streams = streams
        self._text = dict.fromkeys(streams, "")
        self._tools: list[dict[str, str]] | None = None
        # (frozen, tail) per part as the views have it, for a snapshot that later
        # patches apply to exactly.
        self.shown = dict.fromkeys(streams, ("", ""))
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, part: str, text: str) -> None:
        if text:
            self._text[part] += text
            self._schedule()

    def tools(self, calls: list[dict[str, str]]) -> None:
        self._tools = calls
        self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_at(self._next, self.flush)

    def _render(self, *, final: bool = False) -> dict[str, list[dict[str, Any]]]:
        """Render the queued text: the ops per part, already applied to `shown`."""
        rendered = {}
        for part, stream in self._streams.items():
            text = self._text[part]
            patches = stream.append(text) if text else []
            if final:
                patches += stream.finish()
                if any(patch.op == "reset" for patch in patches):
                    continue  # the whole answer: the finished turn carries it once
            ops = compact(patches)
            if ops:
                self.shown[part] = applied(self.shown[part], ops)
                rendered[part] = ops
        self._text = dict.fromkeys(self._text, "")
        return rendered

    def flush(self, *, final: bool = False) -> None:
        started = time.perf_counter()
        messages: list[Any] = [
            _messages.patch(self.turn_id, part, ops)  # type: ignore[arg-type]
            for part, ops in self._render(final=final).items()
        ]
        if self._tools is not None:
            messages.append(_messages.tools(self.turn_id, self._tools))
        self.discard()
        for message in messages:
            self._emit(message)
        if messages:
            size = sum(len(op["html"]) for m in messages for op in m.get("ops", ()))
            cost = time.perf_counter() - started
            wait = min_interval(len(_LIVE), len(messages), size, cost)
            self._next = asyncio.get_running_loop().time() + wait

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """What a view that joined late needs: queued text is rendered into it, not sent."""
        self._render()
        return dict(self.shown)

    def discard(self) -> None:
        """Forget what is queued (sent, in a snapshot, or the answer was stopped)."""
        self._text = dict.fromkeys(self._text, "")
        self._tools = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def finish(self) -> None:
        """Render the rest as final and send it as soon as the budget allows.

        A view that applied every patch then already shows the final HTML and keeps
        its DOM (and the person's text selection).
        """
        if self._timer is not None:  # this is the last message: it takes the timer's place
            self._timer.cancel()
            self._timer = None
        delay = self._next - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.flush(final=True)


@dataclass(eq=False)
class _Answer:
    """One assistant answer in progress: its pipeline stages and its bookkeeping."""

    turn: int
    typewriter: Typewriter
    body: MarkdownStream
    reasoning: MarkdownStream
    outbox: _Outbox
    started: float = field(default_factory=time.monotonic)
    first: float | None = None
    last: float | None = None
    received: int = 0
    # What the typewriter revealed: its pace, told apart from the network's.
    typed: int = 0
    first_typed: float | None = None
    last_typed: float | None = None
    # Why it was stopped, when not by Stop (shown under the answer).
    note: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    tool_deltas: list[ToolCallDelta] = field(default_factory=list)
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    stream_started: bool = False
    # Set on the loop thread; created there lazily because asyncio.Event binds a loop.
    wake: asyncio.Event | None = None
    stream_closed: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """(loop thread) Stop the answer, whether or not its task has started yet.

        Once only: a second Stop (another thread, a click during the first) must not
        cancel the task again while it is ending the turn, or the turn never ends.
        """
        if self.stop_requested:
            return
        self.stop_requested = True
        if self.task is not None:
            self.task.cancel()

    def type(self, text: str) -> None:
        """(loop thread) The typewriter reveals `text`: time it, and send it on."""
        now = time.monotonic()
        self.first_typed = self.first_typed or now
        self.last_typed = now
        self.typed += len(text)
        self.outbox.add("body", text)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"chars": self.received}
        if self.first_typed is not None and self.last_typed is not None:
            span = self.last_typed - self.first_typed
            if span > 0:
                stats["typed_per_second"] = round(self.typed / span, 1)
        if self.first is not None:
            stats["ttft"] = round(self.first - self.started, 4)
            span = (self.last or self.first) - self.first
            if span > 0:
                stats["chars_per_second"] = round(self.received / span, 1)
        stats["duration"] = round(time.monotonic() - self.started, 4)
        if self.usage is not None:
            for name in ("input_tokens", "output_tokens", "reasoning_tokens"):
                value = getattr(self.usage, name)
                if value is not None:
                    stats[name] = value
        if self.finish_reason:
            stats["finish_reason"] = self.finish_reason
        return stats


_HTML_FIELDS = ("html", "reasoning_html")


def _turns_to_json(turns: list[dict[str, Any]], _widget: object) -> list[dict[str, Any]]:
    """The turns as synced: without the answers' HTML, which travels in its own trait."""
    return [{k: v for k, v in turn.items() if k not in _HTML_FIELDS} for turn in turns]


class StreamChat(anywidget.AnyWidget):
    """A chat bubble conversation that streams answers from an LLM endpoint.

    With no `url` it talks to the embedded demo server, so it works offline and
    without an API key. Instead of a URL it also takes a Python source (see
    `streamchat._sources`): a function given the conversation (OpenAI messages) that
    returns or yields text or an SDK stream, or one stream (a generator, an SDK
    stream object), which it types at once as the first answer.

    `send()` returns at once; the answer types itself in the background, also while
    other cells run.

    `provider` is detected from the URL's path unless given (see
    `providers.PROVIDERS`); `api_key` falls back to the provider's environment
    variable, which is sent only to that provider's own host over https. `speed`
    is characters (grapheme clusters) per second, 0 = as they arrive, and `step`
    how many appear at a time; both are also sliders. `max_lag`
    (seconds) lets the typewriter catch up when it falls that far behind the stream.
    `options` are extra body fields in the provider's terms (`temperature`...).
    `limits` (`transport.Limits`) caps what one answer may make the kernel hold.
    `allow_images` renders Markdown images instead of showing them as links (a
    remote image is a way for injected instructions to leak data).
    """

    _esm = _STATIC / "widget.js"
    _css = _load_css()

    status = traitlets.Unicode("idle").tag(sync=True)
    speed = traitlets.Float(120.0).tag(sync=True)
    step = traitlets.Int(1).tag(sync=True)
    prompts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    disclaimer = traitlets.Unicode("").tag(sync=True)
    # The HTML of a finished answer is synced once, in its own `html_<turn id>` trait
    # (`_publish`): the turns list is re-sent at every turn boundary, and carrying every
    # answer's HTML in it would re-send the whole conversation each time.
    turns = traitlets.List(traitlets.Dict()).tag(sync=True, to_json=_turns_to_json)

    def __init__(
        self,
        url: str | Any | None = None,
        *,
        model: str | None = None,
        provider: str = "auto",
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        system: str | None = None,
        speed: float = 120.0,
        step: int = 1,
        prompts: Sequence[str] = (),
        disclaimer: str = "Answer generated by AI. Check important facts.",
        allow_images: bool = False,
        timeouts: Timeouts = Timeouts(),
        retries: Retries = Retries(),
        max_lag: float | None = None,
        options: Mapping[str, Any] | None = None,
        limits: Limits = Limits(),
    ) -> None:
        super().__init__(speed=speed, step=step, prompts=list(prompts), disclaimer=disclaimer)
        self._source = None if url is None or isinstance(url, str) else PythonSource(url)
        if url is None:
            from .server import demo_server

            url = demo_server().url
        self._url = url if isinstance(url, str) else ""
        self._model = model
        self._provider = provider
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._system = system
        self._allow_images = allow_images
        self._timeouts = timeouts
        self._retries = retries
        self._max_lag = max_lag
        self._options = dict(options or {})
        self._limits = limits
        self._lock = threading.RLock()
        self._history: list[dict[str, str]] = []
        self._sources: list[str] = []  # Markdown source of each turn, for the transcript
        self._live: _Answer | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._displays = Displays()
        self.on_msg(self._on_frontend_msg)
        if self.comm is not None:
            self.comm.on_close(lambda _msg: self._cancel(wait=False))
        replace_in_cell(self)
        if self._source is not None and self._source.single:
            with self._lock:
                self._start_answer()

    # -- validation ----------------------------------------------------------------

    @traitlets.validate("speed")
    def _valid_speed(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < 0:
            raise traitlets.TraitError("speed is characters per second and cannot be negative")
        return float(proposal["value"])

    @traitlets.validate("step")
    def _valid_step(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise traitlets.TraitError("step is characters per reveal and must be at least 1")
        return int(proposal["value"])

    @traitlets.observe("speed", "step")
    def _pace_changed(self, change: dict[str, Any]) -> None:
        """Apply a slider move to the answer being typed at once, not at its next chunk."""
        answer = getattr(self, "_live", None)  # None also while __init__ sets the traits
        if answer is None:
            return

        def apply() -> None:
            setattr(answer.typewriter, change["name"], change["new"])
            if answer.wake is not None:
                answer.wake.set()

        _runner.call_soon(apply)

    # -- public API ----------------------------------------------------------------

    def send(self, prompt: str, buffers: Any = None) -> None:  # type: ignore[override]
        """Ask `prompt`; returns at once while the answer streams in the background.

        An answer still being typed is stopped first: its partial text stays in the
        history, marked "Stopped: a new prompt was sent." ipywidgets' own `Widget.send`
        (custom messages) is `_emit` here; a dict is still passed on to it because
        ipywidgets calls `send({"do": "focus"})`.
        """
        if isinstance(prompt, dict):
            ipywidgets.Widget.send(self, prompt, buffers)
            return
        prompt = str(prompt)
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        if (live := self._live) is not None:
            live.note = "Stopped: a new prompt was sent."
        with self._quiet():
            self._history.append({"role": "user", "content": prompt})
            self._append_turn({"role": "user", "text": prompt}, prompt)
            self._start_answer()

    def stop(self, turn: int | None = None) -> None:
        """Stop the answer being typed; its partial text is kept. Closes the connection.

        `turn` (a turn id) names the answer meant; a newer one is left typing.
        """
        live = self._live
        if live is not None and (turn is None or live.outbox.turn_id == turn):
            self._cancel(wait=True)

    def doctor(self, timeout: float = 30.0) -> Diagnosis:
        """Diagnose this chat's endpoint: why an answer came in bursts or broke off.

        Sends the last prompt again with the same URL, provider, model and secrets,
        and times every chunk; the result shows in a notebook as a report with a
        chart of chunk arrival times (see `streamchat.doctor`).
        """
        from .doctor import diagnose

        if self._source is not None:
            raise ValueError("the doctor diagnoses HTTP endpoints; this chat streams from Python")
        prompts = [m["content"] for m in self._history if m["role"] == "user"]
        return diagnose(
            self._url,
            prompt=prompts[-1] if prompts else "Say hello.",
            provider=self._provider,
            model=self._model,
            headers=self._headers,
            system=self._system,
            api_key=self._api_key,
            timeout=timeout,
        )

    def retry(self, turn: int | None = None) -> None:
        """Ask again for the last answer, if it failed or was stopped, replacing it.

        `turn` (a turn id) names the answer meant: anything but the last answer is
        left alone, since its question is no longer the last one. An answer being
        typed is never retried (Stop it first).
        """
        with self._lock:
            if not self._sources or self.turns[-1]["role"] != "assistant":
                return
            last = self.turns[-1]
            if last["status"] not in ("error", "stopped") or self._live is not None:
                return
            if turn is not None and last["id"] != turn:
                return
            if self._history and self._history[-1]["role"] == "assistant":
                self._history.pop()
            self._sources.pop()
            self.turns = self.turns[:-1]
            self._start_answer()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no answer is being typed; False if `timeout` passed first."""
        return self._idle.wait(timeout)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation in OpenAI message format, as sent with the next prompt."""
        with self._lock:
            system = [{"role": "system", "content": self._system}] if self._system else []
            return system + [dict(message) for message in self._history]

    @property
    def transcript(self) -> str:
        """The conversation as Markdown (answers as their Markdown source)."""
        with self._lock:
            return transcript(self.turns, self._sources)

    @property
    def stats(self) -> dict[str, Any]:
        """The last answer's figures: ttft (s), chars_per_second, token usage if reported."""
        with self._lock:
            for turn in reversed(self.turns):
                if turn["role"] == "assistant":
                    return dict(turn["stats"])
            return {}

    def close(self) -> None:
        """Close the widget: stop its stream (closing the connection)."""
        self._cancel(wait=True)
        super().close()

    # -- display -------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, and a static copy of the conversation for where it cannot
        be drawn (a saved notebook on GitHub, nbviewer, nbconvert; see `_static_copy`)."""
        with self._lock:
            return self._bundle(self.turns)

    def _bundle(self, turns: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_()
        if bundle is None:  # closed
            return None
        data, metadata = bundle
        return {**data, **static_copy(turns, self._sources)}, metadata

    def _ipython_display_(self) -> None:
        """Show the chat through a display that each turn end updates, so the notebook's
        saved output holds the conversation so far."""
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            self._displays.show(*bundle)

    def _show_static_copy(self, turns: list[dict[str, Any]]) -> None:
        """(turn end) Rewrite every display of the chat with the conversation so far."""
        bundle = self._bundle(turns)
        if bundle is not None:
            self._displays.update(*bundle)

    # -- browser messages ----------------------------------------------------------

    def _on_frontend_msg(self, _widget: object, content: object, _buffers: object) -> None:
        message = _messages.parse_browser_message(content)
        if message is None:
            return
        if message["type"] == "send":
            self.send(message["prompt"])
        elif message["type"] == "stop":
            self.stop(message["turn"])
        elif message["type"] == "retry":
            self.retry(message["turn"])
        else:
            _runner.call_soon(self._send_snapshot)

    def _emit(self, content: dict[str, Any]) -> None:
        """Send one custom message to every view (ipywidgets' `Widget.send`)."""
        ipywidgets.Widget.send(self, content)

    def _send_snapshot(self) -> None:
        """(loop thread) The whole live answer, for a view that joined while it was typed."""
        answer = self._live
        if answer is None:
            return
        shown = answer.outbox.snapshot()
        self._emit(_messages.snapshot(answer.outbox.turn_id, shown, answer.tool_calls))

    # -- the answer pipeline -------------------------------------------------------

    def _append_turn(self, turn: dict[str, Any], source: str) -> None:
        self._sources.append(source)
        self.turns = [*self.turns, {"id": next(_turn_ids), **turn}]

    def _publish(self, turn: dict[str, Any]) -> None:
        """Sync one finished answer's HTML as the trait `html_<id>`, before the turns
        that refer to it (a trait added to a widget is sent at once)."""
        name = f"html_{turn['id']}"
        value = {key: turn[key] for key in _HTML_FIELDS}
        if self.has_trait(name):
            setattr(self, name, value)
        else:
            self.add_traits(**{name: traitlets.Dict(value).tag(sync=True)})

    def _start_answer(self) -> None:
        """(under the lock) Add a live assistant turn and start typing it."""
        self._append_turn(
            {
                "role": "assistant",
                "html": "",
                "reasoning_html": "",
                "tool_calls": [],
                "status": "streaming",
                "error": None,
                "stats": {},
            },
            "",
        )
        turn = len(self.turns) - 1
        turn_id = self.turns[turn]["id"]
        body = MarkdownStream(allow_images=self._allow_images)
        reasoning = MarkdownStream(allow_images=self._allow_images)
        answer = _Answer(
            turn=turn,
            typewriter=Typewriter(self.speed, self.step, max_lag=self._max_lag),
            body=body,
            reasoning=reasoning,
            outbox=_Outbox(self._emit, turn_id, {"body": body, "reasoning": reasoning}),
        )
        self._live = answer
        self._idle.clear()
        self.status = "waiting"
        _runner.submit(self._run(answer, list(self._history)))

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Hold the lock with no answer live, stopping the live one first.

        `send` and `retry` may come from several threads at once: each stops the
        live answer outside the lock (its end needs the lock) and checks again
        under it, so no answer is started over another one and orphaned. On the
        loop thread nothing can be waited for; the answer's own task ends it there.
        """
        while True:
            self._cancel(wait=True)
            self._lock.acquire()
            if self._live is None or _runner.in_loop_thread():
                break
            self._lock.release()
        try:
            yield
        finally:
            self._lock.release()

    def _cancel(self, *, wait: bool) -> None:
        answer = getattr(self, "_live", None)  # robust in a half-built widget's close()
        if answer is None:
            return
        # Through the loop, not Future.cancel(): a task cancelled before its first step
        # would never run its cleanup, and the turn would stay "streaming" for ever.
        _runner.call_soon(answer.cancel)
        # At interpreter exit (ipywidgets' __del__ calls close) the loop thread no
        # longer runs: waiting for it would only delay the exit.
        if wait and not _runner.in_loop_thread() and not sys.is_finalizing():
            answer.ended.wait(10)

    async def _run(self, answer: _Answer, history: list[dict[str, str]]) -> None:
        answer.task = asyncio.current_task()
        answer.wake = asyncio.Event()
        answer.stream_closed = asyncio.Event()
        _LIVE.add(answer)
        try:
            status, error = await self._type(answer, history)
            if status == "stopped":
                answer.outbox.discard()
                answer.body.finish()  # the stopped answer's HTML, complete; nothing more sent
                answer.reasoning.finish()
            else:
                with contextlib.suppress(asyncio.CancelledError):  # Stop after the last token
                    await answer.outbox.finish()
        except asyncio.CancelledError:  # a Stop while the answer was ending: it is stopped
            status, error = "stopped", None
        except Exception as exc:  # a renderer bug: still end the turn, keep the partial
            status, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            _LIVE.discard(answer)
        try:
            self._finish(answer, status, error)
        finally:
            answer.ended.set()

    async def _type(self, answer: _Answer, history: list[dict[str, str]]) -> tuple[str, str | None]:
        """Stream and type the answer; return its final status and error message."""
        try:
            if answer.stop_requested:
                return "stopped", None
            terminal = await type_out(
                self._observe(answer, self._deltas(history)),
                answer.typewriter,
                lambda text: answer.type(text),
                lambda delta: self._on_delta(answer, delta),
                wake=answer.wake,
            )
        except asyncio.CancelledError:
            if answer.stream_started:
                # Stop means the connection is closed by the time stop() returns.
                assert answer.stream_closed is not None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(answer.stream_closed.wait(), 5)
            return "stopped", None
        except Exception as exc:  # a bad configuration or a parser bug: show it
            secrets = Secrets.of(self._url, {**self._headers, "api-key": self._api_key or ""})
            return "error", secrets.redact(f"{type(exc).__name__}: {exc}")
        if isinstance(terminal, StreamError):
            return "error", terminal.message
        answer.finish_reason = terminal.finish_reason or answer.finish_reason
        return "done", None

    def _deltas(self, history: list[dict[str, str]]) -> AsyncIterator[Delta]:
        """(loop thread) The answer's deltas, from the URL or from the Python source."""
        if self._source is not None:
            system = [{"role": "system", "content": self._system}] if self._system else []
            return self._source.deltas([*system, *history], self._timeouts)
        request = build_request(
            self._url,
            history,
            provider=self._provider,
            model=self._model,
            system=self._system,
            api_key=self._api_key,
            headers=self._headers,
            options=self._options,
        )
        return stream_deltas(
            request,
            timeouts=self._timeouts,
            retries=self._retries,
            limits=self._limits,
            client=_client(),
        )

    async def _observe(self, answer: _Answer, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        """Pass deltas through, timing the first token and counting what arrived."""
        answer.stream_started = True
        try:
            async for delta in deltas:
                if isinstance(delta, (TextDelta, ReasoningDelta, ToolCallDelta)):
                    now = time.monotonic()
                    if answer.first is None:
                        answer.first = now
                        self.status = "streaming"
                    answer.last = now
                    if isinstance(delta, TextDelta):
                        answer.received += len(delta.text)
                yield delta
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
            assert answer.stream_closed is not None
            answer.stream_closed.set()

    def _on_delta(self, answer: _Answer, delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            answer.outbox.add("reasoning", delta.text)
        elif isinstance(delta, ToolCallDelta):
            answer.tool_deltas.append(delta)
            answer.tool_calls = [
                {"name": call.name or "", "arguments": call.arguments}
                for call in merge_tool_calls(answer.tool_deltas)
            ]
            answer.outbox.tools(answer.tool_calls)
        elif isinstance(delta, Usage):
            answer.usage = delta

    def _finish(self, answer: _Answer, status: str, error: str | None) -> None:
        """(loop thread) Record the answer in the history and the turn; end the live state."""
        with self._lock:
            if self._live is not answer:
                return
            text = answer.body.text
            if text:
                self._history.append({"role": "assistant", "content": text})
            self._sources[answer.turn] = text
            turns = list(self.turns)
            turns[answer.turn] = {
                **turns[answer.turn],
                "html": answer.body.html,
                "reasoning_html": answer.reasoning.html,
                "tool_calls": answer.tool_calls,
                "status": status,
                "error": error,
                "note": answer.note if status == "stopped" else None,
                "stats": answer.stats(),
            }
            # The saved output first: whoever sees the turn end and saves at once
            # saves this answer too.
            self._show_static_copy(turns)
            with self.hold_sync():
                self._publish(turns[answer.turn])
                self.turns = turns
            self.status = status
            self._live = None
            self._idle.set()
