"""Layering: the sans-I/O stages import nothing that does I/O, draws a terminal or renders.

Each module is imported in a fresh interpreter (a module another test loaded would
hide the import) under `python -X importtime`, the issue's own probe, which names every
module the import loads, even one that is later dropped from `sys.modules`.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

# The network and its event loops, terminals, notebooks and servers: the edges' business.
# Stdlib modules are named too: a stage that pulls in asyncio or ssl has an edge inside it.
IO = (
    "httpx",
    "httpcore",
    "h11",
    "h2",
    "anyio",
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "rich",
    "anywidget",
    "ipywidgets",
    "traitlets",
    "comm",
    "IPython",
    "ipykernel",
    "uvicorn",
    "starlette",
    # The package's own edges.
    "streamchat.transport",
    "streamchat._network",
    "streamchat._runner",
    "streamchat._sources",
    "streamchat._kernel",
    "streamchat._terminal",
    "streamchat.widget",
    "streamchat.server",
    "streamchat.cli",
    "streamchat.doctor",
)
# The Markdown, highlighting, math and sanitizing engines: the renderer's, nobody else's.
RENDERING = (
    "markdown_it",
    "markdown",
    "mistune",
    "mdurl",
    "pygments",
    "latex2mathml",
    "nh3",
    "streamchat.render",
    "streamchat._math",
)

STAGES = (
    "streamchat.sse",
    "streamchat.ndjson",
    "streamchat.deltas",
    "streamchat._framing",
    "streamchat.providers",
    "streamchat.typewriter",
    "streamchat._secrets",
    "streamchat._explain",
    "streamchat._conversation",
)
RENDERERS = ("streamchat.render", "streamchat._math")

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", re.MULTILINE)


def _loaded_after(statement: str) -> set[str]:
    """Every module `statement` loads in a fresh interpreter: what `-X importtime` saw
    loading, and what `sys.modules` holds at the end (importtime does not log a module
    that `importlib.import_module` loads itself, as the package's lazy names do)."""
    probe = f"{statement}\nimport sys\nprint(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    timed = {name for _, name in _IMPORTED.findall(result.stderr)}
    return timed | set(result.stdout.split())


def _within(loaded: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(name for name in loaded if any(_is_in(name, package) for package in banned))


def _is_in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("module", STAGES)
def test_a_sans_io_stage_loads_no_client_terminal_or_renderer(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded  # the probe saw the import it claims to have made
    assert _within(loaded, IO + RENDERING) == []


@pytest.mark.parametrize("module", RENDERERS)
def test_the_renderer_loads_its_engines_and_nothing_that_does_io(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert _within(loaded, IO) == []


def test_the_probe_sees_an_edge() -> None:
    """The check can fail: the transport is an edge, and the probe says so."""
    loaded = _loaded_after("import streamchat.transport")
    assert {"httpx", "asyncio", "ssl"} <= set(_within(loaded, IO))


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


# The CLI is an edge too, but a light one: `streamchat --help` must not pay for the notebook.
NOTEBOOK_STACK = ("anywidget", "ipywidgets", "traitlets", "streamchat.widget")
HEAVY = (*NOTEBOOK_STACK, "uvicorn", "streamchat.server", "streamchat.render", "streamchat.doctor")


def test_the_cli_starts_without_the_notebook_stack() -> None:
    """`streamchat --help` must not pay for anywidget, ipywidgets, uvicorn or the renderer."""
    loaded = _loaded_after("import streamchat.cli")
    assert "streamchat.cli" in loaded  # the probe imported what it claims to
    assert _within(loaded, HEAVY) == []


def test_the_lazy_exports_still_import() -> None:
    """PEP 562 keeps `from streamchat import StreamChat` and `import *` working."""
    loaded = _loaded_after(
        "import streamchat\n"
        "from streamchat import StreamChat, MarkdownStream, DemoServer, diagnose\n"
        "namespace = {}\n"
        "exec('from streamchat import *', namespace)\n"
        "assert set(streamchat.__all__) <= set(namespace), streamchat.__all__\n"
        "assert set(streamchat.__all__) <= set(dir(streamchat))\n"
        "assert namespace['StreamChat'] is StreamChat"
    )
    assert all(name in loaded for name in HEAVY)
