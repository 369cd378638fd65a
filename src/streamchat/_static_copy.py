"""The conversation as a saved notebook shows it without a kernel.

A widget output is a view of a model that lives in the kernel: GitHub, nbviewer,
`jupyter nbconvert` and VS Code without a kernel cannot draw it. So the chat's
output also carries a static copy of the conversation, `text/html` and
`text/plain` beside the widget view, rewritten at each turn end through the display
it was shown in. Renderers that cannot draw the widget fall back to it; nbconvert
does so whenever the notebook holds no widget state (see
https://github.com/jupyter/nbconvert/blob/main/nbconvert/filters/widgetsdatatypefilter.py).

The HTML is built only from what the browser already shows: the prompts escaped
and the answers' HTML as the renderer made it (sanitized by nh3, no script, no
style). It holds no URL, header or key: the chat's secrets never reach it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["STATIC_MIME_TYPES", "static_copy", "transcript"]

STATIC_MIME_TYPES = ("text/html", "text/plain")

_NOTES = {"stopped": "(stopped)", "error": "(error: {error})"}


def _note(turn: Mapping[str, Any]) -> str:
    if turn.get("status") == "stopped" and turn.get("note"):
        return f"({turn['note']})"  # why, when not by Stop
    template = _NOTES.get(turn.get("status") or "")
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


def static_copy(turns: Sequence[Mapping[str, Any]], sources: Sequence[str]) -> dict[str, str]:
    """`text/html` and `text/plain` of the finished turns (an answer being typed is left
    out: the copy is rewritten when it ends)."""
    done = [
        (turn, source)
        for turn, source in zip(turns, sources, strict=True)
        if turn["role"] == "user" or turn.get("status") not in ("streaming", "waiting")
    ]
    if not done:
        return {
            "text/html": "<p><em>StreamChat: no conversation yet.</em></p>",
            "text/plain": "StreamChat: no conversation yet.",
        }
    body = "\n<hr>\n".join(
        _user_html(turn) if turn["role"] == "user" else _assistant_html(turn) for turn, _ in done
    )
    plain = transcript([turn for turn, _ in done], [source for _, source in done])
    return {
        "text/html": f'<div class="streamchat-transcript">\n{body}\n</div>',
        "text/plain": plain,
    }
