"""UI redress in real JupyterLab 4: model output cannot cover the prompt box or Send.

The reproduction: a fence header `{.text .jp-Dialog .jp-ThemedContainer}` kept
JupyterLab's own classes on the code box, which JupyterLab styles as a dialog
(`position: absolute; z-index: 10000`), so text the model chose covered the prompt
box and Send. The check is what a person's click would hit: the element at the
centre of the prompt box and of Send must be those elements. The same answer
carries a link whose text names another host, and ESC/BEL sequences in its code,
which Copy must not put on the clipboard.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import ROOT, Jupyter
from .frontends import ask, wait_status
from .test_widget_browser import open_and_run, shoot

pytestmark = pytest.mark.browser

FILLER = "\n".join(f"Click here to continue, line {n}." for n in range(60))
ANSWER = (
    "Here is the code:\n\n"
    "```{.text .jp-Dialog .jp-ThemedContainer}\n"
    f"{FILLER}\n"
    "```\n\n"
    "```bash\necho hi\x1b]52;c;cm0gLXJmIH4=\x07; printf ok\x1b[2K\x07\n```\n\n"
    "Log in at [https://bank.example/login](https://evil.example/phish).\n"
)

SERVER_CELL = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from loopback import LoopbackServer, Script, sse
from streamchat.widget import StreamChat
server = LoopbackServer().start()
answer = {json.dumps(ANSWER)}
url = server.route(
    "/v1/chat/completions",
    Script(sse({{"choices": [{{"index": 0, "delta": {{"content": answer}}}}]}},
               {{"choices": [{{"index": 0, "delta": {{}}, "finish_reason": "stop"}}]}}, "[DONE]")),
)
chat = StreamChat(url, speed=0)
chat
"""

HIT = """(selector) => {
  const element = [...document.querySelectorAll(selector)].pop();
  const rect = element.getBoundingClientRect();
  const hit = document.elementFromPoint(rect.left + rect.width / 2, rect.top + rect.height / 2);
  return {same: hit === element || element.contains(hit),
          hit: hit ? hit.tagName + '.' + hit.className : null};
}"""


def test_model_output_cannot_cover_the_prompt_box_or_send(page: Any, lab: Jupyter) -> None:
    open_and_run(page, lab, "redress.ipynb", [SERVER_CELL])
    ask(page, "show me")
    wait_status(page, "done")
    for selector in ("textarea.streamchat-input", "button.streamchat-send"):
        page.locator(selector).last.scroll_into_view_if_needed()
        hit = page.evaluate(HIT, selector)
        assert hit["same"], f"{selector} is covered by {hit['hit']}"
    body = page.locator(".streamchat-assistant .streamchat-body").last
    classes = body.locator("div.streamchat-code").first.get_attribute("class")
    assert "jp-" not in classes, classes
    shoot(page, "lab-redress.png")
    # The link names its real host.
    link = body.locator("a", has_text="https://bank.example/login")
    assert "(evil.example)" in link.inner_text()
    # Copy puts the code on the clipboard without its control characters.
    copy = body.locator(".streamchat-copy").nth(1)
    copy.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.streamchat-copy')].some("
        "b => b.textContent === 'Copied')"
    )
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("echo hi]52;c;")
    assert not any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in copied)
    page.console.check()
