"""A replayed chat in JupyterLab: recorded in the kernel, its server stopped, replayed."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Jupyter
from .test_widget_browser import ask, open_and_run, shoot, wait_status

pytestmark = pytest.mark.browser


RECORD_AND_REPLAY = (
    "from streamchat.server import DemoServer\n"
    "from streamchat.widget import StreamChat\n"
    "server = DemoServer(rate=600).start()\n"
    "live = StreamChat(server.url, speed=0)\n"
    "live.ask('Solve this puzzle'); live.wait(60)\n"
    "live.save('demo.tape.json')\n"
    "server.stop()\n"
    "live.close()\n"
    "chat = StreamChat.replay('demo.tape.json')\n"
    "chat"
)


def test_a_replay_answers_its_preset_prompt_and_says_it_is_a_replay(
    page: Any, lab: Jupyter
) -> None:
    open_and_run(page, lab, "replay.ipynb", [RECORD_AND_REPLAY])
    preset = page.locator(".streamchat-prompts button").last
    assert preset.inner_text() == "Solve this puzzle"
    preset.click()
    wait_status(page, "done")
    answer = page.locator(".streamchat-assistant").last
    assert "9 sheep are left" in answer.locator(".streamchat-body").inner_text()
    assert "17 - 9 = 8" in answer.text_content(), "the reasoning is replayed too (folded)"
    footer = answer.locator(".streamchat-footer").inner_text()
    assert "Replayed from a tape recorded" in footer and "first token" in footer
    shoot(page, "lab-replay.png")
    ask(page, "Something never recorded")
    page.wait_for_function(
        "() => document.querySelectorAll('.streamchat-assistant[data-status=\"done\"]')"
        ".length === 2"
    )
    last = page.locator(".streamchat-assistant .streamchat-body").last.inner_text()
    assert "not on the tape" in last and "Solve this puzzle" in last
    page.console.check()
