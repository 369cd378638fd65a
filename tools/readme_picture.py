"""Make the README's picture: the demo chat typing an answer in JupyterLab, mid-answer.

    make picture                                # writes docs/img/chat.png
    .venv/bin/python tools/readme_picture.py [--out PATH] [--scale 2]

A real run, the way a person sees it: JupyterLab from this checkout's venv (started by
the browser tests' own helper, tests/browser/frontends.py, on a loopback port with its
own token and config), Debian's Chromium driven by playwright with the tests' flags
(tests/chromium.py), a notebook whose one cell is the demo chat, a preset prompt typed
into the chat's box and sent with Enter. The picture is taken while the answer types,
once its table is shown and its code block has begun: the cursor is in the code. So
when the chat's look changes, `make picture` remakes the picture from the same script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' helpers

from browser.frontends import LOAD, Lab, ask  # noqa: E402

from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OUT = ROOT / "docs" / "img" / "chat.png"
PROMPT = "Show me what you can render"
CELL = """\
from streamchat import StreamChat
StreamChat(prompts=["Show me what you can render", "Show me some math"], speed=90)"""
# The moment to take the picture: the showcase answer's table is whole and its code
# block has begun (its second line is being typed), so the cursor blinks inside it.
MID_CODE = """() => {
  const body = [...document.querySelectorAll('.streamchat-assistant .streamchat-body')].pop();
  return !!body && body.textContent.includes('async with httpx.AsyncClient()')
    && document.querySelector('.streamchat-cursor') !== null;
}"""


def clip(page: Any) -> dict[str, float]:
    """The cell, its code and the chat, cut at the chat's right edge: the notebook is
    wider than the chat (at most 880 px), and the rest of its width is empty."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").first.bounding_box()
    chat = page.locator(".streamchat").first.bounding_box()
    right = chat["x"] + chat["width"] + 12
    return {"x": cell["x"], "y": cell["y"], "width": right - cell["x"], "height": cell["height"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT.relative_to(ROOT)}")
    parser.add_argument("--scale", type=float, default=2, help="device pixels per CSS pixel")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="streamchat-picture-") as tmp:
        lab = Lab(Path(tmp))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(
                    viewport={"width": 1240, "height": 1400}, device_scale_factor=args.scale
                )
                lab.open_chat(page, "demo", CELL)
                # The file browser's sidebar off (JupyterLab's Ctrl+B), so the chat has
                # its full width (880 px) beside nothing but the notebook.
                page.keyboard.press("Control+b")
                page.wait_for_selector("#jp-left-stack", state="hidden", timeout=LOAD)
                ask(page, PROMPT)
                page.wait_for_function(MID_CODE, polling=20, timeout=LOAD)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), clip=clip(page), animations="allow")
                browser.close()
        finally:
            lab.after_test()
            lab.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
