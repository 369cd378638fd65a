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

Threads: the conversation (`_conversation.Conversation`), the live answer and the
traits that mirror them (`status`, `turns`, `finished`) belong to the loop thread;
the kernel thread posts commands to it (`ask`, `stop`, `retry`, `close`, a pace
change) and reads the conversation's snapshot. `_conversation` says who owns what.
Methods marked "(loop thread)" run there only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anywidget
import httpx
import ipywidgets
import traitlets

from . import _messages, _runner
from ._answer import Answer, Framed, Outbox
from ._budget import LIVE
from ._conversation import Conversation, check_owner
from ._explain import explain
from ._kernel import Displays, replace_in_cell
from ._pacing import Wake, type_out
from ._secrets import Secrets
from ._sources import PythonSource
from ._static_copy import static_copy, transcript
from ._timeout import within
from .deltas import (
    Delta,
    Handlers,
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

T = TypeVar("T")

# How long the kernel thread waits for a command to be done on the loop thread: a new
# prompt waits for the answer it stops, whose connection closes within 5 s.
_COMMAND_WAIT = 30.0

# Traits the loop thread owns (mirrors of the conversation): a browser may not set them.
_LOOP_TRAITS = ("status", "turns", "finished")

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
    """A copy taken under its lock: the loop thread adds to `finished` in place while
    the shell thread answers a page's request for the state."""
    with widget._finished_lock:
        return dict(finished)


class StreamChat(anywidget.AnyWidget):
    """A chat bubble conversation that streams answers from an LLM endpoint.

    With no `url` it talks to the embedded demo server, so it works offline and
    without an API key. Instead of a URL it also takes a Python source (see
    `streamchat._sources`): a function given the conversation (OpenAI messages) that
    returns or yields text or an SDK stream, or one stream (a generator, an SDK
    stream object), which it types at once as the first answer.

    `ask()` returns at once; the answer types itself in the background, also while
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
    turns: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True, to_json=_turns_to_json)
    # Finished answers' HTML and Markdown source by turn id (str): {"html",
    # "reasoning_html", "source"}. Filled in place, so never re-sent: a turn end tells
    # the views ("ended"), which built that HTML from the patches and keep it in their
    # model (saved with the notebook's widget state); a page opened later gets it all
    # in the state it asks for (`get_state`). One trait for the whole conversation, not
    # one per answer: `add_traits` would make the widget a new class at every answer.
    finished = traitlets.Dict().tag(sync=True, to_json=_finished_to_json)

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
        # First: opening the comm reads the state.
        self._finished_lock = threading.Lock()
        self._core = Conversation(_runner.in_loop_thread)
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
        self._closed = False  # (kernel thread) no answer starts once set
        # (loop thread) Commands run one at a time; the live answer's task.
        self._commands: asyncio.Lock | None = None
        self._running: asyncio.Task[None] | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._displays = Displays()
        self.on_msg(self._on_frontend_msg)
        if self.comm is not None:
            self.comm.on_close(lambda _msg: self._shut(wait=False))
        replace_in_cell(self)
        if self._source is not None and self._source.single:
            self._command(lambda: self._start(None))

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
        core = getattr(self, "_core", None)
        if core is None or core.view.live is None:  # also while __init__ sets the traits
            return
        name, value = change["name"], change["new"]
        _runner.call_soon(lambda: self._apply_pace(name, value))

    def _apply_pace(self, name: str, value: float) -> None:
        """(loop thread) The live answer's typewriter takes the new pace."""
        answer = self._core.live
        if answer is not None:
            setattr(answer.typewriter, name, value)
            if answer.wake is not None:
                answer.wake.set()

    @traitlets.observe(*_LOOP_TRAITS)
    def _loop_trait_changed(self, change: dict[str, Any]) -> None:
        check_owner(_runner.in_loop_thread, f"StreamChat.{change['name']} written")

    # -- public API ----------------------------------------------------------------

    def ask(self, prompt: str) -> None:
        """Ask `prompt`; returns at once while the answer streams in the background.

        An answer still being typed is stopped first: its partial text stays in the
        history, marked "Stopped: a new prompt was sent."
        """
        prompt = str(prompt)
        if not prompt.strip():
            raise ValueError("the prompt is empty")
        if self._closed:
            raise RuntimeError("this chat is closed")
        self._command(lambda: self._ask(prompt))

    def send(self, content: Any, buffers: Any = None) -> None:
        """ipywidgets' `Widget.send`: a custom message to the widget's views.

        Kept with ipywidgets' meaning because ipywidgets and anywidget call it on a
        widget: `DOMWidget.focus()`/`blur()` send `{"do": "focus"}`, anywidget's
        commands send their responses. Before, `chat.send(prompt)` asked a prompt:
        a string is still asked, with a `DeprecationWarning` (use `ask`).
        """
        if isinstance(content, str):
            warnings.warn(
                "StreamChat.send(prompt) is deprecated: use StreamChat.ask(prompt) "
                "(send is ipywidgets' Widget.send, for custom messages)",
                DeprecationWarning,
                stacklevel=2,
            )
            self.ask(content)
            return
        super().send(content, buffers)

    def stop(self, turn: int | None = None) -> None:
        """Stop the answer being typed; its partial text is kept. Closes the connection.

        `turn` (a turn id) names the answer meant; a newer one is left typing.
        """
        if self._core.view.live is not None:
            self._command(lambda: self._stop(turn))

    def doctor(self, timeout: float = 30.0) -> Diagnosis:
        """Diagnose this chat's endpoint: why an answer came in bursts or broke off.

        Sends the last prompt again with the same URL, provider, model and secrets,
        and times every chunk; the result shows in a notebook as a report with a
        chart of chunk arrival times (see `streamchat.doctor`).
        """
        from .doctor import diagnose

        if self._source is not None:
            raise ValueError("the doctor diagnoses HTTP endpoints; this chat streams from Python")
        prompts = [m["content"] for m in self._core.view.history if m["role"] == "user"]
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
        self._command(lambda: self._retry(turn))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no answer is being typed; False if `timeout` passed first."""
        return self._idle.wait(timeout)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation in OpenAI message format, as sent with the next prompt."""
        system = [{"role": "system", "content": self._system}] if self._system else []
        return system + [dict(message) for message in self._core.view.history]

    @property
    def transcript(self) -> str:
        """The conversation as Markdown (answers as their Markdown source)."""
        view = self._core.view
        return transcript(view.turns, view.sources)

    @property
    def stats(self) -> dict[str, Any]:
        """The last answer's figures: ttft (s), chars_per_second, token usage if reported."""
        for turn in reversed(self._core.view.turns):
            if turn["role"] == "assistant":
                return dict(turn["stats"])
        return {}

    def close(self) -> None:
        """Close the widget: stop its stream (closing the connection)."""
        self._shut(wait=True)
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
        view = self._core.view
        return self._bundle(view.turns, view.sources)

    def _bundle(
        self, turns: Sequence[dict[str, Any]], sources: Sequence[str]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_()
        if bundle is None:  # closed
            return None
        data, metadata = bundle
        # Ranked before the widget view by streamchat's JupyterLab extension, whose
        # renderer shows the static copy when the widget's model is gone (labextension/).
        return {_CHAT_MIME_TYPE: {}, **data, **static_copy(turns, sources)}, metadata

    def _ipython_display_(self) -> None:
        """Show the chat through a display that each turn end updates, so the notebook's
        saved output holds the conversation so far."""
        bundle = self._repr_mimebundle_()
        if bundle is not None:
            self._displays.show(*bundle)

    def _show_static_copy(self) -> None:
        """(loop thread, turn end) Rewrite every display of the chat with the
        conversation so far."""
        bundle = self._bundle(self._core.turns, self._core.sources)
        if bundle is not None:
            self._displays.update(*bundle)

    # -- browser messages ----------------------------------------------------------

    def _on_frontend_msg(self, _widget: object, content: object, _buffers: object) -> None:
        message = _messages.parse_browser_message(content)
        if message is None:
            return
        if message["type"] == "send":
            self.ask(message["prompt"])
        elif message["type"] == "stop":
            self.stop(message["turn"])
        elif message["type"] == "retry":
            self.retry(message["turn"])
        elif message["type"] == "resend":
            self._resend(message["turn"])
        else:
            _runner.call_soon(self._send_snapshot)

    def _emit(self, content: Any) -> None:
        """Send one custom message to every view (ipywidgets' `Widget.send`)."""
        ipywidgets.Widget.send(self, content)

    def _send_snapshot(self) -> None:
        """(loop thread) The whole live answer, for a view that joined while it was typed."""
        answer = self._core.live
        if answer is None:
            return
        shown = answer.outbox.snapshot()
        self._emit(_messages.snapshot(answer.outbox.turn_id, shown, answer.tool_calls))

    # -- the answer pipeline -------------------------------------------------------

    def _publish(self, turn: dict[str, Any], fields: dict[str, Any]) -> None:
        """(under the lock) Keep one finished answer's HTML in `finished`, without sending it,
        and tell the views the turn ended, with its new `fields` (status, stats...).

        Every view that applied the answer's patches already holds that HTML: the
        "ended" message gives them the source and the sizes to check it against, and
        they keep it in their model. The kernel's copy is for pages opened later (the
        state they ask for) and for a view that could not check its own ("resend").
        """
        check_owner(_runner.in_loop_thread, "StreamChat.finished written")
        with self._finished_lock:
            self.finished[str(turn["id"])] = {key: turn[key] for key in _HTML_FIELDS}
        self._emit(
            _messages.ended(
                turn["id"], turn["source"], turn["html"], turn["reasoning_html"], fields
            )
        )

    def _resend(self, turn: int) -> None:
        with self._finished_lock:
            stored = self.finished.get(str(turn))
        if stored is not None:
            self._emit(_messages.finished(turn, **stored))

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """A browser's update, without the traits the loop thread owns (`status`,
        `turns`, `finished`): the kernel's copy is the conversation as it streamed here,
        and a browser is not trusted input."""
        super().set_state({k: v for k, v in sync_data.items() if k not in _LOOP_TRAITS})

    # -- commands: posted by the kernel thread, run on the loop thread -------------------

    def _command(self, command: Callable[[], Awaitable[T]], *, wait: bool = True) -> T | None:
        """Run `command` on the loop thread, after the commands posted before it; wait
        for it unless told not to (or on the loop thread, where waiting would deadlock)."""
        future = _runner.submit(self._in_turn(command))
        if not wait or _runner.in_loop_thread():
            return None
        try:
            return future.result(_COMMAND_WAIT)
        except TimeoutError:
            raise TimeoutError(
                f"the chat's loop thread did not answer within {_COMMAND_WAIT:g} s"
            ) from None

    async def _in_turn(self, command: Callable[[], Awaitable[T]]) -> T:
        """(loop thread) One command at a time: each sees the state the last one left."""
        if self._commands is None:
            self._commands = asyncio.Lock()
        async with self._commands:
            return await command()

    async def _ask(self, prompt: str) -> None:
        """(loop thread) Stop the live answer, with a note; ask `prompt`."""
        await self._stop(None, note="Stopped: a new prompt was sent.")
        await self._start(prompt)

    async def _retry(self, turn: int | None) -> None:
        """(loop thread) Take the last answer out, if it may be retried; ask again."""
        if self._closed or not self._core.retryable(turn):
            return
        turn_id = self._core.drop_last()
        with self._finished_lock:
            self.finished.pop(str(turn_id), None)
        self.turns = self._core.turns
        await self._start(None)

    async def _stop(self, turn: int | None, note: str | None = None) -> None:
        """(loop thread) Stop the live answer (if it is `turn`, when given); return once
        it has ended, its connection closed."""
        answer = self._core.live
        if answer is None or (turn is not None and answer.outbox.turn_id != turn):
            return
        if note is not None:
            answer.note = note
        # Through `Answer.cancel`, not the task's: a task cancelled before its first
        # step would never run its cleanup, and the turn would stay "streaming" for ever.
        answer.cancel()
        if self._running is not None:
            await asyncio.wait([self._running])

    async def _start(self, question: str | None) -> None:
        """(loop thread) Add a live assistant turn, after the `question` asked if any,
        and start typing it."""
        if self._closed:
            return
        core = self._core
        turn = core.begin(question)
        self.turns = core.turns
        body = MarkdownStream(allow_images=self._allow_images)
        reasoning = MarkdownStream(allow_images=self._allow_images)
        streams = {"body": body, "reasoning": reasoning}
        answer = Answer(
            turn=turn,
            typewriter=Typewriter(self.speed, self.step, max_lag=self._max_lag),
            body=body,
            reasoning=reasoning,
            outbox=Outbox(self._emit, core.turns[turn]["id"], streams),
        )
        core.started(answer)
        self._idle.clear()
        self.status = core.status
        history = list(core.history)
        self._running = asyncio.get_running_loop().create_task(self._run(answer, history))

    def _shut(self, *, wait: bool) -> None:
        """No answer starts any more; the live one is stopped (also one that a command
        posted before is starting now)."""
        self._closed = True
        # Robust in a half-built widget's close(). At interpreter exit (ipywidgets'
        # __del__ calls close) the loop thread no longer runs: waiting for it would
        # only delay the exit; a loop never started ran no answer.
        if not hasattr(self, "_core") or sys.is_finalizing() or not _runner.running():
            return
        self._command(lambda: self._stop(None), wait=wait)

    async def _run(self, answer: Answer, history: list[dict[str, str]]) -> None:
        """(loop thread) The live answer, from its request to its turn's end."""
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
                self._handlers(answer),
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
        """(loop thread) Pass deltas through, timing the first token and counting what
        arrived."""
        answer.stream_started = True
        observe = self._observer(answer)
        try:
            async for delta in deltas:
                observe(delta)
                yield delta
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
            assert answer.stream_closed is not None
            answer.stream_closed.set()

    def _observer(self, answer: Answer) -> Handlers:
        """(loop thread) Timings and counts of `answer`'s deltas, as they arrive."""

        def token(_delta: Delta) -> None:
            answer.last = now = time.monotonic()
            if answer.first is None:
                answer.first = now
                if self._core.streaming():
                    self.status = self._core.status

        def reasoning(_delta: ReasoningDelta) -> None:
            answer.reasoning_last = answer.last

        def after_reasoning(_delta: Delta) -> None:
            if answer.reasoning_last is not None and answer.reasoning_end is None:
                answer.reasoning_end = answer.last

        def text(delta: TextDelta) -> None:
            answer.received += len(delta.text)
            after_reasoning(delta)

        return Handlers(token=token, reasoning=reasoning, text=text, tool_call=after_reasoning)

    def _handlers(self, answer: Answer) -> Handlers:
        """(loop thread) What `answer` does with the deltas that are not paced text."""

        def reasoning(delta: ReasoningDelta) -> None:
            answer.outbox.add("reasoning", delta.text)

        def tool_call(delta: ToolCallDelta) -> None:
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

        def usage(delta: Usage) -> None:
            answer.usage = delta

        return Handlers(reasoning=reasoning, tool_call=tool_call, usage=usage)

    def _finish(self, answer: Answer, status: str, error: str | None) -> None:
        """(loop thread) Record the answer in the history and the turn; end the live state."""
        core = self._core
        text = answer.body.text
        fields = {
            "tool_calls": answer.tool_calls,
            "status": status,
            "error": error,
            "note": answer.note if status == "stopped" else None,
            "stats": answer.stats(),
        }
        turn = {
            **core.turns[answer.turn],
            "source": text,  # for the answer's Copy button
            "html": answer.body.html,
            "reasoning_html": answer.reasoning.html,
            **fields,
        }
        # In place (`core.turns` is the trait's list): `turns` is not re-sent at a turn
        # end (its size grows with the conversation); "ended" carries the turn's new
        # fields to the views, and a page opened later reads them in its state.
        core.end(answer, turn, text)
        # The saved output first: whoever sees the turn end and saves at once
        # saves this answer too.
        self._show_static_copy()
        self._publish(turn, fields)
        self.status = core.status
        self._idle.set()
