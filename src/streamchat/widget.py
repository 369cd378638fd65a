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
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import httpx
import ipywidgets
import traitlets

from . import _messages, _runner
from ._answer import Answer, Framed, Outbox
from ._budget import LIVE
from ._explain import explain
from ._kernel import Displays, replace_in_cell
from ._pacing import Wake, type_out
from ._pauses import PausingTypewriter, chars_per_second  # stage (issue 24)
from ._secrets import Secrets
from ._sources import PythonSource
from ._stage import PRESETS, Redaction  # stage (issue 24)
from ._static_copy import static_copy, transcript
from ._timeout import within
from .deltas import (
    Delta,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    merge_tool_calls,
)
from .providers import build_request, detect_provider
from .render import MarkdownStream
from .transport import Limits, Retries, Timeouts, cap_answer, new_client, stream_deltas
from .typewriter import Typewriter

if TYPE_CHECKING:
    from .doctor import Diagnosis

__all__ = ["StreamChat"]

_STATIC = Path(__file__).parent / "static"
_CHAT_MIME_TYPE = "application/vnd.streamchat.chat+json"

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


_HTML_FIELDS = ("html", "reasoning_html", "source")  # "source": the answer's Markdown


def _turns_to_json(turns: list[dict[str, Any]], _widget: object) -> list[dict[str, Any]]:
    """The turns as synced: without the answers' HTML, which travels in its own trait."""
    return [{k: v for k, v in turn.items() if k not in _HTML_FIELDS} for turn in turns]


def _finished_to_json(finished: dict[str, Any], widget: StreamChat) -> dict[str, Any]:
    """A copy taken under the lock: the loop thread adds to `finished` in place while
    the shell thread answers a page's request for the state."""
    with widget._lock:
        return dict(finished)


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
    # The answers' HTML is not in the turns list, which is re-sent when a turn starts
    # (a turn end changes it in place and says so in "ended"): carrying it there would
    # re-send the whole conversation each time.
    # Its elements are not validated one by one: only this class writes them, and
    # validating a thousand turns at each change costs more than sending them.
    turns = traitlets.List().tag(sync=True, to_json=_turns_to_json)
    # Finished answers' HTML and Markdown source by turn id (str): {"html",
    # "reasoning_html", "source"}. Filled in place, so never re-sent: a turn end tells
    # the views ("ended"), which built that HTML from the patches and keep it in their
    # model (saved with the notebook's widget state); a page opened later gets it all
    # in the state it asks for (`get_state`). One trait for the whole conversation, not
    # one per answer: `add_traits` would make the widget a new class at every answer.
    finished = traitlets.Dict().tag(sync=True, to_json=_finished_to_json)
    # stage (issue 24): pacing for a room and on-screen redaction; kernel-side only.
    wpm = traitlets.Float(None, allow_none=True)
    pauses = traitlets.Bool(False)
    redact: traitlets.List[Any] = traitlets.List()

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
        wpm: float | None = None,  # stage (issue 24)
        pauses: bool = False,  # stage (issue 24)
        redact: Sequence[str] | bool = (),  # stage (issue 24)
    ) -> None:
        self._lock = threading.RLock()  # first: opening the comm reads the state
        self._redaction = Redaction()  # stage (issue 24): `redact` sets it
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
        self.pauses, self.redact = pauses, list(PRESETS if redact is True else redact or ())
        self.wpm = wpm  # stage (issue 24): sets `speed`
        self._history: list[dict[str, str]] = []
        self._sources: list[str] = []  # Markdown source of each turn, for the transcript
        self._live: Answer | None = None
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

    @traitlets.validate("redact")  # stage (issue 24)
    def _valid_redact(self, proposal: dict[str, Any]) -> list[Any]:
        self._redaction = Redaction.of(proposal["value"])  # a bad pattern raises here
        return list(proposal["value"])

    @traitlets.observe("wpm")  # stage (issue 24)
    def _wpm_changed(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.speed = chars_per_second(change["new"])

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
            self._start_answer(question=prompt)

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
            self.finished.pop(str(last["id"]), None)
            self.turns = self.turns[:-1]
            self._start_answer()

    def stage(self, on: bool = True) -> None:  # stage (issue 24)
        """Show the chat to a room: it fills the window in large type, the preset prompts
        become a deck (Right/PageDown/Space: next, Left: back), Escape leaves."""
        self._emit(_messages.stage(on))

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

    def __repr__(self) -> str:
        """Short, and as cheap at turn 500 as at turn 5: every bundle (each turn end)
        asks for it, and ipywidgets' own repr prints every trait: each turn's HTML."""
        return (
            f"StreamChat(status={self.status!r}, turns={len(self.turns)}, "
            f"speed={self.speed:g}, step={self.step})"
        )

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
        # Ranked before the widget view by streamchat's JupyterLab extension, whose
        # renderer shows the static copy when the widget's model is gone (labextension/).
        return {_CHAT_MIME_TYPE: {}, **data, **static_copy(turns, self._sources)}, metadata

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
        elif message["type"] == "resend":
            self._resend(message["turn"])
        elif message["type"] == "instant":  # stage (issue 24)
            self._instant(message["turn"])
        else:
            _runner.call_soon(self._send_snapshot)

    def _instant(self, turn: int | None) -> None:  # stage (issue 24)
        """Show the rest of the live answer at once: its typewriter drops to speed 0."""
        answer = self._live
        if answer is None or (turn is not None and answer.outbox.turn_id != turn):
            return

        def apply() -> None:
            answer.typewriter.speed = 0
            if answer.wake is not None:
                answer.wake.set()

        _runner.call_soon(apply)

    def _emit(self, content: Any) -> None:
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

    def _append_turns(self, *turns: tuple[dict[str, Any], str]) -> None:
        """Add turns (each with its Markdown source) in one change of `turns`: each
        change re-sends the list."""
        self._sources += [source for _, source in turns]
        self.turns = [*self.turns, *({"id": next(_turn_ids), **turn} for turn, _ in turns)]

    def _publish(self, turn: dict[str, Any], fields: dict[str, Any]) -> None:
        """(under the lock) Keep one finished answer's HTML in `finished`, without sending it,
        and tell the views the turn ended, with its new `fields` (status, stats...).

        Every view that applied the answer's patches already holds that HTML: the
        "ended" message gives them the source and the sizes to check it against, and
        they keep it in their model. The kernel's copy is for pages opened later (the
        state they ask for) and for a view that could not check its own ("resend").
        """
        self.finished[str(turn["id"])] = {key: turn[key] for key in _HTML_FIELDS}
        self._emit(
            _messages.ended(
                turn["id"], turn["source"], turn["html"], turn["reasoning_html"], fields
            )
        )

    def _resend(self, turn: int) -> None:
        with self._lock:
            stored = self.finished.get(str(turn))
        if stored is not None:
            self._emit(_messages.finished(turn, **stored))

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A browser's update, without `finished`: the kernel's copy is the answers as
        rendered here, and a browser is not trusted input."""
        super().set_state({k: v for k, v in sync_data.items() if k != "finished"})

    def _start_answer(self, question: str | None = None) -> None:
        """(under the lock) Add a live assistant turn, after the `question` asked if
        any, and start typing it."""
        answer_turn = {
            "role": "assistant",
            "html": "",
            "reasoning_html": "",
            "source": "",
            "tool_calls": [],
            "status": "streaming",
            "error": None,
            "stats": {},
        }
        shown = None if question is None else self._redaction(question)  # stage (issue 24)
        asked = [] if shown is None else [({"role": "user", "text": shown}, shown)]
        self._append_turns(*asked, (answer_turn, ""))
        turn = len(self.turns) - 1
        turn_id = self.turns[turn]["id"]
        body = self._redaction.stream(MarkdownStream(allow_images=self._allow_images))
        reasoning = self._redaction.stream(MarkdownStream(allow_images=self._allow_images))
        pace = PausingTypewriter if self.pauses else Typewriter  # stage (issue 24)
        answer = Answer(
            turn=turn,
            typewriter=pace(self.speed, self.step, max_lag=self._max_lag),
            body=body,
            reasoning=reasoning,
            outbox=Outbox(self._emit, turn_id, {"body": body, "reasoning": reasoning}),
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

    async def _run(self, answer: Answer, history: list[dict[str, str]]) -> None:
        answer.task = asyncio.current_task()
        answer.wake = Wake()
        answer.stream_closed = asyncio.Event()
        LIVE.add(answer)
        try:
            status, error = await self._type(answer, history)
            if status == "stopped":
                answer.outbox.discard()
                answer.body.finish()  # the stopped answer's HTML, complete; nothing more sent
                answer.reasoning.finish()
            else:
                try:
                    await answer.outbox.finish()
                except asyncio.CancelledError:  # Stop after the last token
                    if answer.outbox.carried:  # ... while text is still being shown
                        status = "stopped"
                        answer.outbox.discard()
                        answer.body.finish()
                        answer.reasoning.finish()
        except asyncio.CancelledError:  # a Stop while the answer was ending: it is stopped
            status, error = "stopped", None
        except Exception as exc:  # a renderer bug: still end the turn, keep the partial
            status, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            LIVE.discard(answer)
        try:
            self._finish(answer, status, error)
        finally:
            answer.ended.set()

    async def _type(self, answer: Answer, history: list[dict[str, str]]) -> tuple[str, str | None]:
        """Stream and type the answer; return its final status and error message."""
        try:
            if answer.stop_requested:
                return "stopped", None
            terminal = await type_out(
                self._observe(answer, self._deltas(history)),
                Framed(answer.typewriter, answer.outbox),  # type: ignore[arg-type]
                answer.type,
                lambda delta: self._on_delta(answer, delta),
                wake=answer.wake,
            )
        except asyncio.CancelledError:
            if answer.stream_started:
                # Stop means the connection is closed by the time stop() returns.
                assert answer.stream_closed is not None
                with contextlib.suppress(TimeoutError):
                    await within(answer.stream_closed.wait(), 5)
            return "stopped", None
        except Exception as exc:  # a bad configuration or a parser bug: show it
            return "error", self._redact(f"{type(exc).__name__}: {exc}")
        if isinstance(terminal, StreamError):  # a Python source's too: it may quote a key
            return "error", self._redact(str(explain(terminal, provider=self._wire_provider())))
        answer.finish_reason = terminal.finish_reason or answer.finish_reason
        return "done", None

    def _wire_provider(self) -> str | None:
        """The provider format of the URL (None for a Python source): which key it uses."""
        if self._source is not None:
            return None
        return detect_provider(self._url) if self._provider == "auto" else self._provider

    def _deltas(self, history: list[dict[str, str]]) -> AsyncIterator[Delta]:
        """(loop thread) The answer's deltas, from the URL or from the Python source."""
        if self._source is not None:
            system = [{"role": "system", "content": self._system}] if self._system else []
            deltas = self._source.deltas([*system, *history], self._timeouts)
            return cap_answer(deltas, self._limits.answer)
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

    def _redact(self, message: str) -> str:
        """An error message fit for the turn, which is synced and saved with the notebook."""
        secrets = Secrets.of(self._url, {**self._headers, "api-key": self._api_key or ""})
        return secrets.redact(message)

    async def _observe(self, answer: Answer, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
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
                    if isinstance(delta, ReasoningDelta):
                        answer.reasoning_last = now
                    elif answer.reasoning_last is not None and answer.reasoning_end is None:
                        answer.reasoning_end = now
                    if isinstance(delta, TextDelta):
                        answer.received += len(delta.text)
                yield delta
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
            assert answer.stream_closed is not None
            answer.stream_closed.set()

    def _on_delta(self, answer: Answer, delta: Delta) -> None:
        if isinstance(delta, ReasoningDelta):
            answer.outbox.add("reasoning", delta.text)
        elif isinstance(delta, ToolCallDelta):
            answer.tool_deltas.append(delta)
            answer.tool_after.setdefault(delta.index, answer.received)
            answer.tool_calls = [
                {
                    "name": call.name or "",
                    "arguments": call.arguments,
                    "after": answer.tool_after[call.index],
                }
                for call in merge_tool_calls(answer.tool_deltas)
            ]
            answer.outbox.tools(answer.tool_calls)
        elif isinstance(delta, Usage):
            answer.usage = delta

    def _finish(self, answer: Answer, status: str, error: str | None) -> None:
        """(loop thread) Record the answer in the history and the turn; end the live state."""
        with self._lock:
            if self._live is not answer:
                return
            text = answer.body.text
            if text:
                self._history.append({"role": "assistant", "content": text})
            shown = self._redaction(text)  # stage (issue 24): as the room saw it
            self._sources[answer.turn] = shown
            fields = {
                "tool_calls": answer.tool_calls,
                "status": status,
                "error": error,
                "note": answer.note if status == "stopped" else None,
                "stats": answer.stats(),
            }
            turn = {
                **self.turns[answer.turn],
                "source": shown,  # for the answer's Copy button
                "html": answer.body.html,
                "reasoning_html": answer.reasoning.html,
                **fields,
            }
            # In place: `turns` is not re-sent at a turn end (its size grows with the
            # conversation); "ended" carries the turn's new fields to the views, and a
            # page opened later reads them in the state it asks for.
            self.turns[answer.turn] = turn
            # The saved output first: whoever sees the turn end and saves at once
            # saves this answer too.
            self._show_static_copy(self.turns)
            self._publish(turn, fields)
            self.status = status
            self._live = None
            self._idle.set()
