"""Issue 24: the chat on stage, in JupyterLab, Voila (a natural presentation host),
Notebook 7 and marimo.

One real chat per host, streaming from a Python source with a three-prompt deck,
`pauses=True` and e-mail redaction, driven by the keys a presenter (or a clicker) uses.
Screenshots of the stage at 1280x800 and 1920x1080 go to test-artifacts/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ARTIFACTS, NOTEBOOK7_SCHEMA_BUG, offline
from .frontends import ANSWER_DONE, KERNEL_READY, LOAD, wait_status

pytestmark = pytest.mark.browser

MASK = "\u2022" * 6
DECK = ["What is streaming?", "Tell me more.", "And once more?"]
FIRST = (
    "Streaming shows an answer while the model writes it. "
    "Mail bob.smith@example.com for the slides.\n\n"
    "It starts at the first token, so nobody waits in silence.\n\n"
    "Run this:\n```python\nfor token in stream:\n    print(token)\n```\n\n"
    "| pace | feel |\n|---|---|\n| 180 wpm | a speaker |\n"
)
LONG = "word " * 400
SOURCE = """\
import json
from streamchat import StreamChat
ANSWERS = {answers!r}
def answer(messages):
    with open({log!r}, "a") as log:
        log.write(json.dumps(messages) + "\\n")
    return ANSWERS[messages[-1]["content"]]
chat = StreamChat(answer, prompts={deck!r}, speed=60, pauses=True, redact=["email"])
chat
"""

# Every animation frame, the visible text of the answer on stage and when (ms).
RECORD = """(chat) => {
  window.__frames = [];
  const tick = () => {
    const bodies = chat.querySelectorAll('.streamchat-stage-current .streamchat-body');
    const body = bodies[bodies.length - 1];
    window.__frames.push([performance.now(), body ? body.innerText : ""]);
    window.__recording = requestAnimationFrame(tick);
  };
  tick();
}"""
STOP_RECORDING = "() => { cancelAnimationFrame(window.__recording); return window.__frames; }"

GEOMETRY = """(chat) => {
  const rect = chat.getBoundingClientRect();
  const text = chat.querySelector('.streamchat-stage-current .streamchat-body p');
  return {
    left: rect.left, top: rect.top, width: rect.width, height: rect.height,
    innerWidth: window.innerWidth, innerHeight: window.innerHeight,
    font: parseFloat(getComputedStyle(text).fontSize),
    fullscreen: chat.getRootNode().fullscreenElement === chat,
  };
}"""

SHOWN = """(chat) => [...chat.querySelectorAll('.streamchat-turn')]
  .filter((turn) => turn.offsetParent !== null || turn.getClientRects().length)
  .map((turn) => turn.innerText)"""


def the_chat(page: Any) -> Any:
    return page.locator(".streamchat").last.element_handle()


def hold(frames: list[list[Any]], before: str) -> float:
    """How long (ms) the answer on stage showed exactly `before` (stripped) before growing."""
    start = None
    for at, text in frames:
        text = text.strip()
        if start is None and text == before:
            start = at
        elif start is not None and text != before:
            return at - start
    raise AssertionError(f"the answer never showed exactly {before[-40:]!r}")


def shots(page: Any, name: str) -> None:
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_function(
            "([chat, w]) => Math.abs(chat.getBoundingClientRect().width - w) < 2",
            arg=[the_chat(page), width],
        )
        page.screenshot(path=str(ARTIFACTS / f"stage-{name}-{width}x{height}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


@pytest.mark.parametrize("host_name", ["lab", "voila", "notebook", "marimo"])
def test_the_stage(page: Any, hosts: Any, host_name: str, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the page has it

    host = hosts(host_name)
    offline(page)
    if host_name == "notebook":
        page.console.known.append(NOTEBOOK7_SCHEMA_BUG)
    # In the Jupyter hosts the stage fills the window without the Fullscreen API (what it
    # does where that is not allowed, or after `chat.stage()`): no host box may hold it in.
    window_only = host_name in ("lab", "notebook")
    if window_only:
        page.add_init_script("delete Element.prototype.requestFullscreen")
    log = tmp_path / "asked.jsonl"
    answers = {DECK[0]: FIRST, DECK[1]: LONG, DECK[2]: LONG}
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        host.open_chat(
            page, f"stage_{host_name}", SOURCE.format(answers=answers, log=str(log), deck=DECK)
        )
        cells = host.cell_count(page)
        for _attempt in range(3):  # marimo may draw its output anew just after showing it
            page.locator(".streamchat-stage-button").last.click()
            try:
                page.wait_for_selector(".streamchat.streamchat-on-stage", timeout=10_000)
                break
            except PlaywrightTimeout:
                continue
        chat = page.locator(".streamchat.streamchat-on-stage").element_handle()
        assert page.locator(".streamchat-deck-position").inner_text() == "0 / 3"

        # Right arrow sends the deck's first prompt; the typing pauses for people.
        page.evaluate(RECORD, chat)
        page.keyboard.press("ArrowRight")
        wait_status(page, "done")
        frames = page.evaluate(STOP_RECORDING)
        paragraph = hold(
            frames,
            f"Streaming shows an answer while the model writes it. Mail {MASK} for the slides.",
        )
        code = hold(
            frames,
            FIRST.split("\n\nRun")[0].replace("bob.smith@example.com", MASK) + "\n\nRun this:",
        )
        assert paragraph >= 300, f"held {paragraph:.0f} ms at a paragraph end"
        assert code >= 300, f"held {code:.0f} ms before a code block"

        geometry = page.evaluate(GEOMETRY, chat)
        assert geometry["font"] >= 28, geometry
        assert (geometry["left"], geometry["top"]) == (0, 0), geometry
        assert geometry["width"] == geometry["innerWidth"], geometry
        assert geometry["height"] == geometry["innerHeight"], geometry
        assert geometry["fullscreen"] is not window_only, geometry
        print(f"stage ({host_name}): {geometry}")
        # A+ (the button) and A- (the key) move the scale, kept for the session.
        page.locator(".streamchat-stage-control", has_text="A+").click()
        assert page.evaluate(GEOMETRY, chat)["font"] > geometry["font"] * 1.05
        assert page.evaluate("() => sessionStorage.getItem('streamchat-stage-scale')") == "1.1"
        page.keyboard.press("-")
        assert page.evaluate(GEOMETRY, chat)["font"] == geometry["font"]
        shown = page.evaluate(SHOWN, chat)
        assert len(shown) == 2 and shown[0] == DECK[0], shown  # one exchange at a time
        assert MASK in shown[1] and "bob.smith" not in chat.inner_html()  # not the cell source
        assert page.locator(".streamchat-deck-position").inner_text() == "1 / 3"
        shots(page, host_name)

        # The second answer is long: Instant (key I) shows the rest within one frame.
        page.evaluate(RECORD, chat)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "() => /^(word ){5}/.test(window.__frames.at(-1)?.[1] ?? '')",  # typing the new one
            timeout=ANSWER_DONE,
        )
        page.keyboard.press("i")
        page.wait_for_function(
            f"() => window.__frames.at(-1)[1].trim().length === {len(LONG.strip())}",
            timeout=ANSWER_DONE,
        )
        frames = page.evaluate(STOP_RECORDING)
        lengths = [len(text.strip()) for _, text in frames]
        whole = len(LONG.strip())
        # All but the last word in one frame (the last word waits for the stream's end,
        # in case it is the start of something to mask), then the whole soon after.
        at = next(index for index, length in enumerate(lengths) if length >= whole - len(" word"))
        assert lengths[at - 1] < whole - 200, f"Instant typed the rest: {lengths[at - 5 : at + 1]}"
        print(
            "instant: frames",
            lengths[at - 3 : at + 1],
            "whole after",
            frames[lengths.index(whole)][0] - frames[at][0],
            "ms",
        )
        assert frames[lengths.index(whole)][0] - frames[at][0] < 1000
        wait_status(page, "done")

        # Left shows the previous answer again, Right comes back.
        page.keyboard.press("ArrowLeft")
        assert page.evaluate(SHOWN, chat)[0] == DECK[0]
        page.keyboard.press("ArrowRight")
        assert page.evaluate(SHOWN, chat)[0] == DECK[1]
        page.keyboard.press("b")
        assert page.locator(".streamchat-stage-blank").count() == 1
        page.keyboard.press("b")

        # The third prompt; Escape stops it, a second Escape leaves the stage.
        page.keyboard.press("ArrowRight")
        wait_status(page, "streaming")
        page.keyboard.press("Escape")
        page.wait_for_selector('.streamchat[data-status="stopped"]')
        assert page.locator(".streamchat.streamchat-on-stage").count() == 1
        page.keyboard.press("Escape")
        page.wait_for_selector(".streamchat:not(.streamchat-on-stage)")
        assert host.cell_count(page) == cells, "a stage key ran or added a cell"

        # What the model got, and the conversation the chat keeps: never masked.
        asked = [json.loads(line) for line in log.read_text().splitlines()]
        assert [messages[-1]["content"] for messages in asked] == DECK
        assert asked[1][-2] == {"role": "assistant", "content": FIRST}
        if host_name in ("lab", "notebook"):  # the saved notebook: its static copy and widget state
            page.keyboard.press("Control+s")
            saved = host.root / f"stage_{host_name}.ipynb"
            deadline = time.monotonic() + 30
            while MASK not in saved.read_text(encoding="utf-8") and time.monotonic() < deadline:
                page.wait_for_timeout(200)  # polling the file the server writes
            notebook = json.loads(saved.read_text(encoding="utf-8"))
            # The outputs (the static copy) and the widget state: not the cell's source.
            outputs = notebook["cells"][0]["outputs"]
            kept = json.dumps([outputs, notebook["metadata"]], ensure_ascii=False)
            assert any("text/html" in output.get("data", {}) for output in outputs)
            assert MASK in kept and "bob.smith" not in kept
        page.console.check()
    finally:
        host.after_test()


def test_chat_stage_from_python(page: Any, lab: Any) -> None:
    """`chat.stage()` in a later cell: no click, so no Fullscreen API; the window it is."""
    offline(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    source = "from streamchat import StreamChat\nchat = StreamChat(lambda m: 'Hi.')\nchat"
    page.goto(lab.write_notebook("stage_python.ipynb", [source, "chat.stage()"]))
    page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=LOAD)
    page.wait_for_function(KERNEL_READY, polling=50, timeout=LOAD)
    page.locator(".jp-Notebook .jp-CodeCell .cm-content").first.click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_selector(".streamchat textarea.streamchat-input", timeout=LOAD)
    page.keyboard.press("Shift+Enter")
    page.wait_for_selector(".streamchat.streamchat-on-stage", timeout=LOAD)
    rect = page.locator(".streamchat").last.bounding_box()
    assert rect == {"x": 0, "y": 0, "width": 1280, "height": 800}
    page.keyboard.press("Escape")
    page.wait_for_selector(".streamchat:not(.streamchat-on-stage)")
    page.console.check()
