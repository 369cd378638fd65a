"""Every XSS payload, typed one character at a time, inserted into a real Chromium page.

Each step's patches are applied by the widget's own code (widget.js `LiveHtml`, which
edits text nodes and re-parses only the touched elements in place), then every element
is hovered, focused and clicked. `alert`, `confirm`, `prompt` and `print` are
trapped, and any dialog or page error fails the test. Plain http(s)/mailto links are
not followed (they cannot run script); every other link is left to do what it does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamchat.render import MarkdownStream

from chromium import CHROMIUM, CHROMIUM_ARGS, chromium_available
from conftest import require
from xss_payloads import PAYLOADS

ORIGIN = "http://streamchat.test/"
WIDGET = Path(__file__).parents[1] / "src" / "streamchat" / "static" / "widget.js"
PAGE = """<!doctype html><meta charset="utf-8"><body>
<div class="streamchat-body" id="body"></div>
<script type="module">
import { LiveHtml, applyOps } from "./widget.js";
window.__fired = [];
window.__differs = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => { window.__fired.push(name + ":" + args.join(",")); };
}
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a[href]");
  if (link && /^(https?:|mailto:)/i.test(link.href)) event.preventDefault();
}, true);
window.__play = (steps) => {
  const live = new LiveHtml(document.getElementById("body"));
  live.set("");
  let state = { frozen: "", tail: "" };
  for (const ops of steps) {
    live.apply(ops, state.frozen.length);
    state = applyOps(state, ops).state;
    // Built in place, the DOM is what a parse of the whole HTML makes.
    const whole = document.createElement("div");
    whole.className = "streamchat-body";
    whole.id = "body";
    whole.innerHTML = live.html;
    if (!live.root.isEqualNode(whole)) window.__differs.push(live.html);
    for (const element of document.querySelectorAll(".streamchat-body *")) {
      for (const type of ["mouseover", "mouseenter", "mousemove", "focus", "animationstart"]) {
        element.dispatchEvent(new Event(type, { bubbles: true }));
      }
      if (element.click) element.click();
    }
  }
  return document.querySelectorAll(".streamchat-body *").length;
};
</script>"""


@pytest.fixture(scope="module")
def page() -> Iterator:
    require(chromium_available(), "playwright and /usr/bin/chromium are needed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("dialog", lambda dialog: (page.errors.append("dialog"), dialog.dismiss()))
        page.on("popup", lambda popup: page.errors.append(f"popup {popup.url}"))
        # An http origin, so relative links resolve to http(s) like in the notebook page.
        page.route(ORIGIN, lambda route: route.fulfill(body=PAGE, content_type="text/html"))
        page.route(
            f"{ORIGIN}widget.js",
            lambda route: route.fulfill(body=WIDGET.read_text(), content_type="text/javascript"),
        )
        page.goto(ORIGIN)
        yield page
        browser.close()


def typed(payload: str, allow_images: bool) -> list[list[dict[str, object]]]:
    """The patches of `payload` fed one character at a time: one step per character."""
    stream = MarkdownStream(allow_images=allow_images)
    steps = [stream.append(char) for char in payload]
    steps.append(stream.finish())
    return [[dataclasses.asdict(patch) for patch in step] for step in steps if step]


@pytest.mark.browser
@pytest.mark.parametrize("allow_images", [False, True], ids=["images-off", "images-on"])
def test_no_payload_runs_script(page, allow_images: bool) -> None:
    inserted = 0
    for payload in PAYLOADS:
        inserted += page.evaluate("steps => window.__play(steps)", typed(payload, allow_images))
        fired = page.evaluate("window.__fired")
        assert fired == [], f"script ran for {payload!r}: {fired}"
        assert page.errors == [], f"{payload!r}: {page.errors}"
        assert page.evaluate("window.__differs") == [], f"{payload!r}: DOM built in place"
    assert len(PAYLOADS) >= 50
    assert inserted > len(PAYLOADS)  # the payloads really left elements to click


@pytest.mark.browser
def test_the_trap_works(page) -> None:
    """The check can fail: unsanitized HTML with a handler does fire."""
    page.evaluate(
        "steps => window.__play(steps)",
        [[{"op": "tail", "html": '<a href="javascript:alert(7)">x</a>'}]],
    )
    assert page.evaluate("window.__fired") == ["alert:7"]
    page.evaluate("window.__fired = []")
