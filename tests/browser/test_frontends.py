"""The same chat in every front end: JupyterLab, Notebook 7, Voila and marimo.

Each test runs once per host (the `host` fixture), each host a real server started
by the tests, driven by headless Chromium. The kernel talks to the embedded demo
server. Screenshots of each front end go to test-artifacts/.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser

ANSWER_DONE = 90_000

# Page scripts take the chat's root element (marimo keeps it in a shadow root, which
# `document.querySelector` does not enter; playwright's locators do).
BODY_LENGTH = """(chat) => {
  const bodies = chat.querySelectorAll('.streamchat-assistant .streamchat-body');
  const body = bodies[bodies.length - 1];
  if (!body) return 0;
  let extra = 0;
  for (const b of body.querySelectorAll('.streamchat-copy')) extra += b.textContent.length;
  return body.textContent.length - extra;
}"""


def the_chat(page: Any) -> Any:
    return page.locator(".streamchat").last.element_handle()


def chat_source(speed: float) -> str:
    return (
        "from streamchat import StreamChat\n"
        f"chat = StreamChat(speed={speed}, prompts=['Why stream LLM answers?'])\n"
        "chat"
    )


def ask(page: Any, prompt: str) -> None:
    box = page.locator("textarea.streamchat-input").last
    box.fill(prompt)
    box.press("Enter")


def wait_status(page: Any, status: str, timeout: float = ANSWER_DONE) -> None:
    page.wait_for_selector(f'.streamchat[data-status="{status}"]', timeout=timeout)


def shoot(page: Any, host: Any, name: str) -> None:
    page.locator(host.output).last.screenshot(path=str(ARTIFACTS / f"{host.name}-{name}.png"))


def test_the_chat_streams(page: Any, host: Any) -> None:
    host.open_chat(page, "streams", chat_source(speed=300))
    page.locator(".streamchat-prompt", has_text="Why stream LLM answers?").click()
    page.wait_for_function(
        f"(chat) => ({BODY_LENGTH})(chat) > 20", arg=the_chat(page), timeout=ANSWER_DONE
    )
    assert page.locator(".streamchat-cursor").count() == 1
    wait_status(page, "done")
    body = page.locator(".streamchat-assistant .streamchat-body").last
    assert body.locator("h2").inner_text().startswith("Why stream LLM answers?")
    assert body.locator("ol > li").count() == 3
    assert page.locator(".streamchat-cursor").count() == 0
    shoot(page, host, "done")
    page.console.check()
