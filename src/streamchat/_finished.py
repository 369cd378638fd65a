"""The finished answers' HTML a chat and a race keep: the `finished` trait, once for both.

An answer's HTML (and its source, for Copy) is not in the synced `turns`: at a turn's
end every view already holds that HTML (it applied the patches), so the "ended" message
only gives the source and the sizes to check it against. The kernel keeps its own copy
in `finished` for pages opened later (they read the state) and for a view that could not
check its own ("resend", answered by "finished"). One trait for every answer, so the
widget's class does not grow as answers come (`tests/test_widget_growth.py`).

The loop thread writes it; the shell thread reads it when a page asks for the state, so
both go through its lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import traitlets

from . import _messages, _runner
from ._conversation import check_owner
from ._messages import FINISHED_FIELDS

__all__ = ["FinishedAnswers", "without_html"]


def without_html(turns: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The turns as synced: without the answers' HTML, which travels in `finished`."""
    return [{k: v for k, v in turn.items() if k not in FINISHED_FIELDS} for turn in turns]


def _finished_to_json(finished: dict[str, Any], widget: FinishedAnswers) -> dict[str, Any]:
    """A copy taken under its lock: the loop thread adds to `finished` in place while
    the shell thread answers a page's request for the state."""
    with widget._finished_lock:
        return dict(finished)


class FinishedAnswers(traitlets.HasTraits):
    """`finished`: each finished answer's HTML by turn id, kept by the loop thread.

    The widget sends its messages with `_emit` (a chat at once; a race with its lanes'
    messages of the same loop tick)."""

    finished = traitlets.Dict().tag(sync=True, to_json=_finished_to_json)

    def __init__(self, **kwargs: Any) -> None:
        # Before the comm opens: opening it reads the state.
        self._finished_lock = threading.Lock()
        super().__init__(**kwargs)

    def _emit(self, content: Any) -> None:
        raise NotImplementedError

    def _keep(self, turn: Mapping[str, Any]) -> None:
        """(loop thread) Keep one answer turn's HTML, without sending it."""
        check_owner(_runner.in_loop_thread, f"{type(self).__name__}.finished written")
        with self._finished_lock:
            self.finished[str(turn["id"])] = {key: turn[key] for key in FINISHED_FIELDS}

    def _publish(self, turn: Mapping[str, Any], fields: _messages.TurnEnd) -> None:
        """(loop thread) Keep a finished answer's HTML, and tell the views the turn
        ended, with its new `fields` (status, stats...)."""
        self._keep(turn)
        self._emit(
            _messages.ended(
                turn["id"], turn["source"], turn["html"], turn["reasoning_html"], fields
            )
        )

    def _forget(self, turn: int) -> None:
        """(loop thread) An answer taken out to be asked again: its HTML goes too."""
        check_owner(_runner.in_loop_thread, f"{type(self).__name__}.finished written")
        with self._finished_lock:
            self.finished.pop(str(turn), None)

    def _resend(self, turn: int) -> None:
        """A view could not check the HTML it built: send it the kernel's copy."""
        with self._finished_lock:
            stored = self.finished.get(str(turn))
        if stored is not None:
            self._emit(_messages.finished(turn, **stored))
