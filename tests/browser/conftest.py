"""The browser tests' fixtures: one headless Chromium (Python playwright), a page per test,
and the front ends of frontends.py (JupyterLab, Notebook 7, Voila, marimo), each started
once per session on first use.

Each server runs from this venv on a free loopback port with a random token and
its own config, runtime and settings directories, so the person's own Jupyter
setup cannot change what the tests see. Synchronisation is by polling (the
server's /api endpoint, playwright's wait_for_*), never by fixed sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .frontends import HOSTS, ROOT, VENV_BIN, JupyterHost, missing
from chromium import CHROMIUM, CHROMIUM_ARGS
from conftest import require

__all__ = ["ARTIFACTS", "ROOT", "VENV_BIN", "Jupyter"]

ARTIFACTS = ROOT / "test-artifacts"
# What the `lab` fixture (and test_widget_browser's `notebook7`) give: a JupyterLab or a
# Notebook 7 server, the same ones the `hosts` fixture starts, once per session.
Jupyter = JupyterHost


@pytest.fixture
def lab(hosts: Callable[[str], Any]) -> Iterator[Jupyter]:
    """The session's JupyterLab; the kernels a test started are shut down after it."""
    jupyter = hosts("lab")
    yield jupyter
    jupyter.after_test()


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
    running: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in running:
            problem = missing(name)
            require(problem is None, problem or "")
            running[name] = HOSTS[name](tmp_path_factory.mktemp(f"host-{name}"))
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
