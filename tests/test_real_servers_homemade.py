"""Home-made streaming servers (FastAPI, sse-starlette) read by the CLI and by StreamChat.

Every token must arrive, whitespace-only ones included: the answer on stdout and in
the widget's history is the servers' text byte for byte (tests/servers/homemade.py).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamchat import StreamChat

from servers.homemade import INLINE, LINES

CLI = [sys.executable, "-m", "streamchat.cli"]

ROUTES = [
    pytest.param(route, expected, id=route.strip("/"))
    for route, expected in [
        ("/fastapi/sse", INLINE),
        ("/fastapi/sse-lines", LINES),
        ("/fastapi/sse-crlf", INLINE + LINES),
        ("/fastapi/text", INLINE + LINES),
        ("/sse-starlette", INLINE + LINES),
        ("/sse-starlette/events", LINES),
    ]
]


def chat_cli(url: str, prompt: str = "Go") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "chat", url, prompt, "--speed", "0"], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(("route", "expected"), ROUTES)
def test_cli_prints_every_token(homemade: str, route: str, expected: str) -> None:
    result = chat_cli(homemade + route)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


@pytest.mark.parametrize(("route", "expected"), ROUTES)
def test_streamchat_keeps_every_token_over_two_turns(homemade: str, route: str, expected: str):
    chat = StreamChat(homemade + route, speed=0)
    try:
        for prompt in ("First", "Second"):
            chat.ask(prompt)
            assert chat.wait(30)
            assert chat.turns[-1]["status"] == "done", chat.turns[-1]
            assert chat.messages[-1] == {"role": "assistant", "content": expected}
        assert [m["role"] for m in chat.messages] == ["user", "assistant"] * 2
    finally:
        chat.close()


def test_an_empty_text_body_is_an_error_not_a_silent_success(homemade: str) -> None:
    result = chat_cli(homemade + "/fastapi/text-empty")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no answer" in result.stderr  # says what is wrong, whatever the wording around it


def test_an_empty_text_body_shows_an_error_in_the_bubble(homemade: str) -> None:
    chat = StreamChat(homemade + "/fastapi/text-empty", speed=0)
    try:
        chat.ask("Anything?")
        assert chat.wait(30)
        turn = chat.turns[-1]
        assert turn["status"] == "error"
        assert turn["error"]
    finally:
        chat.close()
