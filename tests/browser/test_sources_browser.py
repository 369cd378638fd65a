"""A chat whose answers come from a Python generator, as a person sees it in JupyterLab."""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import Jupyter
from .frontends import ask, wait_status
from .test_widget_browser import open_and_run, shoot, wait_length

pytestmark = pytest.mark.browser

GENERATOR_CELL = """\
import pathlib
import time

from streamchat.widget import StreamChat

closed = pathlib.Path({marker!r})


def answer(messages):
    prompt = messages[-1]["content"]
    try:
        if prompt == "fail":
            yield "**Partial** answer"
            raise RuntimeError("the model crashed")
        for n in range(10_000):
            time.sleep(0.02)
            yield f"word{{n}} "
    finally:
        closed.write_text(prompt)


chat = StreamChat(answer, speed=0)
chat"""


def test_a_generator_streams_stops_and_shows_its_exception(page: Any, lab: Jupyter) -> None:
    marker = lab.root / "generator-closed.txt"
    marker.unlink(missing_ok=True)
    open_and_run(page, lab, "generator.ipynb", [GENERATOR_CELL.format(marker=str(marker))])
    ask(page, "long")
    wait_length(page, 40)
    page.locator(".streamchat-stop").click()
    wait_status(page, "stopped", timeout=10_000)
    deadline = time.monotonic() + 5
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "long", "Stop did not close the generator"
    body = page.locator(".streamchat-assistant .streamchat-body").last.inner_text()
    assert body.startswith("word0 word1 ")

    ask(page, "fail")
    wait_status(page, "error", timeout=30_000)
    answer = page.locator(".streamchat-assistant").last
    assert answer.locator(".streamchat-body strong").inner_text() == "Partial"
    assert "RuntimeError: the model crashed" in answer.locator(".streamchat-error").inner_text()
    shoot(page, "lab-generator-error.png")
    page.console.check()
