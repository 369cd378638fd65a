"""On-screen redaction for a chat shown to a room: what the audience must not read.

A demo on a projector shows whatever the model says: a colleague's e-mail address, an
API key it was given in the prompt, an internal host name. `Redaction` masks matches of
its patterns in what is shown: the answers as they type (`RedactedStream`, in front of
the Markdown renderer, so the HTML never holds them), the questions' bubbles and the
saved copy (the static copy, the transcript, the `finished` trait). What is sent to the
model is left alone: `chat.messages` keeps the text as it was said.

Patterns are given by preset name ("email", "api_key", "host") or as regular
expressions. A match must not span whitespace: the streamed text is masked a word at a
time (see `RedactedStream`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .render import MarkdownStream, Patch

__all__ = ["MASK", "PRESETS", "RedactedStream", "Redaction"]

MASK = "\u2022" * 6  # bullets: no Markdown meaning, plainly hidden

# Local part and domain per RFC 5322's common subset (https://www.rfc-editor.org/rfc/rfc5322#section-3.4.1).
# Bounded, and starting only where a run of such characters starts: unanchored, a long
# word cost quadratic time (a 32 K run of letters took a second).
_EMAIL = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
)
# Keys by the shapes providers give them: OpenAI/Anthropic/OpenRouter `sk-...`, Google
# `AIza...`, GitHub `ghp_`/`github_pat_`, Slack `xox?-`, Hugging Face `hf_`, AWS `AKIA...`.
_API_KEY = (
    r"\b(?:sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{35}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16})(?![A-Za-z0-9_-])"
)
# A host name ends in a known top-level domain (or is an IPv4 address): `file.py` and
# `np.array` stay readable. Anchored at the start of a run and bounded, like `_EMAIL`. https://www.rfc-editor.org/rfc/rfc1123#page-13
_HOST = (
    r"(?<![A-Za-z0-9.-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"(?:com|net|org|io|dev|ai|app|cloud|internal|intranet|local|lan|corp|home|"
    r"co|uk|de|fr|eu|us)\b(?![.-]?[A-Za-z0-9])"
    r"|(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
)
PRESETS = {"email": _EMAIL, "api_key": _API_KEY, "host": _HOST}

# Text without whitespace held back at most: a longer "word" is masked and shown but for
# its last `_KEEP` characters, which may still be the start of a match.
_HOLD = 4096
_KEEP = 256
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Redaction:
    """The patterns to mask. Falsy when there are none (then nothing is wrapped)."""

    pattern: re.Pattern[str] | None = None

    @classmethod
    def of(cls, patterns: Iterable[str | re.Pattern[str]] | bool | None) -> Redaction:
        """From `redact=`: preset names, regular expressions, True (every preset)."""
        if patterns is True:
            patterns = list(PRESETS)
        if not patterns:
            return cls()
        sources = []
        for pattern in patterns:
            if isinstance(pattern, re.Pattern):
                sources.append(pattern.pattern)
            elif isinstance(pattern, str) and pattern in PRESETS:
                sources.append(PRESETS[pattern])
            elif isinstance(pattern, str) and pattern:
                re.compile(pattern)  # a bad pattern is an error here, not at the first answer
                sources.append(pattern)
            else:
                raise ValueError(f"redact takes preset names or regular expressions: {pattern!r}")
        # Presets first as given; one alternation, so overlapping matches take the first.
        return cls(re.compile("|".join(f"(?:{source})" for source in sources)))

    def __bool__(self) -> bool:
        return self.pattern is not None

    def __call__(self, text: str) -> str:
        """`text` with every match masked."""
        return text if self.pattern is None else self.pattern.sub(MASK, text)

    def stream(self, inner: MarkdownStream) -> MarkdownStream:
        """`inner`, masking what it is given when there are patterns."""
        return RedactedStream(inner, self) if self else inner


class RedactedStream(MarkdownStream):
    """A `MarkdownStream` whose rendered output has every match masked.

    Text is held back from its last whitespace on, since the next piece may complete a
    match (an e-mail address arrives in tokens); `finish` releases the rest. `text` is
    the answer as the model said it (the conversation's history).
    """

    def __init__(self, inner: MarkdownStream, redaction: Redaction) -> None:
        self._inner = inner
        self._redaction = redaction
        self._said: list[str] = []
        self._hold = ""

    @property
    def text(self) -> str:
        return "".join(self._said)

    @property
    def html(self) -> str:
        return self._inner.html

    @property
    def shown(self) -> tuple[str, str]:
        return self._inner.shown

    def append(self, delta: str) -> list[Patch]:
        self._said.append(delta)
        text = self._hold + delta
        after = max(0, len(self._hold) - 1)  # the held text has no whitespace
        space = max((match.end() for match in _SPACE.finditer(text, after)), default=0)
        if not space and len(text) > _HOLD:
            space = len(text) - _KEEP
        ready, self._hold = text[:space], text[space:]
        return self._inner.append(self._redaction(ready)) if ready else []

    def finish(self) -> list[Patch]:
        rest, self._hold = self._hold, ""
        patches = self._inner.append(self._redaction(rest)) if rest else []
        return patches + self._inner.finish()
