"""The provider registry: every wire format streamchat speaks, each declared once.

A `Provider` holds all that differs from one API to the next: the URL path that
implies it, its request body and answer-length field, the framing of its answer
(and so the media types it is served with), the reader of its payloads, the
environment variable of its key, the only host that key goes to, and the header
that carries it. The request builder (`streamchat.providers`), the transport, the
doctor, the error explanations (`streamchat._explain`) and the CLI read this table;
no other module keys anything by a provider's name.

It imports nothing that does I/O, so `streamchat._secrets` can read `key_variables()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from . import bodies
from .ai_sdk import AiSdkReader
from .anthropic import AnthropicReader
from .base import Reader
from .custom import CustomReader
from .gemini import GeminiReader
from .ollama import OllamaReader
from .openai_chat import OpenAIChatReader
from .responses import ResponsesReader

__all__ = [
    "CUSTOM",
    "MEDIA_TYPES",
    "PROVIDERS",
    "REGISTRY",
    "Key",
    "Provider",
    "Wire",
    "detect",
    "key_variables",
    "lookup",
]

# How a provider frames its answer: SSE events or NDJSON lines.
Wire = Literal["sse", "ndjson"]

# The media types each framing is served with, the one to ask for (and advise) first.
# The transport frames a body by them (`providers.wire_format`) and the doctor
# judges a stream's Content-Type by the same lists. "plain" is unframed text
# (FastAPI's StreamingResponse, the AI SDK's text stream): the transport reads any
# text/plain body by its first characters, the doctor expects text/plain for it.
MEDIA_TYPES: Mapping[str, tuple[str, ...]] = {
    # https://html.spec.whatwg.org/multipage/server-sent-events.html#text/event-stream
    "sse": ("text/event-stream",),
    # NDJSON has no registered type; these are the names servers use for it.
    "ndjson": (
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/x-json-stream",
        "application/stream+json",
    ),
    "plain": ("text/plain",),
}


@dataclass(frozen=True, slots=True)
class Key:
    """An API key the environment may hold, and the one host it is sent to, over https.

    A local vLLM, a colleague's server or a proxy at an OpenAI-looking path never
    receives OPENAI_API_KEY unasked (it must be passed explicitly).
    """

    variable: str
    host: str


@dataclass(frozen=True, slots=True)
class Provider:
    """One wire format: how to ask for a streamed answer and how to read it back.

    `credential` is the header that carries a key ("Authorization" sends it as a
    Bearer token); `headers` are sent with every request; `url`, when set, puts the
    model into the URL instead of the body (Gemini). `signature` is a response
    header that names this format whatever the URL's path (the AI SDK's).
    """

    name: str
    reader: type[Reader]
    body: bodies.BodyBuilder
    path: re.Pattern[str] | None = None
    wire: Wire = "sse"
    limit: Callable[[int], bodies.Body] = bodies.max_tokens
    key: Key | None = None
    credential: str = "Authorization"
    headers: tuple[tuple[str, str], ...] = ()
    url: Callable[[str, str | None], str] | None = None
    signature: str | None = None

    @property
    def accept(self) -> str:
        """The media type to ask for: the first of its framing's."""
        return MEDIA_TYPES[self.wire][0]

    def credentials(self, key: str) -> dict[str, str]:
        """The header that sends `key` the way this provider expects it."""
        value = f"Bearer {key}" if self.credential == "Authorization" else key
        return {self.credential: value}


_OPENAI_KEY = Key("OPENAI_API_KEY", "api.openai.com")

# Endpoint paths as the providers document them; OpenAI-compatible servers (vLLM,
# llama.cpp, LM Studio, Azure, OpenRouter...) keep the same suffixes. The first
# provider whose path matches is the URL's; "custom" when none does.
REGISTRY: tuple[Provider, ...] = (
    Provider(
        "openai",
        OpenAIChatReader,
        bodies.openai,
        path=re.compile(r"/chat/completions$"),
        key=_OPENAI_KEY,
    ),
    Provider(
        "openai-responses",
        ResponsesReader,
        bodies.responses,
        path=re.compile(r"/responses$"),
        limit=bodies.max_output_tokens,
        key=_OPENAI_KEY,
    ),
    Provider(
        "anthropic",
        AnthropicReader,
        bodies.anthropic,
        path=re.compile(r"/v1/messages$"),
        key=Key("ANTHROPIC_API_KEY", "api.anthropic.com"),
        credential="x-api-key",
        # https://docs.anthropic.com/en/api/versioning
        headers=(("anthropic-version", "2023-06-01"),),
    ),
    Provider(
        "gemini",
        GeminiReader,
        bodies.gemini,
        path=re.compile(r":(stream)?generateContent$", re.IGNORECASE),
        limit=bodies.generation_config,
        key=Key("GEMINI_API_KEY", "generativelanguage.googleapis.com"),
        credential="x-goog-api-key",
        url=bodies.gemini_url,
    ),
    Provider(
        "ollama-chat",
        OllamaReader,
        bodies.ollama_chat,
        path=re.compile(r"/api/chat$"),
        wire="ndjson",
        limit=bodies.num_predict,
    ),
    Provider(
        "ollama-generate",
        OllamaReader,
        bodies.ollama_generate,
        path=re.compile(r"/api/generate$"),
        wire="ndjson",
        limit=bodies.num_predict,
    ),
    # https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol: toUIMessageStreamResponse()
    # sets the header; its stock route is /api/chat, Ollama's path.
    Provider("ai-sdk", AiSdkReader, bodies.ai_sdk, signature="x-vercel-ai-ui-message-stream"),
    Provider("custom", CustomReader, bodies.custom),
)

_BY_NAME: Mapping[str, Provider] = {provider.name: provider for provider in REGISTRY}
PROVIDERS: tuple[str, ...] = tuple(_BY_NAME)
# Home-made servers: the URL's format when no path matches, and the answer's when
# its framing is not the expected provider's.
CUSTOM = _BY_NAME["custom"]


def lookup(name: str) -> Provider:
    """The provider called `name`; ValueError naming the choices when there is none."""
    provider = _BY_NAME.get(name)
    if provider is None:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    return provider


def detect(url: str) -> Provider:
    """The provider a URL's path implies; `CUSTOM` when none does."""
    path = urlsplit(url).path.rstrip("/")
    return next(
        (provider for provider in REGISTRY if provider.path and provider.path.search(path)),
        CUSTOM,
    )


def key_variables() -> tuple[str, ...]:
    """The environment variables that may hold a provider's API key, each once."""
    return tuple(dict.fromkeys(p.key.variable for p in REGISTRY if p.key is not None))
