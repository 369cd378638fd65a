"""The same chat in every front end: JupyterLab, Notebook 7, Voila and marimo.

Each test runs once per host (the `host` fixture), each host a real server started
by the tests, driven by headless Chromium. The kernel talks to the embedded demo
server. Screenshots of each front end go to test-artifacts/.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from .conftest import ARTIFACTS
from .frontends import ANSWER_DONE, ask, rate, wait_status

pytestmark = pytest.mark.browser

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


# Sample BODY_LENGTH every ~20 ms for `duration` ms; optionally click `click` first.
SAMPLE = (
    """async ([chat, duration, click]) => {
  const length = """
    + BODY_LENGTH
    + """;
  const samples = [];
  let clicked = null;
  if (click) { chat.querySelector(click).click(); clicked = performance.now(); }
  const end = performance.now() + duration;
  while (performance.now() < end) {
    samples.push([performance.now(), length(chat)]);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {samples, clicked};
}"""
)


def sample(page: Any, duration: int, click: str | None = None) -> dict[str, Any]:
    return page.evaluate(SAMPLE, [the_chat(page), duration, click])


def wait_length(page: Any, at_least: int) -> None:
    page.wait_for_function(
        f"(chat) => ({BODY_LENGTH})(chat) >= {at_least}", arg=the_chat(page), timeout=ANSWER_DONE
    )


def drag_slider(page: Any, name: str, value: float) -> None:
    """Move an in-widget range input to `value`, as a drag does (input events)."""
    slider = page.locator(f".streamchat-{name} input[type=range]")
    slider.evaluate(
        """(input, value) => {
          input.value = String(value);
          input.dispatchEvent(new Event('input', {bubbles: true}));
          input.dispatchEvent(new Event('change', {bubbles: true}));
        }""",
        value,
    )
    page.locator(f".streamchat-{name} output").filter(has_text=f"{value:g}").wait_for()


def test_the_sliders_inside_the_widget_set_the_pace(page: Any, host: Any) -> None:
    host.open_chat(page, "pace", chat_source(speed=20))
    assert page.locator(".streamchat .streamchat-speed input[type=range]").count() == 1
    assert page.locator(".streamchat .streamchat-step input[type=range]").count() == 1
    ask(page, "Speed test")
    wait_length(page, 10)
    slow = sample(page, 2000)["samples"]
    drag_slider(page, "speed", 300)
    wait_length(page, slow[-1][1] + 40)  # the new pace has taken over
    fast = sample(page, 1500)["samples"]
    slow_rate, fast_rate = rate(slow), rate(fast)
    print(f"{host.name}: slider 20 -> {slow_rate:.0f} chars/s, slider 300 -> {fast_rate:.0f}")
    assert 10 <= slow_rate <= 30
    assert fast_rate > 4 * slow_rate
    # Slow again, so the answer is still typing when Stop is clicked (at 300 chars/s the
    # rest of it takes about 2 s, less than a screenshot on a loaded machine).
    drag_slider(page, "speed", 20)
    shoot(page, host, "pace")
    page.locator(".streamchat-stop").click()
    wait_status(page, "stopped", timeout=20_000)
    page.console.check()


def test_shift_enter_makes_a_newline_and_runs_no_cell(page: Any, host: Any) -> None:
    host.open_chat(page, "keys", chat_source(speed=0))
    cells = host.cell_count(page)
    shown = the_chat(page)
    box = page.locator("textarea.streamchat-input")
    box.click()
    page.keyboard.type("line one abddmx")  # command-mode shortcuts in Jupyter: must type
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    page.keyboard.press("Escape")  # "command mode" in Jupyter
    page.keyboard.type("x")
    assert box.input_value() == "line one abddmx\nline twox"
    assert host.cell_count(page) == cells
    assert page.locator(".streamchat-user").count() == 0
    assert shown.evaluate("(chat) => chat.isConnected"), "no key re-ran the cell"
    page.keyboard.press("Enter")
    wait_status(page, "done")
    user = page.locator(".streamchat-user .streamchat-bubble").last
    assert user.inner_text() == "line one abddmx\nline twox"
    page.console.check()


def test_lists_headings_and_code_keep_their_look(page: Any, host: Any) -> None:
    """Host CSS resets (marimo's strips list markers and heading weight) stop at the widget."""
    host.open_chat(page, "look", chat_source(speed=0))
    ask(page, "Show me what you can render")
    wait_status(page, "done")
    look = page.locator(".streamchat-assistant .streamchat-body").last.evaluate(
        """(body) => {
          const style = (selector) => getComputedStyle(body.querySelector(selector));
          return {
            ul: style('ul > li').listStyleType,
            ol: style('ol > li').listStyleType,
            ulDisplay: style('ul > li').display,
            ulPadding: parseFloat(style('ul').paddingLeft),
            h2: Number(style('h2').fontWeight),
            h2Size: parseFloat(style('h2').fontSize),
            p: parseFloat(style('p').fontSize),
            code: style('.streamchat-code').backgroundColor,
            th: Number(style('th').fontWeight),
          };
        }"""
    )
    assert look["ul"] in ("disc", "circle", "square"), look
    assert look["ol"] == "decimal", look
    assert look["ulDisplay"] == "list-item" and look["ulPadding"] >= 16, look
    assert look["h2"] >= 600 and look["h2Size"] > look["p"], look
    assert look["code"] not in ("rgba(0, 0, 0, 0)", "transparent"), look
    assert look["th"] >= 600, look
    page.set_viewport_size({"width": 1280, "height": 2400})
    page.locator(".streamchat-log").evaluate("(log) => { log.style.maxHeight = 'none'; }")
    shoot(page, host, "look")
    page.console.check()


def test_stop_halts_typing_at_once(page: Any, host: Any) -> None:
    host.open_chat(page, "stop", chat_source(speed=40))
    ask(page, "Stop test")
    wait_length(page, 30)
    result = sample(page, 1500, ".streamchat-stop")
    clicked, samples = result["clicked"], result["samples"]
    changes = [t for (_, before), (t, n) in pairwise(samples) if n != before]
    latency = (changes[-1] - clicked) / 1000 if changes else 0.0
    print(f"{host.name}: stop latency {latency * 1000:.0f} ms")
    assert latency < 0.5
    wait_status(page, "stopped", timeout=20_000)
    assert page.locator(".streamchat-cursor").count() == 0
    assert page.locator(".streamchat-assistant .streamchat-retry:visible").count() == 1
    shoot(page, host, "stopped")
    page.console.check()
