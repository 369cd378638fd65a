"""The conversation core: turns, statuses, the answer's state machine, without I/O.

Who owns what (issue 21)
------------------------
A chat's state is touched by two threads: the kernel thread (cell code, and the
kernel's shell thread, which runs the browser's messages and a page's request for the
state) and the loop thread (`_runner`), where answers stream. One owner each:

- The loop thread owns the conversation: this `Conversation` (turns, Markdown
  sources, the history sent with the next prompt, the chat's status, the live answer),
  the live `Answer` itself (typewriter, Markdown streams, outbox, timings), and the
  widget traits that mirror them (`status`, `turns`, `finished`). Only it writes them;
  a check (`CHECK`) says so at every change.
- The kernel thread owns the settings: the traits `speed`, `step`, `prompts` and
  `disclaimer`, and the constructor's configuration (`_driver.Endpoint`: URL,
  secrets, limits; frozen). The loop thread reads the pace when an answer starts and
  when a pace change is posted to it.
- The kernel thread changes the conversation only by posting commands to the loop
  thread (ask, stop, retry, close, a pace change: `widget.StreamChat` posts them,
  `_driver.Driver` runs them, one at a time), and reads it through
  `Conversation.view`: an immutable snapshot, replaced whole after each change, so a
  reader never sees a turn half made.
- What crosses threads by design: the commands' futures, `Answer.ended` (a
  `threading.Event`), `view` (one reference), the widget's closed flag (set once, by
  `close`), and the `finished` trait's copy for a page's state (under its own small
  lock: the loop thread adds to it in place).

`CHECK` is on when the environment has `STREAMCHAT_CHECK_OWNER=1` (the test suite
sets it): a change made on another thread raises `OwnerError` and is recorded in
`violations`, so a change swallowed by a callback's error handling is still seen.
Off, a check costs a global's lookup: changes happen at turn boundaries and at the
first token, not per token.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._answer import Answer

__all__ = ["CHECK", "Conversation", "OwnerError", "View", "check_owner", "violations"]

CHECK = os.environ.get("STREAMCHAT_CHECK_OWNER", "") == "1"

# Changes made on a thread that does not own them (only recorded while `CHECK` is on).
violations: list[str] = []


class OwnerError(AssertionError):
    """A conversation's state was changed on a thread that does not own it."""


def check_owner(in_owner: Callable[[], bool], what: str) -> None:
    """Raise `OwnerError` (and record it) if `CHECK` is on and this is not the owner."""
    if CHECK and not in_owner():
        message = f"{what} on thread {threading.current_thread().name!r}, not the owner"
        violations.append(message)
        raise OwnerError(message)


# Turn ids are unique in the kernel: a message read late cannot land on another chat's
# turn either. (`next` on a count is atomic: chats are made on any thread.)
_turn_ids = itertools.count(1)

# The chat's status, and the statuses that may follow each one: an answer waits for its
# first token, streams, and ends done, with an error, or stopped; then the next one waits.
_ENDS = frozenset({"done", "error", "stopped"})
_NEXT: dict[str, frozenset[str]] = {
    "idle": frozenset({"waiting"}),
    "waiting": frozenset({"streaming"}) | _ENDS,
    "streaming": _ENDS,
    **dict.fromkeys(_ENDS, frozenset({"waiting"})),
}


@dataclass(frozen=True, slots=True)
class View:
    """The conversation as the kernel thread reads it: taken after a change, never
    changed (its turn dicts are replaced, not edited, by the owner)."""

    status: str = "idle"
    turns: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()  # each turn's Markdown source
    history: tuple[dict[str, str], ...] = ()  # OpenAI messages, without the system's
    live: int | None = None  # the id of the answer being typed


class Conversation:
    """One chat's turns and answers. Loop thread only (`in_owner` says where that is).

    `turns` is the list the widget's `turns` trait holds: a turn added makes a new list
    (the trait sends it), a turn ended is replaced in place (the trait is not re-sent;
    the "ended" message carries the turn's new fields).
    """

    def __init__(self, in_owner: Callable[[], bool]) -> None:
        self._in_owner = in_owner
        self.status = "idle"
        self.turns: list[dict[str, Any]] = []
        self.sources: list[str] = []
        self.history: list[dict[str, str]] = []
        self.live: Answer | None = None
        self.closed = False
        self.view = View()

    def _change(self, what: str) -> None:
        check_owner(self._in_owner, f"Conversation.{what}")

    def _publish(self) -> None:
        live = None if self.live is None else self.turns[self.live.turn]["id"]
        self.view = View(
            self.status, tuple(self.turns), tuple(self.sources), tuple(self.history), live
        )

    def _set_status(self, status: str) -> None:
        if status not in _NEXT[self.status]:
            raise ValueError(f"the chat's status cannot go from {self.status!r} to {status!r}")
        self.status = status

    # -- the state machine -------------------------------------------------------------

    def begin(self, question: str | None, shown: str | None = None) -> int:
        """Add a live assistant turn, after the user's `question` if any (retry asks
        none); the chat waits for its first token. Returns the new turn's index.
        `shown` is the question as its bubble shows it (redacted on stage, issue 24)."""
        self._change("begin")
        if self.live is not None:
            raise RuntimeError("an answer is still live; stop it first")
        added: list[tuple[dict[str, Any], str]] = []
        if question is not None:
            self.history.append({"role": "user", "content": question})
            shown = question if shown is None else shown
            added.append(({"role": "user", "text": shown}, shown))
        answer: dict[str, Any] = {
            "role": "assistant",
            "html": "",
            "reasoning_html": "",
            "source": "",
            "tool_calls": [],
            "status": "streaming",
            "error": None,
            "stats": {},
        }
        added.append((answer, ""))
        self.sources += [source for _, source in added]
        self.turns = [*self.turns, *({"id": next(_turn_ids), **turn} for turn, _ in added)]
        self._set_status("waiting")
        self._publish()
        return len(self.turns) - 1

    def started(self, answer: Answer) -> None:
        """`answer` is the live one (made by the widget for the turn `begin` added)."""
        self._change("started")
        self.live = answer
        self._publish()

    def streaming(self) -> bool:
        """The live answer's first token came; True if that changed the status."""
        self._change("streaming")
        if self.status != "waiting":
            return False
        self._set_status("streaming")
        self._publish()
        return True

    def end(
        self, answer: Answer, turn: dict[str, Any], text: str, shown: str | None = None
    ) -> None:
        """The live `answer` ended as `turn` (its final fields), with its `text` (for the
        history) and the text `shown` (redacted on stage, issue 24; for the transcript)."""
        self._change("end")
        if self.live is not answer:
            raise RuntimeError("only the live answer can end")
        if text:
            self.history.append({"role": "assistant", "content": text})
        self.sources[answer.turn] = text if shown is None else shown
        self.turns[answer.turn] = turn
        self._set_status(turn["status"])
        self.live = None
        self._publish()

    def retryable(self, turn: int | None) -> bool:
        """Whether the last answer may be asked again: it failed or was stopped, none is
        live, and `turn` (a turn id, None: the last) names it."""
        if self.live is not None or not self.turns or self.turns[-1]["role"] != "assistant":
            return False
        last = self.turns[-1]
        return last["status"] in ("error", "stopped") and turn in (None, last["id"])

    def drop_last(self) -> int:
        """Take the last answer out (to ask again); returns its turn id."""
        self._change("drop_last")
        last = self.turns[-1]
        if self.history and self.history[-1]["role"] == "assistant":
            self.history.pop()
        self.sources.pop()
        self.turns = self.turns[:-1]
        self._publish()
        return int(last["id"])

    def resume(self, turns: list[tuple[dict[str, Any], str]], messages: list[Any]) -> None:
        """Add a saved conversation's `turns` (each with its Markdown source) and keep its
        `messages` as the history the next prompt carries."""
        self._change("resume")
        if self.live is not None:
            raise RuntimeError("an answer is live; a conversation is resumed before any")
        self.history += messages
        self.sources += [source for _, source in turns]
        self.turns = [*self.turns, *({"id": next(_turn_ids), **turn} for turn, _ in turns)]
        self._publish()

    def close(self) -> None:
        """No answer starts after this."""
        self._change("close")
        self.closed = True
