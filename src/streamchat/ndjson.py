"""A sans-I/O splitter for newline-delimited JSON (Ollama's streaming format): bytes in, lines out.

Only the framing is done here; each line goes to a provider parser as text. NDJSON
(https://github.com/ndjson/ndjson-spec#32-parsing) has one JSON text per line, lines
ending in LF or CRLF; a bare CR is accepted too, as in event streams, so a proxy that
rewrites line ends cannot merge two lines. Decoding is the same incremental UTF-8 as for
event streams (`FrameSplitter`): a character split across chunks arrives whole, invalid
bytes become U+FFFD.
"""

from __future__ import annotations

from .sse import FrameSplitter

__all__ = ["NDJSONDecoder"]

# A line of only JSON whitespace (RFC 8259 section 2, minus the line ends) is blank.
_JSON_SPACE = " \t"


class NDJSONDecoder(FrameSplitter[str]):
    """Feed it the body's bytes as they arrive; it returns the complete, non-blank lines.

    https://github.com/ndjson/ndjson-spec#32-parsing: "The parser MAY silently ignore
    empty lines", and servers send them as keep-alives.
    """

    separator = "\n"

    def end(self) -> list[str]:
        """The body ended: return the last line if it lacked a newline (allowed in NDJSON)."""
        return self._frames([self._take_rest()])

    def _frames(self, frames: list[str]) -> list[str]:
        return [line for line in frames if line.strip(_JSON_SPACE)]
