"""`streamchat chat --record FILE` and `streamchat replay FILE`, as a person runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamchat.server import DemoServer, answer_for
from test_terminal_tty import Tmux, answer_rows, one_shot, rows

CLI = [sys.executable, "-m", "streamchat.cli"]
SRC = str(Path(__file__).parents[1] / "src")
PROMPT = "Solve this puzzle"
SECRET = "hdr-cli-0123456789-topSECRET"


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def test_record_then_replay_offline_at_its_pace(tmp_path: Path) -> None:
    tape_path = tmp_path / "cli.tape.json"
    with DemoServer(rate=400) as server:
        recorded, _ = run_cli(
            "chat", server.url, PROMPT, "--record", str(tape_path), "--header", f"X-Token: {SECRET}"
        )
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout == answer_for(PROMPT)
    text = tape_path.read_text(encoding="utf-8")
    assert SECRET not in text
    tape = json.loads(text)
    assert tape["format"] == "streamchat-tape" and tape["turns"][0]["answer"]["status"] == "done"
    length = tape["turns"][0]["answer"]["deltas"][-1]["t"]
    assert length > 1.0, "long enough to tell the paces apart"

    # The server is gone: the replay needs none.
    at_pace, slow = run_cli("replay", str(tape_path))
    assert at_pace.returncode == 0, at_pace.stderr
    assert at_pace.stdout == recorded.stdout
    assert f"> {PROMPT}" in at_pace.stderr and "reasoning:" in at_pace.stderr
    assert slow >= length, "typed at the recorded pace"
    fast, quick = run_cli("replay", str(tape_path), "--rate", "8")
    assert fast.stdout == recorded.stdout
    assert quick < slow - length / 2, (quick, slow)


def test_replay_says_what_is_wrong_with_a_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text('{"hello": 1}')
    done, _ = run_cli("replay", str(path))
    assert done.returncode != 0
    assert "is not a tape" in done.stderr and "Traceback" not in done.stderr
    done, _ = run_cli("replay", str(path), "--rate", "20")
    assert "Traceback" not in done.stderr


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    window = Tmux(tmp_path)
    try:
        yield window
    finally:
        window.close()


def test_replay_on_a_terminal_renders_markdown_as_chat_does(terminal: Tmux, tmp_path: Path) -> None:
    """`streamchat replay` on a terminal: the prompt, then the answer typed as live
    Markdown, ending as one render of the whole answer (as `chat` does)."""
    tape_path = tmp_path / "terminal.tape.json"
    with DemoServer(rate=3000) as server:
        recorded, _ = run_cli("chat", server.url, "terminal", "--record", str(tape_path))
    assert recorded.returncode == 0, recorded.stderr
    terminal.start([*CLI, "replay", str(tape_path), "--rate", "8"], env={"PYTHONPATH": SRC})
    assert terminal.wait() == 0
    shown = answer_rows(terminal.history())
    assert shown[0] == "> terminal"
    assert shown[1:] == rows("\n".join(one_shot(answer_for("terminal"), 80)))
