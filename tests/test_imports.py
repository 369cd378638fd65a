"""Layering: the sans-I/O stages import nothing that does I/O, draws a terminal or renders.

Each module is imported in a fresh interpreter (a module another test loaded would
hide the import), then the interpreter lists what it loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SANS_IO = (
    "streamchat.sse",
    "streamchat.ndjson",
    "streamchat.deltas",
    "streamchat._framing",
    "streamchat.providers",
    "streamchat.typewriter",
)
# The HTTP client and its transport, the terminal toolkit, the Markdown engines,
# the notebook stack and the demo server.
HEAVY = (
    "httpx",
    "httpcore",
    "anyio",
    "rich",
    "markdown_it",
    "markdown",
    "pygments",
    "anywidget",
    "ipywidgets",
    "uvicorn",
)


def _loaded_after(statement: str) -> set[str]:
    probe = f"{statement}\nimport sys\nprint(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.mark.parametrize("module", SANS_IO)
def test_a_sans_io_stage_loads_no_client_terminal_or_renderer(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded  # the probe imported what it claims to
    assert sorted(name for name in loaded if name.partition(".")[0] in HEAVY) == []


def test_the_package_itself_loads_nothing_until_asked() -> None:
    """`import streamchat` is the package's names, resolved on first use (PEP 562)."""
    loaded = _loaded_after("import streamchat")
    assert sorted(name for name in loaded if name.startswith("streamchat.")) == []


def test_a_lazy_name_is_the_modules_own() -> None:
    loaded = _loaded_after(
        "import streamchat, streamchat.sse, streamchat.transport\n"
        "assert streamchat.EventStreamDecoder is streamchat.sse.EventStreamDecoder\n"
        "assert streamchat.stream_deltas is streamchat.transport.stream_deltas\n"
        "assert 'EventStreamDecoder' in dir(streamchat)"
    )
    assert "httpx" in loaded  # asking for the transport's name loads the transport
