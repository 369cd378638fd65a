"""streamchat: streamed LLM output as a first-class citizen of notebooks.

The pipeline's stages are importable on their own (`streamchat.sse`, `.providers`,
`.typewriter`, `.render`, ...); the names below are the ones most code needs.
The heavy ones load on first use (PEP 562 module `__getattr__`): `StreamChat` (the
notebook stack: anywidget, ipywidgets, traitlets), the doctor, the renderer (Markdown,
MathML, Pygments) and the demo server (uvicorn). So `streamchat.cli` and the
decoders start without them, while `from streamchat import StreamChat` works as ever.
https://peps.python.org/pep-0562/
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._sources import source_deltas
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
from .ndjson import NDJSONDecoder
from .providers import ChatRequest, build_request, detect_provider, make_parser
from .sse import EventStreamDecoder, ServerSentEvent
from .transport import Limits, Retries, Timeouts, stream_deltas
from .typewriter import Typewriter

if TYPE_CHECKING:
    from .doctor import Diagnosis, diagnose
    from .render import MarkdownStream, Patch, render_markdown
    from .server import DemoServer, demo_server
    from .widget import StreamChat

__all__ = [
    "ChatRequest",
    "Delta",
    "DemoServer",
    "Diagnosis",
    "Done",
    "EventStreamDecoder",
    "Limits",
    "MarkdownStream",
    "NDJSONDecoder",
    "Patch",
    "ReasoningDelta",
    "Retries",
    "ServerSentEvent",
    "StreamChat",
    "StreamError",
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

_LAZY = {
    "StreamChat": "widget",
    "diagnose": "doctor",
    "Diagnosis": "doctor",
    "MarkdownStream": "render",
    "Patch": "render",
    "render_markdown": "render",
    "DemoServer": "server",
    "demo_server": "server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # once loaded, a plain attribute
        return value
    raise AttributeError(f"module 'streamchat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
