"""The static copy of a conversation: what a saved notebook shows without a kernel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamchat import render_markdown
from streamchat._static_copy import static_copy, transcript

PROMPT = '<img src=x onerror="alert(1)"> first\nsecond line'


def conversation() -> tuple[list[dict], list[str]]:
    answers = ["## One\n\n- a\n- b", "Second *answer*", "Half an answ"]
    turns = [
        {"id": 1, "role": "user", "text": PROMPT},
        {
            "id": 2,
            "role": "assistant",
            "html": render_markdown(answers[0]),
            "status": "done",
            "reasoning_html": "<p>I think.</p>",
            "tool_calls": [{"name": "f", "arguments": "{}"}],
        },
        {"id": 3, "role": "user", "text": "again"},
        {"id": 4, "role": "assistant", "html": render_markdown(answers[1]), "status": "stopped"},
        {"id": 5, "role": "user", "text": "third"},
        {"id": 6, "role": "assistant", "html": "<p>Half</p>", "status": "streaming"},
    ]
    return turns, [PROMPT, answers[0], "again", answers[1], "third", answers[2]]


def test_the_copy_shows_finished_answers_and_escaped_prompts() -> None:
    copy = static_copy(*conversation())
    page = copy["text/html"]
    assert "<h2>One</h2>" in page and "<li>a</li>" in page
    assert "<em>answer</em>" in page and "<em>(stopped)</em>" in page
    assert "<details><summary>Reasoning</summary>" in page and "I think." in page
    assert "<code>f({})</code>" in page
    assert "<img" not in page and "&lt;img src=x" in page
    assert "first<br>\nsecond line" in page
    assert "Half" not in page, "an answer still being typed waits for its turn end"
    assert "third" in page, "its prompt is already there"
    assert copy["text/plain"].startswith("**You:**\n\n<img src=x")
    assert "*(stopped)*" in copy["text/plain"]


def test_an_error_is_noted() -> None:
    turns = [
        {"role": "user", "text": "q"},
        {"role": "assistant", "html": "", "status": "error", "error": "HTTP 500 <b>"},
    ]
    copy = static_copy(turns, ["q", ""])
    assert "<em>(error: HTTP 500 &lt;b&gt;)</em>" in copy["text/html"]
    assert transcript(turns, ["q", ""]).endswith("*(error: HTTP 500 <b>)*\n")


def test_an_empty_chat_says_so() -> None:
    assert "no conversation yet" in static_copy([], [])["text/plain"]


@pytest.mark.slow
def test_nbconvert_shows_the_copy_and_no_widget_javascript(tmp_path: Path) -> None:
    """What a widget output becomes in a notebook saved without widget state."""
    copy = static_copy(*conversation())
    output = {
        "output_type": "display_data",
        "metadata": {},
        "data": {
            "application/vnd.jupyter.widget-view+json": {
                "model_id": "0123456789abcdef",
                "version_major": 2,
                "version_minor": 1,
            },
            **copy,
        },
    }
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "id": "chat",
                "metadata": {},
                "outputs": [output],
                "source": "chat",
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "saved.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    jupyter = Path(sys.executable).parent / "jupyter"
    subprocess.run(
        [str(jupyter), "nbconvert", "--to", "html", str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = (tmp_path / "saved.html").read_text(encoding="utf-8")
    assert "<h2>One</h2>" in page and "<em>answer</em>" in page
    assert "widget-view+json" not in page
    assert "html-manager" not in page and "embed-amd" not in page
