"""The CLI in a real terminal: tmux runs it against loopback servers and the tests read the screen.

tmux is a terminal emulator with a scrollback, so what these tests read is what a person
would see and could scroll back to: `capture-pane -S -` is the whole history, `-e` keeps
the colours. The answers are compared with the one-shot render of the same Markdown (the
same engine, drawn by rich) at the same width, which is what the live rendering must add
up to.
"""

from __future__ import annotations

import codecs
import fcntl
import io
import json
import os
import pty
import select
import shlex
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import regex
from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

from streamchat._terminal import _rich_markdown
from streamchat.server import DemoServer, answer_for

from chromium import CHROMIUM, CHROMIUM_ARGS, chromium_available
from conftest import require
from loopback import LoopbackServer, Script, sse, wait_until

CLI = [sys.executable, "-m", "streamchat.cli"]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
# tmux 3.3 keeps at most 21 bytes per cell, so it cuts the end off a long ZWJ emoji
# sequence (a family is 25 bytes); both sides of a comparison are cut the same way.
_ZWJ_SEQUENCE = regex.compile(
    r"\p{Extended_Pictographic}\uFE0F?(?:\u200D\p{Extended_Pictographic}?\uFE0F?)+"
)
_COLOUR = regex.compile(r"\x1b\[[0-9;]*[34]8;[25];")


class Tmux:
    """One tmux server with one window of a given size, on its own socket."""

    def __init__(self, directory: Path, width: int = 80, height: int = 24) -> None:
        require(shutil.which("tmux") is not None, "tmux is not installed")
        self.socket = str(directory / "tmux.sock")
        self.config = directory / "tmux.conf"
        # set-clipboard on: an OSC 52 that got through would fill a tmux paste buffer.
        self.config.write_text(
            "set -g history-limit 20000\n"
            "set -g default-terminal screen-256color\n"
            "set -g set-clipboard on\n"
            "set -g allow-rename on\n"
        )
        self.status = directory / "status"
        # Nothing from the test run (COLUMNS, NO_COLOR, FORCE_COLOR...) leaks into the window.
        self.environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
        self.width, self.height = width, height

    def tmux(self, *args: str, timeout: float = 10) -> str:
        result = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            env=self.environment,  # the server's: what the window's programs start with
        )
        return result.stdout

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run `argv` in the window; its exit status lands in `self.status`."""
        # The shell survives a Ctrl-C (a trap, not an ignore, which the program would inherit).
        command = f"trap true INT; {shlex.join(argv)}; echo $? > {shlex.quote(str(self.status))}"
        command += "; tmux wait-for -S finished; exec cat"  # cat keeps the window open
        flags = [flag for name, value in (env or {}).items() for flag in ("-e", f"{name}={value}")]
        self.tmux(
            "-f",
            str(self.config),
            "new-session",
            "-d",
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            *flags,
            "sh",
            "-c",
            command,
        )

    def wait(self, timeout: float = 60) -> int:
        self.tmux("wait-for", "finished", timeout=timeout)
        return int(self.status.read_text())

    def screen(self, colours: bool = False, joined: bool = False) -> str:
        flags = (["-e"] if colours else []) + (["-J"] if joined else [])
        return self.tmux("capture-pane", "-p", *flags)

    def history(self, colours: bool = False, joined: bool = False) -> str:
        """Everything printed: the scrollback and the screen."""
        flags = (["-e"] if colours else []) + (["-J"] if joined else [])
        return self.tmux("capture-pane", "-p", "-S", "-", "-E", "-", *flags)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.close()


@pytest.fixture(scope="module")
def quick_demo() -> Iterator[DemoServer]:
    with DemoServer(rate=1500) as server:
        yield server


def one_shot(markdown: str, width: int) -> list[str]:
    """The whole answer rendered at once (streamchat's engine, drawn by rich), as plain lines."""
    console = Console(width=width, force_terminal=True, color_system=None)
    with console.capture() as capture:
        console.print(_rich_markdown(markdown))
    return capture.get().splitlines()


def rows(text: str) -> list[str]:
    """Screen text as comparable rows: trailing blanks and empty rows at the end dropped."""
    lines = [_ZWJ_SEQUENCE.sub("<emoji>", line.rstrip()) for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def answer_rows(history: str) -> list[str]:
    """The rows of the answer: the history without the summary line and what follows."""
    lines = rows(history)
    assert lines[-1].startswith("ttft "), lines[-3:]
    return lines[:-1]


def test_demo_answer_renders_as_markdown(tmux: Tmux, quick_demo: DemoServer) -> None:
    tmux.start([*CLI, "chat", quick_demo.url, "terminal", "--speed", "3000", "--step", "4"])
    assert tmux.wait() == 0
    history = tmux.history()
    shown = answer_rows(history)
    assert shown == rows("\n".join(one_shot(answer_for("terminal"), 80)))
    text = "\n".join(shown)
    assert "Streaming, explained" in text and "A comparison" in text
    for marker in ("## ", "**", "|---", "| Transport", "```", "\\"):
        assert marker not in text, marker
    assert regex.search(r"Transport\s+Direction\s+Fits LLM chat", text)
    assert "────" in text  # the table's rule
    assert "中文也可以" in text and "你好，世界" in text
    assert "waiting for the first token" not in text
    coloured = tmux.history(colours=True)
    assert _COLOUR.search(coloured), "no colour in the rendered answer"
    assert "\x1b[4m" in coloured or ";4m" in coloured or "\x1b[4;" in coloured  # h2 underline


def long_answer() -> str:
    """About five screens of Markdown with numbered lines, and a code block taller than a screen."""
    parts = []
    for section in range(1, 4):
        parts.append(f"## Section {section}")
        for number in range(1, 4):
            words = " ".join(f"word{section}{number}{k}" for k in range(24))
            parts.append(f"Paragraph {section}.{number}: **bold** and *italic* {words}.")
        parts.append(f"- item {section}.a\n- item {section}.b with `code`\n  - nested {section}")
        body = f"| a{section} | 1 |\n| b{section} | 22 |"
        parts.append(f"| Key {section} | Value |\n|---|---:|\n{body}")
    code = "\n".join(f"line_{n:02} = {n} * {n}  # row {n}" for n in range(1, 41))
    parts.insert(5, f"```python\n{code}\n```")
    parts.append("> The end, quoted.")
    return "\n\n".join(parts) + "\n"


def chunked(text: str, size: int) -> list[bytes]:
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    events = [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    return sse(*events, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]")


def test_answer_three_screens_long_prints_every_line_once(
    tmux: Tmux, server: LoopbackServer
) -> None:
    answer = long_answer()
    expected = rows("\n".join(one_shot(answer, 80)))
    assert len(expected) > 3 * tmux.height
    url = server.route("/v1/chat/completions", Script(chunked(answer, 7), pause=0.001))
    tmux.start([*CLI, "chat", url, "q", "--speed", "2500", "--step", "3"])
    assert tmux.wait() == 0
    assert answer_rows(tmux.history()) == expected
    history = tmux.history()
    for n in range(1, 41):
        assert len(regex.findall(rf"# row {n} *\n", history)) == 1


def test_naive_live_markdown_prints_lines_again(tmux: Tmux, tmp_path: Path) -> None:
    """The check above can fail: rich's Live(Markdown(answer so far)) repeats lines."""
    source = tmp_path / "answer.md"
    source.write_text(long_answer())
    script = (
        "import sys\n"
        "from rich.live import Live\n"
        "from rich.markdown import Markdown\n"
        "text = open(sys.argv[1]).read()\n"
        "with Live(vertical_overflow='visible', auto_refresh=False) as live:\n"
        "    for end in range(40, len(text) + 40, 40):\n"
        "        live.update(Markdown(text[:end]), refresh=True)\n"
    )
    tmux.start([sys.executable, "-c", script, str(source)])
    assert tmux.wait() == 0
    assert len(regex.findall(r"# row 1 *\n", tmux.history())) > 1


def test_resize_while_streaming_prints_nothing_twice(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Narrower mid-answer: the terminal rewraps what is shown; nothing is lost or repeated.

    The window shrinks while the server pauses in the middle of a paragraph (the open
    block, drawn live at 100 columns) and all it sent is on screen, so no frame is on its
    way to the terminal then (one that is can be drawn over rows the resize rewrapped).
    """
    answer = long_answer()
    chunks = chunked(answer, 5)
    middle = (answer.index("word2121") + len("word2121 ")) // 5 + 1  # the chunk after it
    pauses = [3.0 if i == middle else 0.002 for i in range(len(chunks))]
    url = server.route("/v1/chat/completions", Script(chunks, pause=pauses))
    tmux = Tmux(tmp_path, width=100, height=24)
    try:
        tmux.start([*CLI, "chat", url, "q", "--speed", "0"])
        sent = " ".join(answer[: middle * 5].split()[-3:])

        def drawn() -> bool:  # the whole frame: the cursor rests below the live region
            column = tmux.tmux("display", "-p", "#{cursor_x}").strip()
            return sent in tmux.screen(joined=True) and column == "0"

        wait_until(drawn, timeout=30)
        tmux.tmux("resize-window", "-x", "60", "-y", "20")
        assert tmux.wait() == 0
        history = tmux.history(joined=True)  # rows the terminal rewrapped are joined again
        for section in range(1, 4):
            assert len(regex.findall(rf"^Section {section} *$", history, regex.M)) == 1
            for number in range(1, 4):
                assert history.count(f"Paragraph {section}.{number}:") == 1
                for k in range(24):
                    assert len(regex.findall(rf"\bword{section}{number}{k}\b", history)) == 1
        for n in range(1, 41):
            assert len(regex.findall(rf"# row {n} *\n", history)) == 1
        after = tmux.history().split("Paragraph 2.1")[-1]
        assert max(len(line.rstrip()) for line in after.split("\n")) <= 60
        assert "The end, quoted." in after
    finally:
        tmux.close()


def test_ctrl_c_keeps_the_answer_so_far_and_restores_the_terminal(
    tmux: Tmux, server: LoopbackServer
) -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"content": f"Part {n} **bold**. "}}]} for n in range(50)
    ]
    url = server.route("/v1/chat/completions", Script(sse(*events), pause=0.2))
    tmux.start([*CLI, "chat", url, "q", "--speed", "0"])
    wait_until(lambda: "Part 3 bold." in tmux.screen(), timeout=30)
    tmux.tmux("send-keys", "C-c")
    assert tmux.wait() == 130
    text = tmux.history()
    assert "Part 3 bold." in text and "Part 49" not in text and "**" not in text
    assert "streamchat: stopped" in text
    flags = tmux.tmux("display", "-p", "#{cursor_flag} #{wrap_flag}").split()
    assert flags == ["1", "1"]  # the cursor is shown again and lines wrap again


# Each of these drives a real terminal when written raw: a clipboard write (OSC 52), a
# hyperlink whose target is not its text (OSC 8), a window title (OSC 0), an erase of
# what was shown (CR, EL), a bell, and CSI as one C1 byte.
ATTACK = (
    "Before\x1b]52;c;cHduZWQ=\x07 clip "
    "\x1b]8;;https://evil.example/\x1b\\https://bank.example\x1b]8;;\x1b\\ link "
    "\x1b]0;pwned-title\x07 title shown?\r\x1b[2Kerased bell\x07 csi\x9b31m del\x7f end\n"
)
ESCAPED = (
    "Before␛]52;c;cHduZWQ=␇ clip ␛]8;;https://evil.example/␛\\https://bank.example"
    "␛]8;;␛\\ link ␛]0;pwned-title␇ title shown?␍␛[2Kerased bell␇ csi<U+009B>31m del␡ end"
)


def attack_url(server: LoopbackServer) -> str:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Think " + ATTACK}}]},
        *[{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in ATTACK],
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )
    return server.route("/v1/chat/completions", Script(chunks))


def assert_terminal_untouched(tmux: Tmux) -> None:
    assert "pwned" not in tmux.tmux("display", "-p", "#{pane_title}")
    assert tmux.tmux("list-buffers") == ""  # no clipboard write reached tmux
    text = tmux.history(joined=True)
    assert "shown?" in text and "erased" in text
    assert "\x1b]" not in tmux.history(colours=True)


@pytest.mark.parametrize("plain", [False, True], ids=["rendered", "plain"])
def test_control_sequences_from_the_model_are_shown_not_run(
    tmux: Tmux, server: LoopbackServer, plain: bool
) -> None:
    tmux.start([*CLI, "chat", attack_url(server), "q", "--speed", "0", *(["--plain"] * plain)])
    assert tmux.wait() == 0
    assert_terminal_untouched(tmux)
    text = regex.sub(r"\s", "", tmux.history(joined=True))  # rendered text is rewrapped
    assert text.count(regex.sub(r"\s", "", ESCAPED)) == 2  # reasoning and answer, all visible
    if not plain:
        assert "Reasoning" in text


def test_the_same_bytes_raw_do_drive_the_terminal(tmux: Tmux, tmp_path: Path) -> None:
    """The checks above can fail: written as they are, the sequences act."""
    raw = tmp_path / "raw"
    raw.write_bytes(ATTACK.encode())
    tmux.start(["cat", str(raw)])
    assert tmux.wait() == 0
    assert "pwned" in tmux.tmux("display", "-p", "#{pane_title}")
    assert tmux.tmux("list-buffers") != ""
    assert "shown?" not in tmux.history()


def test_reasoning_is_dim_labelled_and_apart(tmux: Tmux, server: LoopbackServer) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "First I think.\nThen "}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": "I decide."}}]},
        {"choices": [{"index": 0, "delta": {"content": "# The answer\n\nIt is **42**."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )
    url = server.route("/v1/chat/completions", Script(chunks))
    tmux.start([*CLI, "chat", url, "q", "--speed", "0"])
    assert tmux.wait() == 0
    shown = answer_rows(tmux.history())
    assert shown[:5] == ["Reasoning", "First I think.", "Then I decide.", "", *shown[4:5]]
    assert shown[4].strip() == "The answer" and shown[-1] == "It is 42."
    coloured = tmux.history(colours=True)
    assert regex.search(r"\x1b\[[0-9;]*\b2\b[0-9;]*m(?:\x1b\[[0-9;]*m)*First I think", coloured)


def test_status_line_counts_seconds_until_the_first_token(
    tmux: Tmux, server: LoopbackServer
) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"content": "Here."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        "[DONE]",
    )
    url = server.route("/v1/chat/completions", Script(chunks, pause=[2.0, 0.0, 0.0]))
    tmux.start([*CLI, "chat", url, "q", "--speed", "0"])
    seen = []

    def counting() -> bool:
        found = regex.search(r"waiting for the first token · (\d+\.\d) s", tmux.screen())
        if found:
            seen.append(float(found.group(1)))
        return len(set(seen)) >= 3  # the seconds go up while it waits

    wait_until(counting, timeout=20)
    assert seen == sorted(seen)
    assert tmux.wait() == 0
    shown = answer_rows(tmux.history())
    assert shown == ["Here."]  # the status line is gone
    summary = rows(tmux.history())[-1]
    assert regex.fullmatch(r"ttft \d\.\d\d s · 5 chars · .*tokens.*", summary), summary
    assert float(summary.split()[1]) >= 1.5


def test_no_color_keeps_the_layout_without_colours(tmux: Tmux, quick_demo: DemoServer) -> None:
    tmux.start([*CLI, "chat", quick_demo.url, "x", "--speed", "0"], env={"NO_COLOR": "1"})
    assert tmux.wait() == 0
    assert answer_rows(tmux.history()) == rows("\n".join(one_shot(answer_for("x"), 80)))
    coloured = tmux.history(colours=True)
    assert not _COLOUR.search(coloured)
    assert not regex.search(r"\x1b\[[0-9;]*\b(?:3[0-7]|4[0-7]|9[0-7]|10[0-7])\b[0-9;]*m", coloured)
    assert "\x1b[" in coloured  # bold, underline and dim stay


def test_plain_on_a_terminal_is_the_text_as_typed(tmux: Tmux, quick_demo: DemoServer) -> None:
    tmux.start([*CLI, "chat", quick_demo.url, "x", "--speed", "0", "--plain"])
    assert tmux.wait() == 0
    assert answer_rows(tmux.history(joined=True)) == rows(answer_for("x"))


def test_a_dumb_terminal_gets_the_plain_text_escaped(tmux: Tmux, server: LoopbackServer) -> None:
    # tmux sets TERM itself, after the -e variables
    tmux.start(["env", "TERM=dumb", *CLI, "chat", attack_url(server), "q", "--speed", "0"])
    assert tmux.wait() == 0
    assert_terminal_untouched(tmux)
    assert "reasoning:" in tmux.history()  # the plain output's label: nothing drawn in place
    assert "\x1b[" not in tmux.history(colours=True).split("reasoning:")[1]


def test_doctor_shows_progress_while_it_measures(tmux: Tmux) -> None:
    with DemoServer(rate=300) as slow:
        tmux.start([*CLI, "doctor", slow.url])
        progress = regex.compile(r"measuring · ([\d,]+) bytes · ([\d,]+) events · (\d+\.\d) s")
        seen = []

        def measuring() -> bool:
            found = progress.search(tmux.screen())
            if found:
                seen.append(tuple(float(g.replace(",", "")) for g in found.groups()))
            return len({s[0] for s in seen if s[0] > 0}) >= 2

        wait_until(measuring, timeout=30)
        assert tmux.wait(timeout=90) in (0, 1)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)
    assert max(s[1] for s in seen) > 0
    screen = tmux.history()
    assert "measuring ·" not in screen  # the progress line is gone
    assert "streamchat doctor:" in screen  # then the report


def record(argv: list[str], width: int, height: int, timeout: float = 90) -> list[list]:
    """Run `argv` on a fresh pseudo-terminal; what it wrote, as asciicast v2 output events."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "TERM": "xterm-256color",
    }
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    events: list[list] = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the program has exited and closed the terminal
                break
            if not data:
                break
            events.append([round(time.monotonic() - start, 4), "o", decoder.decode(data)])
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        os.close(master)
    return events


# A monospace font whose CJK glyphs are exactly two cells wide, as a terminal draws them.
_PAGE = """<!doctype html><meta charset="utf-8"><body style="margin:0">
<pre style="display:inline-block;margin:0;padding:12px;color:{foreground};
background:{background};font:15px/1.3 'Noto Sans Mono CJK SC','Noto Color Emoji',monospace">
<code style="font-family:inherit">{code}</code></pre></body>"""


def screenshots(captures: dict[str, str], width: int) -> None:
    """Each captured screen as HTML (rich's export) and a PNG of it drawn by Chromium.

    The .ansi text beside them is the capture itself: `cat` it in a terminal.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        for name, ansi in captures.items():
            path = ARTIFACTS / name
            path.with_suffix(".ansi").write_text(ansi)
            console = Console(record=True, width=width, file=io.StringIO())
            console.print(Text.from_ansi(ansi), soft_wrap=True)
            html = console.export_html(theme=MONOKAI, inline_styles=True, code_format=_PAGE)
            path.with_suffix(".html").write_text(html)
            page.set_content(html)
            page.locator("pre").screenshot(path=str(path.with_suffix(".png")))
        browser.close()


def test_demo_session_is_recorded(tmux: Tmux) -> None:
    """`streamchat demo` at its own pace: an asciicast, and screenshots mid-answer and at the end.

    Written to test-artifacts/terminal-demo.cast (play it with `asciinema play`),
    terminal-demo-middle.png and terminal-demo-end.png (with .html and .ansi beside them).
    The recording runs on its own pseudo-terminal while tmux runs the same command.
    """
    require(chromium_available(), "playwright and /usr/bin/chromium are needed")
    ARTIFACTS.mkdir(exist_ok=True)
    recorded: list[list] = []
    recorder = threading.Thread(
        target=lambda: recorded.extend(record([*CLI, "demo"], width=80, height=24))
    )
    recorder.start()
    tmux.start([*CLI, "demo"])
    wait_until(lambda: "SSE" in tmux.screen() and "Long polling" not in tmux.screen(), 60)
    middle = tmux.screen(colours=True)
    assert tmux.wait() == 0
    end = tmux.screen(colours=True)
    recorder.join(timeout=90)
    screenshots({"terminal-demo-middle": middle, "terminal-demo-end": end}, 80)
    assert "Streaming, explained" in tmux.history() and "│" not in Text.from_ansi(middle).plain

    header = {"version": 2, "width": 80, "height": 24, "title": "streamchat demo"}
    header["env"] = {"TERM": "xterm-256color"}
    lines = [json.dumps(header), *(json.dumps(event, ensure_ascii=False) for event in recorded)]
    (ARTIFACTS / "terminal-demo.cast").write_text("\n".join(lines) + "\n")
    output = "".join(event[2] for event in recorded)
    assert "waiting for the first token" in output
    assert len(recorded) > 100  # typed out, not printed at once
    assert recorded[-1][0] - recorded[0][0] > 5
    assert "\x1b]" not in output  # no OSC: no title, no hyperlink, no clipboard
    assert "## " not in output and "ttft " in output
