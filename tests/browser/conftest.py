"""Real JupyterLab / Notebook 7 servers driven by headless Chromium (Python playwright).

Each server runs from this venv on a free loopback port with a random token and
its own config, runtime and settings directories, so the person's own Jupyter
setup cannot change what the tests see. Synchronisation is by polling (the
server's /api endpoint, playwright's wait_for_*), never by fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chromium import CHROMIUM, CHROMIUM_ARGS
from conftest import require
from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Jupyter:
    """One running Jupyter server: where it listens and where its notebooks live."""

    kind: str  # "lab" or "notebook"
    base: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def notebook_url(self, name: str) -> str:
        if self.kind == "lab":
            # `reset`: a fresh workspace, not the tabs an earlier test left open.
            return self.url(f"lab/tree/{name}") + "&reset"
        return self.url(f"notebooks/{name}")

    def shutdown_kernels(self) -> None:
        """End every session, so kernels of earlier tests do not pile up on 2 cores."""
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.base}/api/sessions", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            delete = urllib.request.Request(
                f"{self.base}/api/sessions/{session['id']}", headers=headers, method="DELETE"
            )
            urllib.request.urlopen(delete, timeout=30).close()

    def write_notebook(self, name: str, cells: list[str]) -> str:
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell{index}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for index, source in enumerate(cells)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (self.root / name).write_text(json.dumps(notebook), encoding="utf-8")
        return self.notebook_url(name)


def _settings(directory: Path) -> None:
    """JupyterLab user settings: no news prompt, no update checks (no network here)."""
    notification = directory / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def _wait_for_api(jupyter: Jupyter, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if jupyter.process.poll() is not None:
            raise RuntimeError(f"jupyter {jupyter.kind} exited:\n{jupyter.log.read_text()}")
        try:
            with urllib.request.urlopen(jupyter.url("api/status"), timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # polling interval while the server boots
    raise RuntimeError(f"jupyter {jupyter.kind} did not answer in {timeout} s")


def _start(kind: str, tmp: Path) -> Jupyter:
    executable = VENV_BIN / "jupyter"
    require(executable.exists(), "jupyter is not installed in the venv")
    root = tmp / "notebooks"
    root.mkdir()
    settings = tmp / "settings"
    _settings(settings)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "PYTHONPATH": str(ROOT / "src"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    token = secrets.token_hex(16)
    port = free_port()
    log = tmp / f"{kind}.log"
    process = subprocess.Popen(
        [
            str(executable),
            kind,
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            f"--notebook-dir={root}",
            "--ServerApp.open_browser=False",
        ],
        cwd=root,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    jupyter = Jupyter(kind, f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        _wait_for_api(jupyter)
    except BaseException:
        process.kill()
        raise
    return jupyter


@pytest.fixture(scope="session")
def jupyter_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Jupyter]]:
    """Start each kind of server once per session, on first use."""
    running: dict[str, Jupyter] = {}

    def get(kind: str) -> Jupyter:
        if kind not in running:
            running[kind] = _start(kind, tmp_path_factory.mktemp(kind))
        return running[kind]

    yield get
    for jupyter in running.values():
        jupyter.process.terminate()
        try:
            jupyter.process.wait(15)
        except subprocess.TimeoutExpired:
            jupyter.process.kill()


@pytest.fixture
def lab(jupyter_servers: Callable[[str], Jupyter]) -> Iterator[Jupyter]:
    """The session's JupyterLab; the kernels a test started are shut down after it."""
    jupyter = jupyter_servers("lab")
    yield jupyter
    jupyter.shutdown_kernels()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for this package's tests, stopped when they end.

    Playwright's sync API keeps an event loop running in the main thread while it is
    open, which would break every later test that calls `asyncio.run`.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed")
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed (apt install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Console:
    """Console errors and uncaught page errors; a test fails if any appear."""

    errors: list[str] = field(default_factory=list)
    # (substrings that all appear in the message or its stack, why it is not ours), for
    # known upstream bugs only.
    known: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def record(self, text: str) -> None:
        if not any(all(part in text for part in parts) for parts, _why in self.known):
            self.errors.append(text)

    def check(self) -> None:
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, device_scale_factor=1)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    console = Console()
    page.on(
        "console",
        lambda message: (
            console.record(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: console.record(f"pageerror: {error}\n{error.stack}"))
    page.console = console  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield page
        if request.node.stash.get(FAILED, False):
            page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"))
            if console.errors:
                print("browser console errors:", *console.errors, sep="\n")
    finally:
        context.close()


# -- every front end (frontends.py) ------------------------------------------------


@pytest.fixture(scope="session")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Any]]:
    """JupyterLab, Notebook 7, Voila and marimo servers, each started once on first use."""
    from .frontends import start_host

    running: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in running:
            running[name] = start_host(name, tmp_path_factory.mktemp(f"host-{name}"))
        return running[name]

    yield get
    for host in running.values():
        host.stop()


@pytest.fixture(params=["lab", "notebook", "voila", "marimo"])
def host(request: pytest.FixtureRequest, hosts: Callable[[str], Any], page: Any) -> Iterator[Any]:
    """Each front end in turn, with the page the test drives."""
    chosen = hosts(request.param)
    offline(page)
    if chosen.name == "notebook":
        page.console.known.append(NOTEBOOK7_SCHEMA_BUG)
    yield chosen
    chosen.after_test()


def offline(page: Any) -> None:
    """Off-machine requests get an empty answer: this machine has no network, and page
    templates link files from CDNs (Voila's Font Awesome, nbconvert's MathJax). Failed
    requests are named, as the console says only "Failed to load resource"."""
    page.on("requestfailed", lambda request: _failed(page, request))
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), _empty_answer)


def _failed(page: Any, request: Any) -> None:
    if request.failure != "net::ERR_ABORTED":  # not a request cut short by leaving the page
        page.console.record(f"request failed: {request.url} ({request.failure})")


def _empty_answer(route: Any) -> None:
    css = route.request.url.split("?")[0].endswith(".css")
    route.fulfill(status=200, body="", content_type="text/css" if css else "text/plain")


NOTEBOOK7_SCHEMA_BUG = (
    ("(reading 'schema')", "/static/notebook/notebook_core."),
    # Notebook 7.6's bundled shortcuts extension reads the schema of a plugin its
    # settings registry does not hold, on opening any notebook (a bare "1+1" one too).
    "upstream Notebook 7 bug, not the widget",
)
