"""The loop thread's side of a chat: the commands the kernel thread posts, and each
answer's life from its request to its turn's end.

`Driver` owns the chat's `Conversation` (`_conversation`, which says who owns what)
and its live answer; it runs on the loop thread (`_runner`) only, except `post`,
which the kernel thread calls. Commands run one at a time (an `asyncio.Lock`), so
each sees the state the one before it left: a new prompt stops the live answer and
awaits its end before it starts the next one; nothing is retried until quiet.

What it tells the widget goes through the widget's I/O: the traits that mirror the
conversation (`status`, `turns`), the `finished` answers, messages to the views and
the static copy. `Endpoint` is where answers come from, fixed when the chat is made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from . import _runner, _tape
from ._answer import Answer, Framed, Outbox
from ._budget import LIVE
from ._conversation import Conversation
from ._explain import explain
from ._messages import TurnEnd, TurnStatus
from ._pacing import Lockstep, Wake, type_out
from ._pauses import PausingTypewriter  # stage (issue 24)
from ._secrets import EchoMask, Secrets
from ._sources import PythonSource
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
    from .widget import StreamChat

__all__ = ["Driver", "Endpoint", "Settings"]

T = TypeVar("T")

# How long the kernel thread waits for a command to be done on the loop thread: a new
# prompt waits for the answer it stops, whose connection closes within 5 s.
COMMAND_WAIT = 30.0

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


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What goes with a source's requests: the model, provider format, key, headers,
    system prompt and request options (a Python source takes the system prompt only).
    Declared once, for a chat's `Endpoint` and a race's `Lane`."""

    model: str | None = None
    provider: str = "auto"
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    system: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The settings as keyword arguments, their mappings copied."""
        given = {each.name: getattr(self, each.name) for each in fields(Settings)}
        return given | {"headers": dict(self.headers), "options": dict(self.options)}


@dataclass(frozen=True)
class Endpoint(Settings):
    """Where a chat's answers come from: a URL and its settings, or a Python source.

    Made once by the widget and never changed, so the loop thread reads it freely.
    Its secrets (`api_key`, `headers`) stay in Python: they are not traits.
    """

    url: str
    source: PythonSource | None = None
    timeouts: Timeouts = Timeouts()
    retries: Retries = Retries()
    limits: Limits = Limits()

    def deltas(self, history: list[dict[str, str]]) -> AsyncIterator[Delta]:
        """(loop thread) An answer's deltas, from the URL or from the Python source."""
        if self.source is not None:
            system = [{"role": "system", "content": self.system}] if self.system else []
            deltas = self.source.deltas([*system, *history], self.timeouts)
            return cap_answer(deltas, self.limits.answer)
        request = build_request(
            self.url,
            history,
            provider=self.provider,
            model=self.model,
            system=self.system,
            api_key=self.api_key,
            headers=dict(self.headers),
            options=dict(self.options),
        )
        return stream_deltas(
            request,
            timeouts=self.timeouts,
            retries=self.retries,
            limits=self.limits,
            client=_client(),
        )

    def wire_provider(self) -> str | None:
        """The provider format of the URL (None for a Python source): which key it uses."""
        if self.source is not None:
            return None
        return detect_provider(self.url) if self.provider == "auto" else self.provider

    def secrets(self) -> Secrets:
        """The secret values this endpoint sends (key, headers, URL credentials)."""
        return Secrets.of(self.url, {**self.headers, "api-key": self.api_key or ""})

    def redact(self, message: str) -> str:
        """An error message fit for the turn, which is synced and saved with the notebook."""
        return self.secrets().redact(message)


async def _echo_masked(deltas: AsyncIterator[Delta], text: EchoMask) -> AsyncIterator[Delta]:
    """`deltas` with `text`'s secrets masked in the answer, its reasoning and each tool
    call's arguments (a model may put the key it was sent into a call's JSON too)."""
    thought = text.fresh()
    calls: dict[int, EchoMask] = {}  # a mask per tool call: their arguments interleave

    def held() -> Iterator[Delta]:
        if rest := thought.flush():
            yield ReasoningDelta(rest)
        if rest := text.flush():
            yield TextDelta(rest)
        for index, mask in calls.items():
            if rest := mask.flush():
                yield ToolCallDelta(index, arguments=rest)

    try:
        async for delta in deltas:
            if isinstance(delta, TextDelta):
                if shown := text.feed(delta.text):
                    yield TextDelta(shown)
            elif isinstance(delta, ReasoningDelta):
                if shown := thought.feed(delta.text):
                    yield ReasoningDelta(shown)
            elif isinstance(delta, ToolCallDelta):
                mask = calls.setdefault(delta.index, text.fresh())
                yield replace(delta, arguments=mask.feed(delta.arguments))
            else:  # the end, an error: what was held goes first
                for each in held():
                    yield each
                yield delta
        for each in held():
            yield each
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]


def _report(done: concurrent.futures.Future[Any]) -> None:
    """Log the error of a command that nobody waited for, as asyncio logs a task's."""
    if not done.cancelled() and (exc := done.exception()) is not None:
        _runner.loop().call_exception_handler(
            {"message": "a streamchat command failed", "exception": exc}
        )


class Driver:
    """A chat's conversation and answers, on the loop thread."""

    def __init__(
        self,
        widget: StreamChat,
        endpoint: Endpoint,
        *,
        allow_images: bool = False,
        max_lag: float | None = None,
    ) -> None:
        self._widget = widget
        self.endpoint = endpoint
        self._allow_images = allow_images
        self._max_lag = max_lag
        self.core = Conversation(_runner.in_loop_thread)
        self.recordings = _tape.Recordings()  # each answer's timed deltas, for `tape`
        self.closed = False  # set once, by the kernel thread: no answer starts after it
        self.idle = threading.Event()  # no answer live (what `wait` waits for)
        self.idle.set()
        self._commands: asyncio.Lock | None = None
        self._running: asyncio.Task[None] | None = None

    # -- posted by the kernel thread -----------------------------------------------------

    def post(self, command: Callable[[], Awaitable[T]], *, wait: bool = True) -> T | None:
        """Run `command` on the loop thread, after the commands posted before it; wait
        for it unless told not to (or on the loop thread, where waiting would deadlock)."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        _runner.submit(self._in_turn(command, done))
        if not wait or _runner.in_loop_thread():
            done.add_done_callback(_report)  # nobody waits for its error
            return None
        try:
            return done.result(COMMAND_WAIT)
        except TimeoutError:
            raise TimeoutError(
                f"the chat's loop thread did not answer within {COMMAND_WAIT:g} s"
            ) from None

    def shut(self, *, wait: bool) -> None:
        """No answer starts any more; the live one is stopped (also one that a command
        posted before is starting now)."""
        self.closed = True
        if _runner.running():  # a loop never started ran no answer
            self.post(lambda: self.stop(None), wait=wait)

    # -- commands (loop thread) ----------------------------------------------------------

    async def _in_turn(
        self, command: Callable[[], Awaitable[T]], done: concurrent.futures.Future[T]
    ) -> None:
        """Run `command` when the one before it is done, and say so at once: the task
        it may start (an answer's) runs its first step before this task's end would
        reach the kernel thread, and must not delay it."""
        if self._commands is None:
            self._commands = asyncio.Lock()
        try:
            async with self._commands:
                result = await command()
        except BaseException as exc:  # the kernel thread raises it (or `_report`)
            done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            done.set_result(result)

    async def resume(self, turns: list[tuple[dict[str, Any], str]], messages: list[Any]) -> None:
        """Show a saved conversation's turns and keep them as the history sent next."""
        widget = self._widget
        self.core.resume(turns, messages)
        for turn in self.core.turns:
            if turn["role"] == "assistant":
                widget._keep(turn)
        widget.turns = self.core.turns

    async def tape(self) -> _tape.Tape:
        """The conversation as a tape (its finished answers), from the loop thread's own
        state: the recordings are written here as deltas arrive."""
        endpoint, core = self.endpoint, self.core
        secrets = endpoint.secrets()
        source = _tape.describe(
            endpoint.url if endpoint.source is None else "",
            provider=endpoint.wire_provider(),
            model=endpoint.model,
            system=endpoint.system,
            secrets=secrets,
        )
        return _tape.from_chat(core.turns, core.sources, self.recordings, source, secrets)

    async def ask(self, prompt: str) -> None:
        """Stop the live answer, with a note; ask `prompt`."""
        await self.stop(None, note="Stopped: a new prompt was sent.")
        await self.start(prompt)

    async def retry(self, turn: int | None) -> None:
        """Take the last answer out, if it may be retried; ask again."""
        if self.closed or not self.core.retryable(turn):
            return
        self._widget._forget(self.core.drop_last())
        self._widget.turns = self.core.turns
        await self.start(None)

    async def stop(self, turn: int | None, note: str | None = None) -> None:
        """Stop the live answer (if it is `turn`, when given); return once it has
        ended, its connection closed."""
        answer = self.core.live
        if answer is None or (turn is not None and answer.outbox.turn_id != turn):
            return
        if note is not None:
            answer.note = note
        # Through `Answer.cancel`, not the task's: a task cancelled before its first
        # step would never run its cleanup, and the turn would stay "streaming" for ever.
        answer.cancel()
        if self._running is not None:
            await asyncio.wait([self._running])

    async def start(self, question: str | None, lockstep: Lockstep | None = None) -> None:
        """Add a live assistant turn, after the `question` asked if any, and start
        typing it (in `lockstep` with other answers: a race at equal speed)."""
        if self.closed:
            return
        core, widget = self.core, self._widget
        shown = None if question is None else widget._redaction(question)  # stage (issue 24)
        turn = core.begin(question, shown)
        widget.turns = core.turns
        body = widget._redaction.stream(MarkdownStream(allow_images=self._allow_images))
        reasoning = widget._redaction.stream(MarkdownStream(allow_images=self._allow_images))
        pace = PausingTypewriter if widget.pauses else Typewriter  # stage (issue 24)
        streams = {"body": body, "reasoning": reasoning}
        answer = Answer(
            turn=turn,
            typewriter=pace(widget.speed, widget.step, max_lag=self._max_lag),
            body=body,
            reasoning=reasoning,
            outbox=Outbox(widget._emit, core.turns[turn]["id"], streams),
        )
        if lockstep is not None:
            answer.lockstep = lockstep
            lockstep.join(lambda: answer.wake.set() if answer.wake is not None else None)
        core.started(answer)
        self.idle.clear()
        widget.status = core.status
        history = list(core.history)
        self._running = asyncio.get_running_loop().create_task(self._run(answer, history))

    def pace(self, name: str, value: float) -> None:
        """The live answer's typewriter takes the new pace (`speed` or `step`) at once."""
        answer = self.core.live
        if answer is not None:
            setattr(answer.typewriter, name, value)
            if answer.wake is not None:
                answer.wake.set()

    def instant(self, turn: int | None) -> None:  # stage (issue 24)
        """Show the rest of the live answer `turn` at once: its typewriter drops to speed 0
        (and its pauses)."""
        answer = self.core.live
        if answer is not None and (turn is None or answer.outbox.turn_id == turn):
            answer.typewriter.speed = 0
            if answer.wake is not None:
                answer.wake.set()

    def snapshot(self) -> tuple[Answer, dict[str, tuple[str, str]]] | None:
        """The live answer and what it shows, for a view that joined while it is typed."""
        answer = self.core.live
        return None if answer is None else (answer, answer.outbox.snapshot())

    # -- an answer's life (loop thread) --------------------------------------------------

    async def _run(self, answer: Answer, history: list[dict[str, str]]) -> None:
        """The live answer, from its request to its turn's end."""
        answer.task = asyncio.current_task()
        answer.wake = Wake()
        answer.stream_closed = asyncio.Event()
        LIVE.add(answer)
        try:
            status, error = await self._type(answer, history)
            if status == "stopped":
                answer.outbox.discard()
                answer.rewind(self._allow_images)  # what the views showed at the Stop
                answer.body.finish()  # the stopped answer's HTML, complete; nothing more sent
                answer.reasoning.finish()
            else:
                try:
                    await answer.outbox.finish()
                except asyncio.CancelledError:  # Stop after the last token
                    if answer.outbox.carried or answer.outbox.playing:  # ... still typing
                        status = "stopped"
                        answer.outbox.discard()
                        answer.rewind(self._allow_images)
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
        endpoint = self.endpoint
        try:
            if answer.stop_requested:
                return "stopped", None
            terminal = await type_out(
                self._observe(answer, self._record(answer, self._masked(endpoint, history))),
                Framed(answer.typewriter, answer.outbox, answer.type, answer.lockstep),  # type: ignore[arg-type]
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
            return "error", endpoint.redact(f"{type(exc).__name__}: {exc}")
        if isinstance(terminal, StreamError):  # a Python source's too: it may quote a key
            told = explain(terminal, provider=endpoint.wire_provider())
            return "error", endpoint.redact(str(told))
        answer.finish_reason = terminal.finish_reason or answer.finish_reason
        return "done", None

    async def _observe(self, answer: Answer, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        """Pass deltas through, timing the first token and counting what arrived."""
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
        """Timings and counts of `answer`'s deltas, as they arrive."""

        def token(_delta: Delta) -> None:
            answer.last = now = time.monotonic()
            if answer.first is None:
                answer.first = now
                if self.core.streaming():
                    self._widget.status = self.core.status

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
        """What `answer` does with the deltas that are not paced text."""

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

    @staticmethod
    def _masked(endpoint: Endpoint, history: list[dict[str, str]]) -> AsyncIterator[Delta]:
        """The endpoint's deltas with the secrets it sent masked in the answer and its
        reasoning, before anything shows, records or keeps them (`EchoMask`)."""
        deltas = endpoint.deltas(history)
        mask = EchoMask(endpoint.secrets())
        return _echo_masked(deltas, mask) if mask else deltas

    def _record(self, answer: Answer, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        """`deltas`, recorded with their times for `tape` (`_tape`)."""
        turn_id = answer.outbox.turn_id
        recording = self.recordings.start(turn_id, self.endpoint.limits.answer, self.core.turns)
        return _tape.record(deltas, recording)

    def _finish(self, answer: Answer, status: str, error: str | None) -> None:
        """Record the answer in the history and the turn; end the live state."""
        core, widget = self.core, self._widget
        text = answer.body.text
        shown = widget._redaction(text)  # stage (issue 24): as the room saw it
        fields = TurnEnd(
            tool_calls=answer.tool_calls,
            status=cast(TurnStatus, status),
            error=error,
            note=answer.note if status == "stopped" else None,
            stats=answer.stats(),
        )
        turn = {
            **core.turns[answer.turn],
            "source": shown,  # for the answer's Copy button
            "html": answer.body.html,
            "reasoning_html": answer.reasoning.html,
            **fields,
        }
        # In place (`core.turns` is the trait's list): `turns` is not re-sent at a turn
        # end (its size grows with the conversation); "ended" carries the turn's new
        # fields to the views, and a page opened later reads them in its state.
        core.end(answer, turn, text, shown)
        # The saved output first: whoever sees the turn end and saves at once
        # saves this answer too.
        widget._show_static_copy()
        widget._publish(turn, fields)
        widget.status = core.status
        self.idle.set()
