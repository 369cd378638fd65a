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

`StreamChat` is the facade: traits, the public API, display, the browser's messages.
The conversation (`_conversation.Conversation`) and its answers live on the loop
thread (`_driver.Driver`): the public API posts commands to it and reads the
conversation's snapshot. `_conversation` says who owns what. Methods marked
"(loop thread)" run there only.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import traitlets

from . import _messages, _runner
from ._conversation import check_owner
from ._driver import Driver, Endpoint
from ._kernel import Displays, replace_in_cell
from ._pauses import chars_per_second  # stage (issue 24)
from ._sources import PythonSource
from ._stage import PRESETS, Redaction  # stage (issue 24)
from ._static_copy import static_copy, transcript
from .transport import Limits, Retries, Timeouts

if TYPE_CHECKING:
    from .doctor import Diagnosis

__all__ = ["StreamChat"]

_STATIC = Path(__file__).parent / "static"
_CHAT_MIME_TYPE = "application/vnd.streamchat.chat+json"

# Traits the loop thread owns (mirrors of the conversation): a browser may not set them.
_LOOP_TRAITS = ("status", "turns", "finished")


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
    # Its elements are not validated one by one: only the chat (its Driver) writes them, and
    # validating a thousand turns at each change costs more than sending them.
    turns: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True, to_json=_turns_to_json)
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
        source = None if url is None or isinstance(url, str) else PythonSource(url)
        if url is None:
            from .server import demo_server

            url = demo_server().url
        endpoint = Endpoint(
            url if isinstance(url, str) else "",
            source,
            model=model,
            provider=provider,
            api_key=api_key,
            headers=dict(headers or {}),
            system=system,
            options=dict(options or {}),
            timeouts=timeouts,
            retries=retries,
            limits=limits,
        )
        # First: opening the comm reads the state.
        self._finished_lock = threading.Lock()
        self._redaction = Redaction()  # stage (issue 24): `redact` sets it
        self._driver = Driver(self, endpoint, allow_images=allow_images, max_lag=max_lag)
        self._core = self._driver.core
        super().__init__(speed=speed, step=step, prompts=list(prompts), disclaimer=disclaimer)
        self.pauses, self.redact = pauses, list(PRESETS if redact is True else redact or ())
        self.wpm = wpm  # stage (issue 24): sets `speed`
        self._displays = Displays()
        self.on_msg(self._on_frontend_msg)
        if self.comm is not None:
            self.comm.on_close(lambda _msg: self._shut(wait=False))
        replace_in_cell(self)
        if source is not None and source.single:
            self._driver.post(lambda: self._driver.start(None))

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
        core = getattr(self, "_core", None)
        if core is None or core.view.live is None:  # also while __init__ sets the traits
            return
        name, value = change["name"], change["new"]
        _runner.call_soon(lambda: self._driver.pace(name, value))

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
        if self._driver.closed:
            raise RuntimeError("this chat is closed")
        self._driver.post(lambda: self._driver.ask(prompt))

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
            self._driver.post(lambda: self._driver.stop(turn))

    def doctor(self, timeout: float = 30.0) -> Diagnosis:
        """Diagnose this chat's endpoint: why an answer came in bursts or broke off.

        Sends the last prompt again with the same URL, provider, model and secrets,
        and times every chunk; the result shows in a notebook as a report with a
        chart of chunk arrival times (see `streamchat.doctor`).
        """
        from .doctor import diagnose

        endpoint = self._driver.endpoint
        if endpoint.source is not None:
            raise ValueError("the doctor diagnoses HTTP endpoints; this chat streams from Python")
        prompts = [m["content"] for m in self._core.view.history if m["role"] == "user"]
        return diagnose(
            endpoint.url,
            prompt=prompts[-1] if prompts else "Say hello.",
            provider=endpoint.provider,
            model=endpoint.model,
            headers=dict(endpoint.headers),
            system=endpoint.system,
            api_key=endpoint.api_key,
            timeout=timeout,
        )

    def retry(self, turn: int | None = None) -> None:
        """Ask again for the last answer, if it failed or was stopped, replacing it.

        `turn` (a turn id) names the answer meant: anything but the last answer is
        left alone, since its question is no longer the last one. An answer being
        typed is never retried (Stop it first).
        """
        self._driver.post(lambda: self._driver.retry(turn))

    def stage(self, on: bool = True) -> None:  # stage (issue 24)
        """Show the chat to a room: it fills the window in large type, the preset prompts
        become a deck (Right/PageDown/Space: next, Left: back), Escape leaves."""
        self._emit(_messages.stage(on))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no answer is being typed; False if `timeout` passed first."""
        return self._driver.idle.wait(timeout)

    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation in OpenAI message format, as sent with the next prompt."""
        system_prompt = self._driver.endpoint.system
        system = [{"role": "system", "content": system_prompt}] if system_prompt else []
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
        """Close the widget: stop its stream (closing the connection). No prompt can be
        asked after."""
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
        elif message["type"] == "instant":  # stage (issue 24)
            turn = message["turn"]
            _runner.call_soon(lambda: self._driver.instant(turn))
        else:
            _runner.call_soon(self._send_snapshot)

    def _shut(self, *, wait: bool) -> None:
        """No answer starts any more; the live one is stopped."""
        # Robust in a half-built widget's close(). At interpreter exit (ipywidgets'
        # __del__ calls close) the loop thread no longer runs: waiting for it would
        # only delay the exit.
        if hasattr(self, "_driver") and not sys.is_finalizing():
            self._driver.shut(wait=wait)

    def _emit(self, content: Any) -> None:
        """Send one custom message to every view (ipywidgets' `Widget.send`)."""
        ipywidgets.Widget.send(self, content)

    def _send_snapshot(self) -> None:
        """(loop thread) The whole live answer, for a view that joined while it was typed."""
        live = self._driver.snapshot()
        if live is not None:
            answer, shown = live
            self._emit(_messages.snapshot(answer.outbox.turn_id, shown, answer.tool_calls))

    # -- what the loop thread tells the views --------------------------------------

    def _publish(self, turn: dict[str, Any], fields: dict[str, Any]) -> None:
        """(loop thread) Keep one finished answer's HTML in `finished`, without sending
        it, and tell the views the turn ended, with its new `fields` (status, stats...).

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

    def _forget(self, turn: int) -> None:
        """(loop thread) An answer taken out to be asked again: its HTML goes too."""
        check_owner(_runner.in_loop_thread, "StreamChat.finished written")
        with self._finished_lock:
            self.finished.pop(str(turn), None)

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
