"""A notebook executed by nbclient (as papermill does) and converted to HTML shows the chat.

nbclient saves the state of the widget models it saw opened; nbconvert's HTML then
shows a model's widget view (two `<script>` elements, drawn only by a widget manager
loaded from a CDN) instead of the output's text/html. The chat's answers must be
readable in the converted page, outside any script, and a tape saved from the
executed notebook must replay them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import require

SRC = str(Path(__file__).parents[1] / "src")
JUPYTER = Path(sys.executable).with_name("jupyter")

CELLS = [
    "from streamchat import StreamChat\n"
    "from streamchat.server import DemoServer\n"
    "server = DemoServer(rate=0).start()\n"
    "chat = StreamChat(server.url, speed=0)\n"
    "chat",
    "chat.ask('Solve this puzzle'); chat.wait(60)",
    "chat.ask('Show me a table'); chat.wait(60)",
    "chat.save('executed.tape.json')",
    "import ipywidgets\nipywidgets.IntSlider(3)",  # a widget whose state nbclient stores
]


def test_an_executed_notebook_converts_to_html_with_both_answers(tmp_path: Path) -> None:
    try:
        import nbclient
        import nbformat
    except ImportError as error:
        require(False, f"executing a notebook needs {error.name}")
        raise
    require(JUPYTER.exists(), "the jupyter command (nbconvert)")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    # The kernel imports this worktree's streamchat.
    env_setup = f"import sys; sys.path.insert(0, {SRC!r})\n"
    notebook.cells[0].source = env_setup + notebook.cells[0].source
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    path = tmp_path / "executed.ipynb"
    nbformat.write(notebook, path)

    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert state, "nbclient stored widget state (the slider's): nbconvert draws widget views"
    view = notebook.cells[0].outputs[0]["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] not in state, "the chat's own state is left out"

    subprocess.run(
        [str(JUPYTER), "nbconvert", "--to", "html", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = (tmp_path / "executed.html").read_text(encoding="utf-8")
    outside_scripts = re.sub(r"<script\b.*?</script>", "", page, flags=re.S | re.I)
    assert "9 sheep are left" in outside_scripts, "the first answer"
    assert "Streaming front ends compared" in outside_scripts, "the second answer"
    assert ">streamchat</td>" in outside_scripts, "rendered, not as Markdown source"
    assert "Solve this puzzle" in outside_scripts and "<summary>Reasoning</summary>" in page

    tape = json.loads((tmp_path / "executed.tape.json").read_text(encoding="utf-8"))
    assert [turn["prompt"] for turn in tape["turns"]] == ["Solve this puzzle", "Show me a table"]
