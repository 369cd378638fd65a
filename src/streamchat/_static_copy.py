"""The conversation as a saved notebook shows it without a kernel.

A widget output is a view of a model that lives in the kernel: GitHub, nbviewer,
`jupyter nbconvert` and VS Code without a kernel cannot draw it. So the chat's
output also carries a static copy of the conversation, `text/html` and
`text/plain` beside the widget view, rewritten at each turn end through the display
it was shown in. Renderers that cannot draw the widget fall back to it; nbconvert
does so whenever the notebook holds no widget state for the chat's model (see
https://github.com/jupyter/nbconvert/blob/main/nbconvert/filters/widgetsdatatypefilter.py).
A notebook executed by nbclient or papermill holds the state of every model whose
comm was opened by the cell it ran, and nbconvert's HTML then shows the widget view
alone: two `<script>` elements and nothing to read without the widget manager, which
it loads from a CDN. So the chat's comm is opened outside any request
(`open_unseen_by_executors`): front ends take it all the same, executors leave its
state out, and nbconvert shows this copy.

The HTML is built only from what the browser already shows: the prompts escaped
and the answers' HTML as the renderer made it (sanitized by nh3, no script, no
style). It holds no URL, header or key: the chat's secrets never reach it.

The copy is bounded, because it is sent whole at every turn end and saved whole with
the notebook: it keeps the last `MAX_TURNS` finished turns, at most `MAX_CHARS`
characters of them (HTML and Markdown counted together), and says at its top how many
earlier turns it left out (`chat.transcript` keeps the whole conversation). A turn too
long for the copy on its own shows the start of its Markdown source, escaped, and how
long it was. So a turn end costs the same at turn 500 as at turn 5, and ten 1 MB
answers do not put 20 MB in the notebook.
"""

from __future__ import annotations

import contextvars
import html
import sys
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from ._messages import LIVE_STATUSES, TurnStatus

__all__ = [
    "MAX_CHARS",
    "MAX_TURNS",
    "STATIC_MIME_TYPES",
    "open_unseen_by_executors",
    "static_copy",
    "transcript",
]

STATIC_MIME_TYPES = ("text/html", "text/plain")

MAX_TURNS = 40  # the last 20 questions and answers
MAX_CHARS = 200_000  # of HTML and Markdown together: at most ~0.8 MB of UTF-8, ~0.2 MB typically
_SHORT = 20_000  # of a turn too long on its own: the start of its source

_NOTES: dict[TurnStatus, str] = {"stopped": "(stopped)", "error": "(error: {error})"}


def _note(turn: Mapping[str, Any]) -> str:
    if turn.get("status") == "stopped" and turn.get("note"):
        return f"({turn['note']})"  # why, when not by Stop
    status: TurnStatus | None = turn.get("status")
    template = _NOTES.get(status) if status else None
    # An error is plain words, the fix and the detail on lines of their own: one line here.
    error = " ".join((turn.get("error") or "unknown").splitlines())
    return template.format(error=error) if template else ""


def transcript(turns: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> str:
    """The conversation as Markdown: each turn's source under who said it."""
    parts = []
    for turn, source in zip(turns, sources, strict=True):
        if turn["role"] == "user":
            parts.append(f"**You:**\n\n{source}")
            continue
        note = _note(turn)
        parts.append(f"**Assistant:**\n\n{source}" + (f"\n\n*{note}*" if note else ""))
    return "\n\n---\n\n".join(parts) + ("\n" if parts else "")


def _user_html(turn: Mapping[str, Any]) -> str:
    lines = html.escape(turn.get("text") or "").split("\n")
    return (
        "<p><strong>You:</strong></p>\n<blockquote><p>" + "<br>\n".join(lines) + "</p></blockquote>"
    )


def _call_html(call: Mapping[str, Any]) -> str:
    call_text = html.escape(f"{call.get('name', '')}({call.get('arguments', '')})")
    return f"<p>Tool call: <code>{call_text}</code></p>"


def _assistant_html(turn: Mapping[str, Any]) -> str:
    parts = ["<p><strong>Assistant:</strong></p>"]
    if turn.get("reasoning_html"):
        parts.append(
            "<details><summary>Reasoning</summary>\n" + turn["reasoning_html"] + "\n</details>"
        )
    # Tool calls where they came: before the text, or after it (`after` characters in).
    calls = turn.get("tool_calls") or ()
    parts += [_call_html(call) for call in calls if not call.get("after", 0) > 0]
    if turn.get("html"):
        parts.append(turn["html"])
    parts += [_call_html(call) for call in calls if call.get("after", 0) > 0]
    if note := _note(turn):
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    return "\n".join(parts)


def _shortened(turn: Mapping[str, Any], source: str) -> tuple[dict[str, Any], str]:
    """A turn too long for the copy: the start of its source, escaped, and its length."""
    start = source[:_SHORT]
    note = f"(shortened in this saved copy: the first {len(start):,} of {len(source):,} characters)"
    if turn["role"] == "user":
        return {**turn, "text": f"{start}\n{note}"}, f"{start}\n\n*{note}*"
    shown = f"<pre>{html.escape(start)}</pre>\n<p><em>{html.escape(note)}</em></p>"
    return {**turn, "html": shown, "reasoning_html": ""}, f"{start}\n\n*{note}*"


def _size(turn: Mapping[str, Any], source: str) -> int:
    return len(source) + len(turn.get("text") or "") + len(turn.get("html") or "")


def _last_turns(
    turns: Sequence[Mapping[str, Any]], sources: Sequence[str]
) -> tuple[list[tuple[Mapping[str, Any], str]], int]:
    """The finished turns the copy keeps, from the end back within `MAX_TURNS` and
    `MAX_CHARS`, and how many finished turns before them it leaves out."""
    kept: list[tuple[Mapping[str, Any], str]] = []
    room = MAX_CHARS
    index = len(turns) - 1
    while index >= 0 and len(kept) < MAX_TURNS:
        turn, source = turns[index], sources[index]
        index -= 1
        if turn["role"] != "user" and turn.get("status") in LIVE_STATUSES:
            continue  # an answer being typed is left out: the copy is rewritten when it ends
        size = _size(turn, source)
        if size > room and kept:
            index += 1
            break
        if size > room:
            turn, source = _shortened(turn, source)
            size = _size(turn, source)
        kept.append((turn, source))
        room -= size
    left_out = index + 1  # the turns before: all finished (only the last may be typing)
    return kept[::-1], left_out


def _left_out_note(left_out: int) -> str:
    turns = "turn" if left_out == 1 else "turns"
    return (
        f"The {left_out:,} earlier {turns} of this conversation are left out of this "
        f"saved copy (it keeps the last {MAX_TURNS} turns, {MAX_CHARS:,} characters at "
        "most); the chat's transcript has them all."
    )


def static_copy(turns: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> dict[str, str]:
    """`text/html` and `text/plain` of the last finished turns (an answer being typed is
    left out: the copy is rewritten when it ends). Its cost does not grow with the
    conversation: it reads the turns from the end and stops at its bounds."""
    done, left_out = _last_turns(turns, sources)
    if not done:
        return {
            "text/html": "<p><em>StreamChat: no conversation yet.</em></p>",
            "text/plain": "StreamChat: no conversation yet.",
        }
    body = "\n<hr>\n".join(
        _user_html(turn) if turn["role"] == "user" else _assistant_html(turn) for turn, _ in done
    )
    plain = transcript([turn for turn, _ in done], [source for _, source in done])
    if left_out:
        note = _left_out_note(left_out)
        body = f'<p class="streamchat-left-out"><em>{html.escape(note)}</em></p>\n<hr>\n{body}'
        plain = f"*{note}*\n\n---\n\n{plain}"
    return {
        "text/html": f'<div class="streamchat-transcript">\n{body}\n</div>',
        "text/plain": plain,
    }


def open_unseen_by_executors(open_comm: Callable[[], None]) -> None:
    """Open a widget's comm with no parent request, so that executors do not save its state.

    nbclient (papermill's executor) reads only the IOPub messages that answer the cell
    it runs (their parent header is its request), and saves the state of the models
    whose `comm_open` it read; with that state saved, `jupyter nbconvert --to html`
    shows the widget view (scripts only) instead of the output's text/html copy.
    JupyterLab, Notebook 7 and Voila take a `comm_open` whatever its parent (tests/browser;
    VS Code and Colab are not tested).
    The later state updates of the model carry the cell's parent; nbclient keeps
    them only for models with a `_model_name`, which only the `comm_open` carries.

    Only ipykernel's shell parent (a context variable) is set, in a copy of the
    context, so nothing else the kernel sends is touched.
    """
    kernel = _kernel()
    parent = getattr(kernel, "_shell_parent", None)
    if not isinstance(parent, ContextVar):  # no kernel, or one that keeps it otherwise
        open_comm()
        return

    def unparented() -> None:
        parent.set({})
        open_comm()

    contextvars.copy_context().run(unparented)


def _kernel() -> object | None:
    """The running IPython kernel, if any (never imports IPython itself)."""
    ipython_module = sys.modules.get("IPython")
    get_ipython = getattr(ipython_module, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return getattr(shell, "kernel", None)
