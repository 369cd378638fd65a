"""The report of a diagnosis: the `Diagnosis` itself, as text, HTML and JSON.

Server-controlled text (headers, reasons, messages) is made printable before it
reaches a terminal and escaped before it reaches HTML.
"""

from __future__ import annotations

import html
import re
import textwrap
from dataclasses import dataclass
from typing import Any

from ._chart import chart, svg
from ._model import Finding, Measurements, Verdict, bursts

__all__ = ["REPORTED_HEADERS", "Diagnosis", "plural"]


REPORTED_HEADERS = (
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "content-length",
    "x-accel-buffering",
    "cache-control",
    "server",
    "via",
    "alt-svc",
)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The verdict on one endpoint, the findings behind it and the measurements."""

    verdict: Verdict
    findings: tuple[Finding, ...]
    measurements: Measurements

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(finding.id for finding in self.findings)

    def to_json(self) -> dict[str, Any]:
        m = self.measurements
        return {
            "verdict": self.verdict,
            "findings": [finding.to_json() for finding in self.findings],
            "url": m.url,
            "provider": m.provider,
            "ending": m.ending,
            "http_version": m.http_version,
            "status": m.status,
            "headers": {name: m.header(name) for name in REPORTED_HEADERS},
            "alpn": m.alpn,
            "time_to_headers": _round(m.headers_at),
            "time_to_first_byte": _round(m.first_byte),
            "time_to_first_event": _round(m.first_event),
            "total": _round(m.total),
            "bytes": m.byte_count,
            "event_count": m.event_count,
            "bursts": len(bursts(m.events)),
            "chunks": [[_round(t), size] for t, size in m.chunks],
            "events": [[_round(t), count] for t, count in m.events],
        }

    def render_text(self, width: int = 48) -> str:
        """The terminal report: verdict, headers, timings, a chart of arrivals, findings."""
        m = self.measurements
        lines = [f"streamchat doctor: {_printable(m.url)} ({m.provider})"]
        lines += [f"verdict: {self.verdict}", ""]
        if m.status is not None:
            lines.append(f"  {m.http_version} {m.status} {_printable(m.reason)}".rstrip())
            lines += [
                f"  {_title(name):<20}{_printable(m.header(name) or '-')}"
                for name in REPORTED_HEADERS
                if m.header(name) is not None or name in _ALWAYS_SHOWN
            ]
            lines.append("")
        lines += [f"  {label:<20}{value}" for label, value in _timings(m)]
        if m.chunks:
            lines += ["", *chart(m, width)]
        for finding in self.findings:
            lines += ["", _wrap(f"[{finding.id}] {finding.message}", "", "  ")]
            lines.append(_wrap(finding.fix, "  fix: ", "       "))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The same report for notebooks, with an inline SVG of arrival times (no scripts)."""
        m = self.measurements
        esc = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{esc(_title(name))}</th>"
            f"<td><code>{esc(m.header(name) or '-')}</code></td></tr>"
            for name in REPORTED_HEADERS
            if m.header(name) is not None or name in _ALWAYS_SHOWN
        )
        rows += "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{esc(label)}</th>"
            f"<td>{esc(value)}</td></tr>"
            for label, value in _timings(m)
        )
        findings = "".join(
            f"<li><b>{esc(f.id)}</b>: {esc(f.message)}<br><i>fix:</i> {esc(f.fix)}</li>"
            for f in self.findings
        )
        status = f"{m.http_version} {m.status} {m.reason}" if m.status is not None else m.ending
        return (
            "<div class='streamchat-doctor' style='font-family:sans-serif'>"
            f"<p><b>streamchat doctor</b>: <code>{esc(m.url)}</code> ({esc(m.provider)})<br>"
            f"verdict: <b>{esc(self.verdict)}</b> &middot; {esc(status)}</p>"
            f"{svg(m)}<table>{rows}</table><ul>{findings}</ul></div>"
        )


_ALWAYS_SHOWN = frozenset({"content-type", "x-accel-buffering", "cache-control"})


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _printable(text: str) -> str:
    """Server-controlled text must not drive the terminal (escape sequences, bells)."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", text)


def _wrap(text: str, first: str, rest: str) -> str:
    return textwrap.fill(_printable(text), 88, initial_indent=first, subsequent_indent=rest)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _timings(m: Measurements) -> list[tuple[str, str]]:
    return [
        ("headers after", _seconds(m.headers_at)),
        ("first byte after", _seconds(m.first_byte)),
        ("first event after", _seconds(m.first_event)),
        ("total", _seconds(m.total)),
        ("reads", f"{len(m.chunks)} ({plural(m.byte_count, 'byte')})"),
        ("events", f"{m.event_count} in {plural(len(bursts(m.events)), 'burst')}"),
    ]
