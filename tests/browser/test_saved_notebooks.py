"""A chat in a notebook that is saved, converted and outlives its kernel (JupyterLab).

The saved output must be readable where the widget cannot be drawn (GitHub, nbviewer,
`jupyter nbconvert`, VS Code without a kernel): it carries a static copy of the
conversation. After a kernel restart the old chat says it lost its kernel.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from .conftest import ARTIFACTS, VENV_BIN, offline
from .frontends import KERNEL_READY, LOAD

pytestmark = pytest.mark.browser

SECRET = "sk-test-0123456789abcdef"


def ask_and_wait(page: Any, prompt: str, answers: int) -> None:
    box = page.locator("textarea.streamchat-input")
    box.fill(prompt)
    box.press("Enter")
    page.wait_for_function(
        "(n) => document.querySelectorAll("
        "'.streamchat-assistant[data-status=\"done\"]').length === n",
        arg=answers,
        timeout=LOAD,
    )


def test_a_saved_notebook_holds_the_conversation(page: Any, hosts: Callable[[str], Any]) -> None:
    lab = hosts("lab")
    offline(page)
    (lab.root / "key.txt").write_text(SECRET)  # a key the cell's source does not show
    source = (
        "from streamchat import StreamChat\n"
        "chat = StreamChat(speed=0, api_key=open('key.txt').read())\n"
        "chat"
    )
    lab.open_chat(page, "saved", source)
    ask_and_wait(page, "Show me a table", 1)
    ask_and_wait(page, "Write some Python code", 2)
    # The saved output is rewritten at each turn end, through the chat's display.
    page.locator("textarea.streamchat-input").press("Control+s")  # the host's shortcut
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.lm-mod-current.jp-mod-dirty')"
    )
    path = lab.root / "saved.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    (output,) = notebook["cells"][0]["outputs"]
    copy = "".join(output["data"]["text/html"])  # nbformat may split it in lines
    assert "Streaming front ends compared" in copy, "the first answer"
    assert "aconnect_sse" in copy, "the second answer"
    assert "Show me a table" in "".join(output["data"]["text/plain"])
    assert SECRET not in path.read_text(encoding="utf-8")
    assert "widgets" not in notebook["metadata"], "no widget state saved by default"

    subprocess.run(
        [str(VENV_BIN / "jupyter"), "nbconvert", "--to", "html", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    html = (lab.root / "saved.html").read_text(encoding="utf-8")
    assert "Streaming front ends compared" in html and "aconnect_sse" in html
    assert "widget-view+json" not in html and "html-manager" not in html
    assert SECRET not in html
    page.goto(path.with_suffix(".html").as_uri())
    page.locator(".streamchat-transcript").screenshot(path=str(ARTIFACTS / "nbconvert-copy.png"))
    lab.after_test()
    page.console.check()


def test_a_saved_notebook_reopened_without_its_model_shows_the_conversation(
    page: Any, hosts: Callable[[str], Any]
) -> None:
    """Reopened after its kernel ended, the chat's output shows the saved conversation
    (JupyterLab would otherwise pick the widget view and say the model is not found)."""
    lab = hosts("lab")
    offline(page)
    lab.open_chat(page, "reopened", "from streamchat import StreamChat\nStreamChat(speed=0)")
    ask_and_wait(page, "Show me a table", 1)
    page.locator("textarea.streamchat-input").press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.lm-mod-current.jp-mod-dirty')"
    )
    lab.after_test()  # the kernel, and the widget's model with it, is gone
    page.goto(lab.document_url("reopened.ipynb"))
    # A new kernel starts with the notebook; once it is idle the widget manager has
    # looked for the chat's model in it and found none.
    page.wait_for_function(KERNEL_READY, polling=50, timeout=LOAD)
    output = page.locator(".jp-OutputArea-output").first
    copy = output.locator(".streamchat-transcript")
    copy.wait_for(timeout=LOAD)
    assert "Streaming front ends compared" in copy.inner_text()
    assert "Show me a table" in copy.inner_text()
    assert copy.locator("table th").count() >= 2, "the answer's table, as HTML"
    assert page.get_by_text("model not found").count() == 0
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.locator(".streamchat textarea").count() == 0, "no dead widget"
    page.locator(".jp-Cell").first.screenshot(path=str(ARTIFACTS / "lab-reopened-saved.png"))
    lab.after_test()
    page.console.check()


def restart_from_the_menu(page: Any, lab: Any) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").click()
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    # Restarted: a session being restarted cannot be shut down after the test.
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=LOAD)


def jupyter_api(lab: Any, method: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{lab.server.base}/api/{path}",
        headers={"Authorization": f"token {lab.token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return json.loads(body) if body else None


def the_kernel(lab: Any) -> str:
    (session,) = jupyter_api(lab, "GET", "sessions")
    return session["kernel"]["id"]


def restart_by_the_api(page: Any, lab: Any) -> None:
    """Restart the kernel as another client would. The server tells open pages only through
    the new process's messages; its first ("starting") is lost when published before the
    page's socket reconnected, so a second client then asks the kernel for its info, as a
    second tab does, until the page hears from the new process."""
    kernel = the_kernel(lab)
    jupyter_api(lab, "POST", f"kernels/{kernel}/restart")
    notice = page.locator(".streamchat-notice")
    for _ in range(10):
        # In a thread: Playwright's sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, ask_kernel_info(lab, kernel)).result(timeout=60)
        try:
            notice.wait_for(timeout=2_000)
            return
        except Exception:  # playwright's TimeoutError: ask again
            continue


async def ask_kernel_info(lab: Any, kernel: str) -> None:
    """A kernel_info_request over the server's websocket; the kernel answers on IOPub too
    (busy, idle), which every page connected to that kernel receives."""
    base = lab.server.base.replace("http", "ws", 1)
    socket = await websocket_connect(f"{base}/api/kernels/{kernel}/channels?token={lab.token}")
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "kernel_info_request",
        "session": uuid.uuid4().hex,
        "username": "test",
        "version": "5.3",
        "date": "",
    }
    request = {"header": header, "parent_header": {}, "metadata": {}, "content": {}}
    await socket.write_message(json.dumps({**request, "channel": "shell"}))
    try:
        while (message := await asyncio.wait_for(socket.read_message(), 30)) is not None:
            reply = json.loads(message)
            parent = reply.get("parent_header", {}).get("msg_id")
            if parent == header["msg_id"] and reply["header"]["msg_type"] == "kernel_info_reply":
                return
    finally:
        socket.close()


def shut_down_by_the_api(page: Any, lab: Any) -> None:
    jupyter_api(lab, "DELETE", f"kernels/{the_kernel(lab)}")


@pytest.mark.parametrize(
    "end_kernel", [restart_from_the_menu, restart_by_the_api, shut_down_by_the_api]
)
def test_after_a_kernel_restart_the_chat_says_its_kernel_is_gone(
    page: Any, hosts: Callable[[str], Any], end_kernel: Callable[[Any, Any], None]
) -> None:
    """The chat says it lost its kernel as soon as the host knows, with nothing sent;
    what the person was typing stays in the box."""
    lab = hosts("lab")
    lab.open_chat(page, "restart", "from streamchat import StreamChat\nStreamChat(speed=0)")
    ask_and_wait(page, "Why stream LLM answers?", 1)
    box = page.locator("textarea.streamchat-input")
    box.fill("Are you there?")
    end_kernel(page, lab)
    notice = page.locator(".streamchat-notice")
    notice.wait_for(timeout=30_000)  # the host says so at once; margin for load
    assert "lost its kernel" in notice.inner_text()
    assert box.is_disabled()
    assert page.locator(".streamchat-send").is_disabled()
    assert box.input_value() == "Are you there?", "the prompt is kept, not lost"
    assert page.locator(".streamchat-user").count() == 1, "nothing was sent"
    assert page.locator(".streamchat-assistant .streamchat-body h2").count() == 1
    name = end_kernel.__name__.replace("_", "-")
    page.locator(".jp-OutputArea-output:has(.streamchat)").screenshot(
        path=str(ARTIFACTS / f"lab-kernel-gone-{name}.png")
    )
    lab.after_test()
    page.console.check()
