"""Every host a notebook goes to, started for real: JupyterLab, Notebook 7, Voila, marimo.

Each `Host` knows how to put one cell of Python in front of a person and run it:
JupyterLab and Notebook 7 open a notebook and run its cell with Shift+Enter, Voila
renders a notebook as an app (it runs every cell on open), marimo runs an app file in
its editor (cells run on open). After `open_chat` the StreamChat the cell made is on
the page, its prompt box ready. Servers listen on loopback with their own token and
their own config and state directories; they start on first use, once per session.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOAD = 90_000  # ms: first open + kernel start on a loaded 2-core machine
ANSWER_DONE = 90_000  # ms: a whole answer typed out, on the same machine

# The indicator says "idle" before a kernel exists too: it must have been busy
# starting (initializing/connecting) and be idle again.
KERNEL_READY = """() => {
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!indicator) return false;
  if (indicator.dataset.status !== 'idle') window.__kernelStarting = true;
  return window.__kernelStarting === true && indicator.dataset.status === 'idle';
}"""


def ask(page: Any, prompt: str) -> None:
    """Type `prompt` into the last chat's prompt box and send it (Enter)."""
    box = page.locator("textarea.streamchat-input").last
    box.fill(prompt)
    box.press("Enter")


def wait_status(page: Any, status: str, timeout: float = ANSWER_DONE) -> None:
    """Until a chat's status (its data-status attribute) is `status`."""
    page.wait_for_selector(f'.streamchat[data-status="{status}"]', timeout=timeout)


def rate(samples: list[list[float]]) -> float:
    """Characters per second between the first and the last of `[ms, length]` samples."""
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return (n1 - n0) / ((t1 - t0) / 1000)


def isolated_env(tmp: Path) -> dict[str, str]:
    """This venv first on PATH, the checkout's sources importable, and no personal
    Jupyter or marimo configuration (each reads its own directories from here)."""
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "IPYTHONDIR": str(tmp / "ipython"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "PYTHONPATH": str(ROOT / "src"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def notebook_json(cells: list[str], kernel: str = "python3") -> str:
    """A notebook (nbformat 4.5) of code `cells` that opens with the kernel spec `kernel`."""
    shown = "Python 3" if kernel == "python3" else kernel
    return json.dumps(
        {
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
                "kernelspec": {"display_name": shown, "language": "python", "name": kernel}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


@dataclass
class Server:
    """A server process on a loopback port, with its log."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, argv: list[str], tmp: Path, ready_path: str, name: str) -> Server:
        port = free_port()
        log = tmp / f"{name}.log"
        process = subprocess.Popen(
            [arg.format(port=port) for arg in argv],
            cwd=tmp / "root",
            env=isolated_env(tmp),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = cls(f"http://127.0.0.1:{port}", process, log)
        try:
            server.wait_until_up(ready_path)
        except BaseException:
            process.kill()
            raise
        return server

    def wait_until_up(self, path: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)  # polling interval while the server boots
        raise RuntimeError(f"{self.log.name} did not answer in {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Host:
    """One front end. Subclasses say how to start it and how to run a cell in it."""

    name: ClassVar[str]
    # The element that holds one cell's output, for screenshots.
    output: ClassVar[str]

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        self.token = secrets.token_hex(16)
        self.server = self.launch()

    def launch(self) -> Server:
        raise NotImplementedError

    def open_chat(self, page: Any, name: str, source: str) -> None:
        """Open a document whose one cell is `source`, run it, wait for the chat."""
        raise NotImplementedError

    def after_test(self) -> None:
        """Free what a test left running (kernels), so they do not pile up on 2 cores."""

    def stop(self) -> None:
        self.server.stop()


class JupyterHost(Host):
    """JupyterLab or Notebook 7: a notebook opened in the editor, its cell run by Shift+Enter."""

    app: ClassVar[str]
    output = ".jp-OutputArea-output:has(.streamchat)"

    def launch(self) -> Server:
        settings = self.tmp / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        argv = [
            str(VENV_BIN / "jupyter"),
            self.app,
            "--no-browser",
            "--allow-root",
            "--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        return Server.start(argv, self.tmp, f"/api/status?token={self.token}", self.name)

    def url(self, path: str) -> str:
        return f"{self.server.base}/{path}?token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """A notebook of code `cells` in the server's root; its URL in this front end."""
        (self.root / name).write_text(notebook_json(cells), encoding="utf-8")
        return self.document_url(name)

    def open_chat(self, page: Any, name: str, source: str) -> None:
        page.goto(self.write_notebook(f"{name}.ipynb", [source]))
        page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=LOAD)
        page.wait_for_function(KERNEL_READY, polling=50, timeout=LOAD)
        page.locator(".jp-Notebook .jp-CodeCell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_selector(".streamchat textarea.streamchat-input", timeout=LOAD)

    def document_url(self, name: str) -> str:
        raise NotImplementedError

    def cell_count(self, page: Any) -> int:
        return page.locator(".jp-Notebook .jp-Cell").count()

    def after_test(self) -> None:
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.server.base}/api/sessions", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            delete = urllib.request.Request(
                f"{self.server.base}/api/sessions/{session['id']}", headers=headers, method="DELETE"
            )
            urllib.request.urlopen(delete, timeout=30).close()


class Lab(JupyterHost):
    name = "lab"
    app = "lab"

    def document_url(self, name: str) -> str:
        return self.url(f"lab/tree/{name}") + "&reset"  # a fresh workspace each time


class Notebook7(JupyterHost):
    name = "notebook"
    app = "notebook"

    def document_url(self, name: str) -> str:
        return self.url(f"notebooks/{name}")


class Voila(Host):
    """Voila renders a notebook as an app: it runs every cell on open and shows outputs."""

    name = "voila"
    output = ".jp-OutputArea-output:has(.streamchat)"

    def launch(self) -> Server:
        argv = [
            str(VENV_BIN / "voila"),
            "--no-browser",
            "--port={port}",
            "--Voila.ip=127.0.0.1",
            f"--token={self.token}",
            "--show_tracebacks=True",
            # Notebook 7's own JupyterLab extension is installed in this venv for the
            # Notebook 7 tests; it is not made to run inside Voila and fails to load there.
            "--VoilaConfiguration.extension_denylist=@jupyter-notebook/lab-extension",
            str(self.root),
        ]
        return Server.start(argv, self.tmp, f"/?token={self.token}", self.name)

    def open_chat(self, page: Any, name: str, source: str) -> None:
        (self.root / f"{name}.ipynb").write_text(notebook_json([source]), encoding="utf-8")
        page.goto(f"{self.server.base}/voila/render/{name}.ipynb?token={self.token}")
        page.wait_for_selector(".streamchat textarea.streamchat-input", timeout=LOAD)

    def cell_count(self, page: Any) -> int:
        return page.locator(".jp-OutputArea").count()


class Marimo(Host):
    """marimo's editor: an app file whose cell shows `mo.ui.anywidget(chat)`, run with its
    Run button. marimo puts each anywidget in a shadow root: tests find the chat with
    playwright locators (they pierce it) and run page scripts on that element."""

    name = "marimo"
    output = "[data-cell-name]:has(.streamchat), .marimo-cell:has(.streamchat)"

    def launch(self) -> Server:
        argv = [
            str(VENV_BIN / "marimo"),
            "edit",
            "--headless",
            "--host=127.0.0.1",
            "--port={port}",
            f"--token-password={self.token}",
            "--skip-update-check",
            "--no-sandbox",
            "--session-ttl=2",  # a closed page ends its kernel
            str(self.root),
        ]
        return Server.start(argv, self.tmp, "/health", self.name)

    def open_chat(self, page: Any, name: str, source: str) -> None:
        body = textwrap.indent(f"{source.rstrip()}\nwidget = mo.ui.anywidget(chat)\nwidget", "    ")
        app = (
            "import marimo\n\napp = marimo.App()\n\n\n"
            "@app.cell\ndef _():\n    import marimo as mo\n\n"
            f"{body}\n    return\n\n\n"
            'if __name__ == "__main__":\n    app.run()\n'
        )
        (self.root / f"{name}.py").write_text(app, encoding="utf-8")
        page.goto(f"{self.server.base}/?file={name}.py&access_token={self.token}")
        # A person opening a file runs it: its cells are stale until then.
        page.get_by_test_id("cell-editor").first.wait_for(timeout=LOAD)
        page.get_by_test_id("chrome-controls-bottom-right").get_by_test_id("run-button").click()
        page.wait_for_selector(".streamchat textarea.streamchat-input", timeout=LOAD)

    def cell_count(self, page: Any) -> int:
        return page.locator("[data-cell-id]").count()


HOSTS: dict[str, type[Host]] = {host.name: host for host in (Lab, Notebook7, Voila, Marimo)}


def missing(name: str) -> str | None:
    """Why the host `name` cannot start here, or None."""
    executable = {"lab": "jupyter", "notebook": "jupyter"}.get(name, name)
    if not (VENV_BIN / executable).exists():
        return f"{executable} is not installed in the venv"
    return None
