"""llama.cpp's llama-server with a real model, and LiteLLM proxy in front of it, on loopback.

At temperature 0 the model is deterministic, so what streamchat assembles from a
stream must equal, byte for byte, the same server's non-streamed answer to the same
request: through the CLI (stdout) and through StreamChat, for two turns. Every route
people point a client at: llama-server's OpenAI Chat Completions, Responses and
Anthropic Messages routes and its native `/completion`; LiteLLM's Chat Completions,
Messages and Responses routes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamchat import StreamChat
from streamchat.providers import build_request

from conftest import require
from servers import real
from servers.real import Process

pytestmark = pytest.mark.real_servers

CLI = [sys.executable, "-m", "streamchat.cli"]
PROMPTS = ("Write one sentence about the sea.", "Now one about the sky.")
# Seconds for one answer of at most real.MAX_TOKENS tokens on a loaded 2-core machine.
ANSWER_TIMEOUT = 120


@dataclass(frozen=True)
class Route:
    path: str
    provider: str  # as detected from the path
    via_litellm: bool = False

    @property
    def id(self) -> str:
        return ("litellm" if self.via_litellm else "llama") + self.path


ROUTES = [
    Route("/v1/chat/completions", "openai"),
    Route("/v1/responses", "openai-responses"),
    Route("/v1/messages", "anthropic"),
    Route("/completion", "custom"),
    Route("/v1/chat/completions", "openai", via_litellm=True),
    Route("/v1/messages", "anthropic", via_litellm=True),
    Route("/v1/responses", "openai-responses", via_litellm=True),
]


@dataclass(frozen=True)
class Target:
    url: str
    provider: str
    model: str | None
    api_key: str | None
    # Anthropic's body must name max_tokens: bound it like the server's own -n.
    options: dict[str, Any]


def _target(request: pytest.FixtureRequest, route: Route) -> Target:
    if route.via_litellm:
        proxy: Process = request.getfixturevalue("litellm_proxy")
        base, model, key = proxy.base_url, real.LITELLM_MODEL, proxy.api_key
    else:
        llama: Process = request.getfixturevalue("llama_server")
        base, model, key = llama.base_url, None, None
    options = {"max_tokens": real.MAX_TOKENS} if route.provider == "anthropic" else {}
    return Target(base + route.path, route.provider, model, key, options)


@pytest.fixture(params=ROUTES, ids=lambda route: route.id)
def target(request: pytest.FixtureRequest) -> Target:
    return _target(request, request.param)


_REFERENCES: dict[str, str] = {}


def reference(
    target: Target, messages: list[dict[str, str]], options: dict[str, Any] | None = None
) -> str:
    """The server's non-streamed answer to the request streamchat sends, with stream off."""
    request = build_request(
        target.url,
        messages,
        model=target.model,
        api_key=target.api_key,
        options=target.options if options is None else options,
    )
    body = {**(request.json or {}), "stream": False}
    body.pop("stream_options", None)
    key = json.dumps([target.url, body], sort_keys=True)
    if key not in _REFERENCES:
        headers = {**request.headers, "Accept": "application/json"}
        response = httpx.post(request.url, headers=headers, json=body, timeout=ANSWER_TIMEOUT)
        assert response.status_code == 200, response.text
        _REFERENCES[key] = _answer_text(target.provider, response.json())
    return _REFERENCES[key]


def _answer_text(provider: str, answer: dict[str, Any]) -> str:
    if provider == "openai":
        return answer["choices"][0]["message"]["content"]
    if provider == "openai-responses":
        return "".join(
            part["text"]
            for item in answer["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        )
    if provider == "anthropic":
        return "".join(block["text"] for block in answer["content"] if block["type"] == "text")
    return answer["content"]  # llama.cpp's native /completion


def test_cli_streams_the_servers_own_answer(target: Target) -> None:
    expected = reference(target, [{"role": "user", "content": PROMPTS[0]}])
    assert expected.strip(), "the model said nothing: the comparison would prove nothing"
    argv = [*CLI, "chat", target.url, PROMPTS[0], "--speed", "0"]
    if "max_tokens" in target.options:  # Anthropic's routes: the CLI's 4096 would run for minutes
        argv += ["--max-tokens", str(target.options["max_tokens"])]
    if target.model:
        argv += ["--model", target.model]
    if target.api_key:
        argv += ["--header", f"Authorization: Bearer {target.api_key}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=ANSWER_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    if target.api_key:
        assert target.api_key not in result.stderr


def test_streamchat_streams_the_servers_own_answers_for_two_turns(target: Target) -> None:
    chat = StreamChat(
        target.url,
        model=target.model,
        api_key=target.api_key,
        options=target.options,
        speed=0,
    )
    history: list[dict[str, str]] = []
    try:
        for prompt in PROMPTS:
            history.append({"role": "user", "content": prompt})
            expected = reference(target, history)
            assert expected.strip(), "the model said nothing: the comparison would prove nothing"
            chat.ask(prompt)
            assert chat.wait(ANSWER_TIMEOUT)
            turn = chat.turns[-1]
            assert turn["status"] == "done", turn
            assert chat.messages[-1] == {"role": "assistant", "content": expected}
            history.append({"role": "assistant", "content": expected})
        assert chat.messages == history
        assert chat.stats.get("output_tokens", 1) > 0
    finally:
        chat.close()


@pytest.fixture(scope="module")
def ai_sdk_on_llama(llama_server: Process, server_logs: Path) -> Iterator[Process]:
    problem = real.missing_ai_sdk()
    require(problem is None, problem or "")
    with real.start_ai_sdk_app(llama_server.base_url + "/v1", server_logs) as app:
        yield app


@pytest.mark.parametrize("route", ["/api/chat", "/api/text"])
def test_ai_sdk_app_on_llama_server_streams_the_models_answer(
    ai_sdk_on_llama: Process, llama_server: Process, route: str
) -> None:
    # The app asks llama-server with temperature 0 and seed 42, as the reference does.
    body = {
        "messages": [{"role": "user", "content": PROMPTS[0]}],
        "temperature": 0,
        "seed": real.SEED,
        "stream": False,
    }
    answer = httpx.post(
        llama_server.base_url + "/v1/chat/completions", json=body, timeout=ANSWER_TIMEOUT
    )
    expected = answer.json()["choices"][0]["message"]["content"]
    assert expected.strip()
    argv = [*CLI, "chat", ai_sdk_on_llama.base_url + route, PROMPTS[0], "--speed", "0"]
    result = subprocess.run(
        [*argv, "--provider", "ai-sdk"], capture_output=True, text=True, timeout=ANSWER_TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
