"""The demo server: one answer per preset, a reasoning trace, and a pace above the slider's."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from streamchat import render_markdown
from streamchat._demo_answers import SHOWCASE, TOPICS, topic_for
from streamchat.deltas import ReasoningDelta, TextDelta
from streamchat.providers import build_request
from streamchat.server import DEFAULT_RATE, DemoServer, answer_for, reasoning_for, tokens
from streamchat.transport import stream_deltas

NOTEBOOK_PRESETS = {
    "Show me what you can render": "showcase",
    "Why stream LLM answers?": "why",
    "表格和代码，可以吗？": "chinese",
    "Think step by step: 17 sheep, all but 9 run away": "reasoning",
    "Show me a table": "table",
    "Write some Python code": "code",
    "Do emoji work?": "emoji",
    "Show me some math": "math",
}


def ask(url: str, prompt: str) -> tuple[str, str]:
    """(reasoning, answer) as the library's own transport reads them."""
    request = build_request(url, [{"role": "user", "content": prompt}])

    async def run() -> tuple[str, str]:
        reasoning, text = [], []
        async for delta in stream_deltas(request):
            if isinstance(delta, ReasoningDelta):
                reasoning.append(delta.text)
            elif isinstance(delta, TextDelta):
                text.append(delta.text)
        return "".join(reasoning), "".join(text)

    return asyncio.run(run())


@pytest.mark.parametrize(("prompt", "topic"), NOTEBOOK_PRESETS.items())
def test_each_preset_gets_its_own_answer(prompt: str, topic: str) -> None:
    assert topic_for(prompt).name == topic


def test_answers_differ_and_each_renders_something_of_its_own() -> None:
    answers = [SHOWCASE.answer, *(topic.answer for topic in TOPICS)]
    assert len(set(answers)) == len(answers)
    html = {topic.name: render_markdown(topic.answer) for topic in TOPICS}
    assert "<pre" in html["code"] and html["code"].count("<pre") == 2
    assert html["table"].count("<table") == 2
    assert "<table" in html["chinese"] and "你好" in html["chinese"]
    assert "<ol" in html["why"] and "<blockquote" in html["why"]
    assert "👨‍👩‍👧‍👦" in html["emoji"]
    assert html["math"].count('<math display="block"') == 2 and "$5 a month" in html["math"]
    for topic in TOPICS:
        assert "".join(tokens(topic.answer)) == topic.answer
        assert "".join(tokens(topic.reasoning)) == topic.reasoning


def test_reasoning_streams_before_the_answer(fast_demo: DemoServer) -> None:
    prompt = "Think it through: a riddle"
    reasoning, text = ask(fast_demo.url, prompt)
    assert reasoning == reasoning_for(prompt) != ""
    assert text == answer_for(prompt)
    assert ask(fast_demo.url, "Why stream LLM answers?") == ("", answer_for("why"))


def timed_stream(url: str, prompt: str) -> tuple[int, float]:
    """Characters of answer and the seconds from the first to the last one."""
    request = build_request(url, [{"role": "user", "content": prompt}])

    async def run() -> tuple[int, float]:
        count, first, last = 0, None, 0.0
        async for delta in stream_deltas(request):
            if isinstance(delta, TextDelta):
                last = time.monotonic()
                first = first or last
                count += len(delta.text)
        return count, last - (first or last)

    return asyncio.run(run())


@pytest.mark.slow
def test_the_rate_sets_the_pace() -> None:
    with DemoServer(rate=600) as slow:
        count, seconds = timed_stream(slow.url, "pace")
    # The lower bound holds however loaded the machine is; the upper leaves 3x for load.
    assert count / 600 * 0.9 < seconds < count / 600 * 3, (count, seconds)


@pytest.mark.slow
def test_the_default_rate_outruns_the_speed_slider() -> None:
    """Above 600 chars/s (the slider's top): the slider, not the server, sets the pace."""
    assert DEFAULT_RATE > 600
    with DemoServer() as demo:
        count, seconds = timed_stream(demo.url, "Show me what you can render")
    print(f"default demo server: {count / seconds:.0f} chars/s")
    assert count / seconds > 600


def test_sse_events_carry_one_token_each(fast_demo: DemoServer) -> None:
    import httpx

    body = {"messages": [{"role": "user", "content": "Do emoji work?"}], "stream": True}
    with httpx.stream("POST", fast_demo.url, json=body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: {")]
    contents = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert contents == list(tokens(answer_for("emoji")))


@pytest.mark.slow
def test_demo_notebook_is_saved_as_jupyter_would_save_it() -> None:
    """Every cell has an id (nbformat 4.5), so opening it changes nothing: no warning,
    no "modified" tab, and each preset prompt in it gets its own answer."""
    import nbformat

    path = Path(__file__).parents[1] / "notebooks" / "demo.ipynb"
    raw = path.read_text(encoding="utf-8")
    notebook = nbformat.reads(raw, as_version=4)
    nbformat.validate(notebook)
    assert (notebook.nbformat, notebook.nbformat_minor) >= (4, 5)
    ids = [cell.get("id") for cell in notebook.cells]
    assert all(ids) and len(set(ids)) == len(ids)
    assert nbformat.writes(notebook) + "\n" == raw
    source = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    topics = {topic_for(prompt).name for prompt in NOTEBOOK_PRESETS if repr(prompt)[1:-1] in source}
    assert topics == {"showcase", "why", "chinese", "math", "reasoning"}
