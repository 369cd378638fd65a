"""streamchat: streamed LLM output as a first-class citizen of notebooks.

The pipeline's stages are importable on their own (`streamchat.sse`, `.providers`,
`.typewriter`, `.render`, ...); the names below are the ones most code needs.
Every one loads on first use (PEP 562 module `__getattr__`), so importing a stage
pays for that stage only: `import streamchat.sse` (a sans-I/O decoder) loads
neither httpx nor rich, `streamchat.cli` starts without the notebook stack
(anywidget, ipywidgets, traitlets), the renderer or the demo server, and
`from streamchat import StreamChat` works as ever.
https://peps.python.org/pep-0562/
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._sources import source_deltas
    from ._tape import Tape, TapeError
    from .deltas import (
        Delta,
        Done,
        ReasoningDelta,
        StreamError,
        TextDelta,
        ToolCall,
        ToolCallDelta,
        Usage,
        merge_tool_calls,
    )
    from .doctor import Diagnosis, diagnose
    from .ndjson import NDJSONDecoder
    from .providers import ChatRequest, build_request, detect_provider, make_parser
    from .race import Lane, Race
    from .render import MarkdownStream, Patch, render_markdown
    from .server import DemoServer, demo_server
    from .sse import EventStreamDecoder, ServerSentEvent
    from .transport import Limits, Retries, Timeouts, stream_deltas
    from .typewriter import Typewriter
    from .widget import StreamChat

__all__ = [
    "ChatRequest",
    "Delta",
    "DemoServer",
    "Diagnosis",
    "Done",
    "EventStreamDecoder",
    "Lane",
    "Limits",
    "MarkdownStream",
    "NDJSONDecoder",
    "Patch",
    "Race",
    "ReasoningDelta",
    "Retries",
    "ServerSentEvent",
    "StreamChat",
    "StreamError",
    "Tape",
    "TapeError",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "Typewriter",
    "Usage",
    "build_request",
    "demo_server",
    "detect_provider",
    "diagnose",
    "make_parser",
    "merge_tool_calls",
    "render_markdown",
    "source_deltas",
    "stream_deltas",
]

# Where each name lives: the imports above, which only type checkers read, as data.
_MODULES: dict[str, tuple[str, ...]] = {
    "_sources": ("source_deltas",),
    "_tape": ("Tape", "TapeError"),
    "deltas": (
        "Delta",
        "Done",
        "ReasoningDelta",
        "StreamError",
        "TextDelta",
        "ToolCall",
        "ToolCallDelta",
        "Usage",
        "merge_tool_calls",
    ),
    "doctor": ("Diagnosis", "diagnose"),
    "ndjson": ("NDJSONDecoder",),
    "providers": ("ChatRequest", "build_request", "detect_provider", "make_parser"),
    "race": ("Lane", "Race"),
    "render": ("MarkdownStream", "Patch", "render_markdown"),
    "server": ("DemoServer", "demo_server"),
    "sse": ("EventStreamDecoder", "ServerSentEvent"),
    "transport": ("Limits", "Retries", "Timeouts", "stream_deltas"),
    "typewriter": ("Typewriter",),
    "widget": ("StreamChat",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'streamchat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
