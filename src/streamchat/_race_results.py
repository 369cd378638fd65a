"""A race's figures, without I/O: the results table's columns and rows, the race's
status from its lanes'. Shared by the widget (`race.Race`) and the terminal
(`streamchat race`), which must not import the widget's libraries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _messages

__all__ = ["RESULT_KEYS", "format_results", "race_status", "result_rows"]

RESULT_KEYS = (
    "label",
    "model",
    "turn",
    "prompt",
    "status",
    "ttft",
    "duration",
    "chars",
    "chars/s",
    "tokens",
    "tokens/s",
    "finish",
    "error",
)
"""The columns of `Race.results`, in order."""


def race_status(statuses: Sequence[str]) -> str:
    """The race's status from its lanes': live while any lane is (streaming once one
    streams); once none is, "stopped" if any was stopped, "error" if every lane failed,
    else "done" (a lane that failed does not make the race fail)."""
    for live in ("streaming", "waiting"):
        if live in statuses:
            return live
    if all(status == "idle" for status in statuses):
        return "idle"
    if "stopped" in statuses:
        return "stopped"
    if all(status == "error" for status in statuses):
        return "error"
    return "done"


def result_rows(label: str, model: str, turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One lane's results: a row per finished answer, with the question it answered."""
    rows = []
    prompt = None
    number = 0
    for turn in turns:
        if turn["role"] == "user":
            prompt = turn["text"]
            continue
        number += 1
        if turn["status"] in _messages.LIVE_STATUSES:
            continue
        stats = turn.get("stats") or {}
        chars, speed = stats.get("chars"), stats.get("chars_per_second")
        tokens = stats.get("output_tokens")
        # Tokens over the span the characters arrived in (as chars/s is measured).
        per_second = round(tokens * speed / chars, 1) if tokens and speed and chars else None
        rows.append(
            {
                "label": label,
                "model": model,
                "turn": number,
                "prompt": prompt,
                "status": turn["status"],
                "ttft": stats.get("ttft"),
                "duration": stats.get("duration"),
                "chars": chars,
                "chars/s": speed,
                "tokens": tokens,
                "tokens/s": per_second,
                "finish": stats.get("finish_reason"),
                "error": turn.get("error"),
            }
        )
    return rows


def format_results(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results as a plain-text table (a saved notebook's text copy)."""
    if not rows:
        return "Race: no answers yet."
    keys = [k for k in RESULT_KEYS if k != "prompt"]
    table = [[("" if row.get(k) is None else str(row[k])) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in table)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join(line.rstrip() for line in lines)
