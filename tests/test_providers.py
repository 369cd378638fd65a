"""Request building: URL detection, headers, credentials, bodies, and the masked repr."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamchat
from streamchat.providers import (
    PROVIDERS,
    ChatRequest,
    build_request,
    detect_provider,
    key_variables,
    make_parser,
    wire_format,
)

SECRET = "sk-secret-0123456789abcdef"
KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "Hi! 👋"},
    {"role": "user", "content": "What is SSE?"},
]
GEMINI_URL = "https://gen.example/v1beta/models/gemini-2.5-flash:streamGenerateContent"


@pytest.fixture(autouse=True)
def no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own keys must not leak into (or satisfy) these tests."""
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.openai.com/v1/chat/completions", "openai"),
        ("http://localhost:8000/v1/chat/completions/", "openai"),
        (
            "https://x.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=1",
            "openai",
        ),
        ("https://api.openai.com/v1/responses", "openai-responses"),
        ("https://api.anthropic.com/v1/messages", "anthropic"),
        (GEMINI_URL + "?alt=sse", "gemini"),
        ("https://gen.example/v1beta/models/gemini-pro:generateContent", "gemini"),
        ("http://localhost:11434/api/chat", "ollama-chat"),
        ("http://localhost:11434/api/generate", "ollama-generate"),
        ("http://localhost:3000/stream", "custom"),
        ("http://localhost:3000/api/messages", "custom"),
        ("http://localhost:3000/", "custom"),
    ],
)
def test_detect_provider_from_path(url: str, provider: str) -> None:
    assert detect_provider(url) == provider
    assert build_request(url, CHAT).provider == provider


def test_openai_request() -> None:
    request = build_request(
        "https://api.openai.com/v1/chat/completions",
        CHAT[1:],
        model="gpt-4o-mini",
        system="Answer in Markdown.",
        api_key=SECRET,
    )
    assert request.method == "POST"
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.provider == "openai"
    assert request.headers == {
        "Accept": "text/event-stream",
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {SECRET}",
    }
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Answer in Markdown."}, *CHAT[1:]],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_responses_request_moves_system_to_instructions() -> None:
    request = build_request(
        "https://api.openai.com/v1/responses", CHAT, model="o4-mini", system="Think.", api_key="k"
    )
    assert request.provider == "openai-responses"
    assert request.headers["Authorization"] == "Bearer k"
    assert request.json == {
        "model": "o4-mini",
        "input": [{"type": "message", **message} for message in CHAT[1:]],
        "stream": True,
        "instructions": "Think.\n\nBe brief.",
    }


def test_anthropic_request() -> None:
    request = build_request(
        "https://api.anthropic.com/v1/messages", CHAT, model="claude-sonnet-4-5", api_key=SECRET
    )
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    assert request.headers["Accept"] == "text/event-stream"
    assert request.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": CHAT[1:],
        "stream": True,
        "system": "Be brief.",
    }


def test_anthropic_max_tokens_can_be_overridden() -> None:
    request = build_request(
        "https://api.anthropic.com/v1/messages", CHAT[1:2], options={"max_tokens": 100}
    )
    assert request.json is not None
    assert request.json["max_tokens"] == 100
    assert "system" not in request.json


def test_gemini_request() -> None:
    request = build_request(GEMINI_URL, CHAT, api_key=SECRET, options={"generationConfig": {}})
    assert request.url == GEMINI_URL + "?alt=sse"
    assert request.headers["x-goog-api-key"] == SECRET
    assert request.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "你好"}]},
            {"role": "model", "parts": [{"text": "Hi! 👋"}]},
            {"role": "user", "parts": [{"text": "What is SSE?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {},
    }


def test_gemini_url_takes_the_model_and_keeps_an_explicit_alt() -> None:
    request = build_request(GEMINI_URL + "?alt=sse&x=1", CHAT[1:2], model="models/gemini-2.5-pro")
    assert request.url == (
        "https://gen.example/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&x=1"
    )
    assert request.json is not None
    assert "model" not in request.json
    whole = build_request("https://g.example/v1/models/m:generateContent", CHAT[1:2])
    assert whole.url == "https://g.example/v1/models/m:generateContent"


def test_ollama_chat_request() -> None:
    request = build_request(
        "http://localhost:11434/api/chat", CHAT[1:], model="qwen3", system="Be kind."
    )
    assert request.headers == {
        "Accept": "application/x-ndjson",
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
    }
    assert request.json == {
        "model": "qwen3",
        "messages": [
            {**message, "parts": [{"type": "text", "text": message["content"]}]}
            for message in [{"role": "system", "content": "Be kind."}, *CHAT[1:]]
        ],
        "stream": True,
    }


def test_ollama_generate_request_sends_the_last_prompt() -> None:
    request = build_request("http://localhost:11434/api/generate", CHAT, model="llama3.2")
    assert request.headers["Accept"] == "application/x-ndjson"
    assert request.json == {
        "model": "llama3.2",
        "prompt": "What is SSE?",
        "stream": True,
        "system": "Be brief.",
    }


def test_custom_request_sends_history_and_prompt() -> None:
    request = build_request("http://localhost:3000/stream", CHAT[1:], model="m1")
    assert request.json == {
        "model": "m1",
        "messages": CHAT[1:],
        "prompt": "What is SSE?",
        "stream": True,
    }
    without_model = build_request("http://localhost:3000/stream", [])
    assert without_model.json == {"messages": [], "prompt": "", "stream": True}


@pytest.mark.parametrize(
    ("url", "variable", "header", "value"),
    [
        (
            "https://api.openai.com/v1/chat/completions",
            "OPENAI_API_KEY",
            "Authorization",
            "Bearer e",
        ),
        ("https://api.openai.com/v1/responses", "OPENAI_API_KEY", "Authorization", "Bearer e"),
        ("https://api.anthropic.com/v1/messages", "ANTHROPIC_API_KEY", "x-api-key", "e"),
        (
            GEMINI_URL.replace("gen.example", "generativelanguage.googleapis.com"),
            "GEMINI_API_KEY",
            "x-goog-api-key",
            "e",
        ),
    ],
)
def test_key_falls_back_to_the_providers_variable(
    monkeypatch: pytest.MonkeyPatch, url: str, variable: str, header: str, value: str
) -> None:
    assert header not in build_request(url, CHAT).headers
    monkeypatch.setenv(variable, "e")
    assert build_request(url, CHAT).headers[header] == value
    explicit = build_request(url, CHAT, api_key="given").headers[header]
    assert explicit == value[: -len("e")] + "given"


@pytest.mark.parametrize(
    "url",
    ["http://localhost:3000/stream", "http://localhost:11434/api/chat", GEMINI_URL],
)
def test_other_providers_keys_are_never_sent(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    request = build_request(url, CHAT)
    assert SECRET not in str(request.headers.values())


@pytest.mark.parametrize(
    ("url", "variable"),
    [
        ("http://127.0.0.1:8000/v1/chat/completions", "OPENAI_API_KEY"),  # a local vLLM
        ("https://llm.colleague.example/v1/chat/completions", "OPENAI_API_KEY"),
        ("http://api.openai.com/v1/chat/completions", "OPENAI_API_KEY"),  # plain http
        ("https://api.openai.com.evil.example/v1/responses", "OPENAI_API_KEY"),
        ("https://proxy.example/v1/messages", "ANTHROPIC_API_KEY"),
        (GEMINI_URL, "GEMINI_API_KEY"),
    ],
)
def test_environment_keys_go_only_to_their_providers_host_over_https(
    monkeypatch: pytest.MonkeyPatch, url: str, variable: str
) -> None:
    monkeypatch.setenv(variable, SECRET)
    request = build_request(url, CHAT)
    assert SECRET not in repr(request.headers) and SECRET not in request.url
    assert request.withheld_key == variable
    explicit = build_request(url, CHAT, api_key=SECRET)
    assert SECRET in str(explicit.headers.values())
    assert explicit.withheld_key is None


def test_a_key_read_from_a_file_loses_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://api.openai.com/v1/chat/completions"
    assert build_request(url, CHAT, api_key=SECRET + "\n").headers["Authorization"] == (
        f"Bearer {SECRET}"
    )
    monkeypatch.setenv("OPENAI_API_KEY", f" {SECRET}\r\n")
    assert build_request(url, CHAT).headers["Authorization"] == f"Bearer {SECRET}"


def test_explicit_key_for_custom_and_ollama_is_a_bearer_token() -> None:
    for url in ("http://localhost:3000/stream", "http://localhost:11434/api/chat"):
        assert build_request(url, CHAT, api_key="t").headers["Authorization"] == "Bearer t"


def test_extra_headers_override_whatever_their_case() -> None:
    request = build_request(
        "https://api.openai.com/v1/chat/completions",
        CHAT,
        api_key=SECRET,
        headers={"authorization": "Token abc", "X-Title": "streamchat", "accept": "*/*"},
    )
    assert request.headers == {
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
        "authorization": "Token abc",
        "X-Title": "streamchat",
        "accept": "*/*",
    }


def test_options_are_merged_last() -> None:
    request = build_request(
        "http://localhost:8000/v1/chat/completions",
        CHAT,
        options={"temperature": 0.2, "stream_options": {"include_usage": False}},
    )
    assert request.json is not None
    assert request.json["temperature"] == 0.2
    assert request.json["stream_options"] == {"include_usage": False}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_explicit_provider_wins_over_the_path(provider: str) -> None:
    request = build_request("http://localhost:9/anything", CHAT, provider=provider)
    assert request.provider == provider


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown provider 'openia'"):
        build_request("http://localhost:9/x", CHAT, provider="openia")
    with pytest.raises(ValueError, match="unknown provider"):
        make_parser("auto")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.openai.com/v1/chat/completions",
        "https://api.anthropic.com/v1/messages",
        GEMINI_URL,
        "http://localhost:3000/stream",
    ],
)
def test_repr_never_shows_the_key(url: str) -> None:
    request = build_request(url, CHAT, api_key=SECRET)
    assert SECRET in str(request.headers)
    assert SECRET not in repr(request)
    assert SECRET not in str(request)
    assert f"provider={request.provider!r}" in repr(request)
    assert "***" in repr(request)


def test_repr_masks_other_credentials_and_keys_in_the_url() -> None:
    request = ChatRequest(
        "POST",
        f"https://g.example/v1/models/m:streamGenerateContent?alt=sse&key={SECRET}",
        {"Cookie": f"session={SECRET}", "api-key": SECRET, "Authorization": SECRET},
        None,
        "gemini",
    )
    text = repr(request)
    assert SECRET not in text
    assert "alt=sse&key=***" in text
    assert "'Authorization': '***'" in text


def test_request_is_immutable() -> None:
    request = build_request("http://localhost:3000/stream", CHAT)
    with pytest.raises(AttributeError):
        request.url = "http://elsewhere/"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("provider", "content_type", "wire"),
    [
        ("openai", "text/event-stream; charset=utf-8", "sse"),
        ("openai", None, "text"),
        ("openai", "text/plain", "text"),
        ("ollama-chat", None, "text"),
        ("ollama-chat", "application/x-ndjson", "ndjson"),
        ("ollama-generate", "text/event-stream", "sse"),
        ("custom", "application/jsonl", "ndjson"),
        ("openai", "application/json", "json"),
        ("ollama-chat", "application/json; charset=utf-8", "json"),
        ("gemini", "application/problem+json", "json"),
        ("openai", "text/html; charset=UTF-8", "json"),
    ],
)
def test_wire_format(provider: str, content_type: str | None, wire: str) -> None:
    assert wire_format(provider, content_type) == wire


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("http://h/v1/chat/completions", {"max_tokens": 5}),
        ("http://h/v1/messages", {"max_tokens": 5}),
        ("http://h/v1/responses", {"max_output_tokens": 5}),
        ("http://h/api/chat", {"options": {"num_predict": 5}}),
        ("http://h/api/generate", {"options": {"num_predict": 5}}),
        ("http://h/stream", {"max_tokens": 5}),
    ],
)
def test_max_tokens_goes_in_the_providers_own_field(url: str, field: dict) -> None:
    body = build_request(url, [{"role": "user", "content": "q"}], max_tokens=5).json or {}
    assert {key: body[key] for key in field} == field
    assert ("max_tokens" in body) == ("max_tokens" in field)


def test_gemini_max_tokens_and_options() -> None:
    url = "https://generativelanguage.googleapis.com/v1beta/models/m:streamGenerateContent"
    request = build_request(url, [{"role": "user", "content": "q"}], max_tokens=5)
    assert (request.json or {})["generationConfig"] == {"maxOutputTokens": 5}
    options = {"generationConfig": {"temperature": 0}}
    request = build_request(url, [{"role": "user", "content": "q"}], max_tokens=5, options=options)
    assert (request.json or {})["generationConfig"] == {"temperature": 0}  # options win


def test_key_variables_are_every_providers_once() -> None:
    """The list the secret redaction reads: each variable once, in the registry's order."""
    assert key_variables() == KEY_VARIABLES


REGISTRY_MODULE = Path(streamchat.__file__).parent / "_providers" / "registry.py"


def _keyed_names(tree: ast.AST) -> list[str]:
    """Provider names used as a table's keys or compared against (a branch on a name)."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            found += [key for key in node.keys if key is not None]
        elif isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += operand.elts if isinstance(operand, ast.Tuple | ast.Set) else [operand]
    return [
        node.value for node in found if isinstance(node, ast.Constant) and node.value in PROVIDERS
    ]


def test_provider_names_are_table_keys_in_the_registry_only() -> None:
    """One provider registry: no other module keeps a table of providers or branches on one."""
    package = REGISTRY_MODULE.parent.parent
    keyed = {
        str(path.relative_to(package)): names
        for path in sorted(package.rglob("*.py"))
        if path != REGISTRY_MODULE
        and (names := _keyed_names(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert keyed == {}
    declared = [
        node.args[0].value
        for node in ast.walk(ast.parse(REGISTRY_MODULE.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Provider"
        and isinstance(node.args[0], ast.Constant)
    ]
    assert declared == list(PROVIDERS)  # each declared once, there
