"""Keys quoted back through a Python source never reach the chat, whatever the SDK keeps.

A real FastAPI server on 127.0.0.1 answers every request with a 401 that quotes the
bare key it was sent, as LiteLLM's proxy does ("Received API Key = sk-..."). The
clients are the real openai SDK and litellm, used as Python sources of a `StreamChat`:
the key must not reach the turn's state, the saved static copy, the transcript or the
logs. The openai SDK (3.x) adds its `Authorization` header only as it sends, so
the request on its error holds no key: the redaction must not depend on it.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from streamchat.widget import StreamChat

from conftest import require

# Shaped like OpenAI's and Anthropic's keys; and one a proxy admin chose, shaped like nothing.
OPENAI_KEY = "sk-proj-Zq3vT8kLm2Wn5Rb7Yc1Xd4Fg6Hj9Kp0Qs"
ANTHROPIC_KEY = "sk-ant-api03-Hq7Lm2Vn4Bc8Xz1Wk5Jd9Rt3Yp6Fs0Ga"
PLAIN_KEY = "proxy-master-7f3a9c2e41b8"


try:  # test extras
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError:  # the fixture says so
    FastAPI = None  # type: ignore[assignment,misc]


def refusing_app() -> Any:
    """A FastAPI app whose 401 quotes the key it was sent, as LiteLLM's proxy does."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def refuse(request: Request) -> JSONResponse:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        message = f"Invalid proxy server token passed. Received API Key = {sent}"
        body = {"error": {"message": message, "type": "auth_error"}}
        return JSONResponse(body, status_code=401)

    return app


@pytest.fixture(scope="module")
def echoing() -> Iterator[str]:
    """The base URL of `refusing_app` under uvicorn on 127.0.0.1."""
    require(FastAPI is not None, "the echoing server needs fastapi: pip install -e '.[test]'")
    from servers.homemade import Uvicorn

    with Uvicorn(refusing_app()) as server:
        yield server.base_url


def sdk(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        require(False, f"the {module} package is a test dependency")


def everything_saved(chat: StreamChat) -> str:
    """All the chat lets out: synced state, the saved static copy, the transcript."""
    state = json.dumps(chat.get_state(), default=str)
    bundle = json.dumps(chat._repr_mimebundle_(), default=str)
    return "\n".join([state, bundle, chat.transcript])


def ask(chats: list[StreamChat], source: object) -> StreamChat:
    chat = StreamChat(source, speed=0)
    chats.append(chat)
    chat.ask("Hi")
    assert chat.wait(30)
    assert chat.turns[-1]["status"] == "error"
    return chat


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_openai_sdk_key_quoted_in_a_401_is_masked(chats, echoing: str, logs) -> None:
    openai = sdk("openai")
    client = openai.OpenAI(base_url=echoing + "/v1", api_key=OPENAI_KEY, max_retries=0)

    def answer(messages: list[dict[str, str]]) -> object:
        return client.chat.completions.create(model="m", messages=messages, stream=True)

    chat = ask(chats, answer)
    error = chat.turns[-1]["error"]
    assert "Received API Key = [redacted]" in error  # the message stays useful
    assert OPENAI_KEY not in everything_saved(chat)
    assert OPENAI_KEY[:12] not in everything_saved(chat) + logs.text


def test_a_key_from_the_environment_is_masked_whatever_its_shape(
    chats, echoing: str, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK reads OPENAI_API_KEY itself; streamchat never saw the key, only the variable."""
    openai = sdk("openai")
    monkeypatch.setenv("OPENAI_API_KEY", PLAIN_KEY)
    client = openai.OpenAI(base_url=echoing + "/v1", max_retries=0)

    def answer(messages: list[dict[str, str]]) -> object:
        return client.chat.completions.create(model="m", messages=messages, stream=True)

    chat = ask(chats, answer)
    assert "Received API Key = [redacted]" in chat.turns[-1]["error"]
    assert PLAIN_KEY not in everything_saved(chat) + logs.text


@pytest.mark.slow
def test_litellm_key_quoted_in_a_401_is_masked(
    chats, echoing: str, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline: litellm would otherwise try to download its model price list on import.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = sdk("litellm")

    def answer(messages: list[dict[str, str]]) -> object:
        return litellm.completion(
            model="openai/m",
            api_base=echoing + "/v1",
            api_key=ANTHROPIC_KEY,
            messages=messages,
            stream=True,
            num_retries=0,
        )

    chat = ask(chats, answer)
    assert "[redacted]" in chat.turns[-1]["error"]
    assert ANTHROPIC_KEY[:14] not in everything_saved(chat) + logs.text


def test_a_key_in_the_users_own_exception_is_masked(
    chats, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLAIN_KEY)
    google = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        yield "Partial answer"
        raise RuntimeError(f"login failed with {PLAIN_KEY}, then {OPENAI_KEY}, then {google}")

    chat = ask(chats, answer)
    error = chat.turns[-1]["error"]
    assert error.endswith(
        "RuntimeError: login failed with [redacted], then [redacted], then [redacted]"
    )
    saved = everything_saved(chat) + logs.text
    for key in (PLAIN_KEY, OPENAI_KEY, google):
        assert key not in saved
    assert chat.messages[-1]["content"] == "Partial answer"  # the partial answer stays
