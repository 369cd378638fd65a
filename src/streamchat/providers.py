"""Provider formats: build the streaming request, then read the stream back as deltas.

Both halves are sans-I/O. `build_request` turns OpenAI-style messages into one
provider's HTTP request (URL, headers, JSON body); `make_parser` returns a
`StreamParser` that turns the decoded events of the answer (SSE `data`, NDJSON
lines, or one whole JSON body) into typed deltas ending in one `Done` or
`StreamError`. The request format comes from the URL path; the response format
from the Content-Type and from the first payload's shape, because many servers
at an OpenAI-looking path answer in another dialect and home-made servers at
any path answer in a known one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ._providers.base import Reader, Sink, excerpt
from ._providers.custom import CustomReader
from ._providers.readers import READERS
from ._providers.registry import (
    CUSTOM,
    MEDIA_TYPES,
    PROVIDERS,
    REGISTRY,
    Provider,
    detect,
    key_variables,
    lookup,
)
from ._secrets import mask_headers, mask_url
from .deltas import (
    Delta,
    Done,
    ErrorKind,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "MEDIA_TYPES",
    "PROVIDERS",
    "ChatRequest",
    "Provider",
    "StreamParser",
    "WireFormat",
    "build_request",
    "detect_provider",
    "key_variables",
    "lookup",
    "make_parser",
    "mask_url",
    "wire_format",
]

WireFormat = Literal["sse", "ndjson", "json", "text"]


@dataclass(frozen=True, slots=True, repr=False)
class ChatRequest:
    """One streaming chat request, ready for any HTTP client.

    `provider` is the resolved format name (never "auto"), which `make_parser`
    needs to read the answer. The repr masks credentials, because requests end
    up in logs, tracebacks and notebook outputs. `withheld_key` names the
    environment variable whose key was not sent because the URL is not its
    provider's host, so that a 401 can say so.
    """

    method: str
    url: str
    headers: dict[str, str]
    json: dict[str, Any] | None
    provider: str
    withheld_key: str | None = None

    def __repr__(self) -> str:
        return (
            f"ChatRequest(method={self.method!r}, url={mask_url(self.url)!r}, "
            f"headers={mask_headers(self.headers)!r}, json={self.json!r},"
            f" provider={self.provider!r})"
        )


def detect_provider(url: str) -> str:
    """The request format implied by the URL's path; "custom" when nothing matches."""
    return detect(url).name


def build_request(
    url: str,
    messages: list[dict[str, Any]],
    *,
    provider: str = "auto",
    model: str | None = None,
    system: str | None = None,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
    max_tokens: int | None = None,
) -> ChatRequest:
    """The streaming request for `messages` ([{"role", "content"}], OpenAI style).

    `max_tokens` caps the answer in whatever field the provider names it.
    `options` are extra top-level body fields in the provider's own terms
    (`temperature`, `max_tokens`, `generationConfig`...); they override the
    defaults and `max_tokens`. `headers` override the built ones, whatever their case.
    """
    spec = detect(url) if provider == "auto" else lookup(provider)
    body = spec.body(messages, system)
    if model and spec.url is None:  # else the model is named in the URL
        body = {"model": model, **body}
    if max_tokens is not None:
        body.update(spec.limit(max_tokens))
    body.update(options or {})
    # A key read from a file keeps its newline; no key has surrounding space.
    explicit = api_key.strip() if api_key else None
    key, withheld = (explicit, None) if explicit else _environment_key(spec, url)
    return ChatRequest(
        method="POST",
        url=spec.url(url, model) if spec.url else url,
        headers=_headers(spec, key, headers or {}),
        json=body,
        provider=spec.name,
        withheld_key=withheld,
    )


def _environment_key(provider: Provider, url: str) -> tuple[str | None, str | None]:
    """(the key to send, the variable withheld): a key only for its own https host."""
    if provider.key is None:
        return None, None
    value = os.environ.get(provider.key.variable, "").strip()
    if not value:
        return None, None
    parts = urlsplit(url)
    if parts.scheme == "https" and (parts.hostname or "").lower() == provider.key.host:
        return value, None
    return None, provider.key.variable


def _headers(provider: Provider, api_key: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    # identity: a compressed stream is buffered by gzip and by proxies, which
    # turns the typewriter into one late burst.
    headers = {
        "Accept": provider.accept,
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
        **dict(provider.headers),
    }
    if api_key:
        headers.update(provider.credentials(api_key))
    for name, value in extra.items():
        for same in [old for old in headers if old.lower() == name.lower()]:
            del headers[same]
        headers[name] = value
    return headers


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def wire_format(provider: str, content_type: str | None) -> WireFormat:
    """How to split the body into payloads: SSE events, NDJSON lines, text, or one JSON document.

    The Content-Type decides when it is specific. A JSON or HTML body is read
    whole: a server that ignored `stream: true`, or an error or login page
    served with status 200, is one document. Otherwise (missing, text/plain,
    octet-stream) the body is "text": framed as its first characters show
    (`streamchat._framing`), unframed text if they look like neither SSE nor NDJSON.
    """
    media = _media_type(content_type)
    if media in MEDIA_TYPES["sse"]:
        return "sse"
    if media in MEDIA_TYPES["ndjson"]:
        return "ndjson"
    if media.endswith(("/json", "+json", "/html")):
        return "json"
    return "text"


def make_parser(
    provider: str, content_type: str | None = None, headers: Mapping[str, str] | None = None
) -> StreamParser:
    """A parser for one answer from `provider` served with `content_type` and `headers`.

    A body framed unlike the provider's own (SSE from an `/api/chat` path, say)
    comes from some other server: the parser then starts as "custom" and sniffs.
    The AI SDK names its protocol in a response header, which wins over the path.
    """
    spec = lookup(provider)
    wire = wire_format(provider, content_type)
    if wire in ("sse", "ndjson") and wire != spec.wire:
        spec = CUSTOM
    signed = (p for p in REGISTRY if p.signature and headers and headers.get(p.signature))
    spec = next(signed, spec)
    return StreamParser(spec.reader(), _media_type(content_type))


class StreamParser:
    """Payloads of one answer in, deltas out; sans-I/O, one instance per answer.

    Feed it each SSE event's data (with the event name) or each NDJSON line, then
    call `end()` when the body ends. The first JSON payload may switch the format:
    a shape that only one format has (`choices`, `response.*` types, Anthropic
    event types, `candidates`, Ollama's `done`) wins over the hint.

    Completion: each format's own marker (`[DONE]`, `message_stop`,
    `response.completed`, `"done": true`). A body that ends cleanly after the
    model said why it stopped (a finish reason) is complete too: that is Gemini's
    only marker, and OpenAI-compatible servers that omit `[DONE]` lose nothing.
    """

    def __init__(self, reader: Reader, media_type: str = "", origin: str | None = None) -> None:
        self._reader = reader
        self._media_type = media_type
        # What the payloads come from, when not an HTTP body ("the Python source").
        self._origin = origin
        self._sink = Sink()
        self._settled = False

    @property
    def done(self) -> bool:
        """Whether `Done` was emitted (the answer is complete, whatever happens next)."""
        return isinstance(self._sink.terminal, Done)

    @property
    def format(self) -> str:
        """The format being read: the hinted one, or the one sniffed from the payloads."""
        return self._reader.name

    def feed(self, data: str, event: str = "message") -> list[Delta]:
        """Read one payload; [] for ignorable ones and for anything after the terminal delta."""
        sink = self._sink
        if sink.terminal is not None or not data:
            # An empty data field is a keep-alive (so is an SSE comment, which never
            # gets here); a token of only whitespace (" ", "\n") is text.
            return []
        if not data.strip():
            self._reader.read_blank(data, event or "message", sink)
        elif "html" in self._media_type:
            sink.fail("protocol", f"expected a stream, got an HTML page: {excerpt(data)}")
        elif data.strip() == "[DONE]":
            # https://platform.openai.com/docs/api-reference/chat-streaming: the end
            # marker; home-made servers copy it.
            sink.complete()
        else:
            self._read(data, event or "message")
        return sink.take()

    def feed_text(self, text: str) -> list[Delta]:
        """Read a piece of an unframed text body: it is answer text, whatever it looks like."""
        sink = self._sink
        if sink.terminal is None:
            if not self._settled:
                self._reader, self._settled = CustomReader(), True
            sink.text(text)
        return sink.take()

    def feed_object(self, payload: object) -> list[Delta]:
        """Read one payload already decoded: an SDK's chunk or event object as a dict."""
        if self._sink.terminal is None:
            if not self._settled and not self._sink.content:
                self._sniff(payload)
            data = "" if isinstance(payload, dict) else repr(payload)  # for error messages
            self._reader.read(payload, data, "message", self._sink)
        return self._sink.take()

    def feed_delta(self, delta: Delta) -> list[Delta]:
        """Take a delta a Python source made itself (reasoning, a tool call, usage, the end)."""
        sink = self._sink
        if sink.terminal is not None:
            return []
        if isinstance(delta, TextDelta):
            sink.text(delta.text)
        elif isinstance(delta, ReasoningDelta):
            sink.reasoning(delta.text)
        elif isinstance(delta, ToolCallDelta):
            sink.tool(delta.index, delta.id, delta.name, delta.arguments or None)
        elif isinstance(delta, Usage):
            sink.count(delta.input_tokens, delta.output_tokens, delta.reasoning_tokens)
        elif isinstance(delta, Done):
            sink.complete(delta.finish_reason)
        else:
            sink.fail(delta.kind, delta.message, delta.status)
        return sink.take()

    def fail(self, kind: ErrorKind, message: str, status: int | None = None) -> list[Delta]:
        """End the answer with an error found outside the payloads (the source raised)."""
        self._sink.fail(kind, message, status)
        return self._sink.take()

    def _read(self, data: str, event: str) -> None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as error:
            several = "\n" in data.strip()
            if error.msg == "Extra data" and several and self._media_type.endswith("json"):
                self._read_lines(data, event)
                return
            payload = None
        except RecursionError:  # absurdly deep nesting: not a payload we can read
            payload = None
        if not self._settled and not self._sink.content:
            self._sniff(payload)
        self._reader.read(payload, data, event, self._sink)

    def _read_lines(self, data: str, event: str) -> None:
        """A "JSON" body that is really NDJSON (a common server mislabelling)."""
        for line in data.splitlines():
            if line.strip() and self._sink.terminal is None:
                self._read(line, event)

    def _sniff(self, payload: object) -> None:
        sample = payload[0] if isinstance(payload, list) and payload else payload
        if not isinstance(sample, dict):
            return
        if self._reader.claims(sample):
            self._settled = True
            return
        found = next((reader for reader in READERS if reader.claims(sample)), None)
        if found is not None:
            self._reader = found()
            self._settled = True

    def end(self, clean: bool = True) -> list[Delta]:
        """The body ended (`clean`: no transport error): the terminal delta if none was sent."""
        sink = self._sink
        if sink.terminal is None:
            problem = self._reader.unexplained(sink) if clean else None
            if problem:
                sink.fail("protocol", problem)
            elif clean and sink.reason is not None:
                sink.complete()
            elif clean and self._reader.ends_on_clean_close:
                if sink.content:
                    sink.complete()
                else:
                    sink.fail("protocol", self._no_answer())
            else:
                how = "ended" if clean else "broke off"
                sink.fail(
                    "incomplete",
                    f"the {self._reader.name} stream {how} before its completion marker"
                    f" ({self._reader.marker}): the answer may be cut short",
                )
        return sink.take()

    def _no_answer(self) -> str:
        if self._origin:
            return f"{self._origin} gave no answer (no text, reasoning or tool call)"
        served = f"a {self._media_type} body" if self._media_type else "a body without Content-Type"
        return (
            f"the server sent {served} with no answer in it: expected SSE events, NDJSON"
            " lines or plain text"
        )
