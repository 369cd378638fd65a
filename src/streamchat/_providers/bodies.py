"""Requests: the caller's OpenAI-style messages in each provider's own shape.

One builder per format (`registry` says which provider uses which), the fields
that cap an answer's length, and Gemini's URL, which names the model and the framing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Body",
    "BodyBuilder",
    "Messages",
    "ai_sdk",
    "anthropic",
    "custom",
    "gemini",
    "gemini_url",
    "generation_config",
    "max_output_tokens",
    "max_tokens",
    "num_predict",
    "ollama_chat",
    "ollama_generate",
    "openai",
    "responses",
]

Messages = list[dict[str, Any]]
Body = dict[str, Any]
# (messages, system prompt) -> the JSON body
BodyBuilder = Callable[[Messages, str | None], Body]

# "developer" is the newer OpenAI name for the system role.
_SYSTEM_ROLES = frozenset({"system", "developer"})


def _split_system(messages: Messages, system: str | None) -> tuple[str | None, Messages]:
    """One system text (the argument first, then system messages) and the other messages.

    Anthropic, Gemini, the Responses API and Ollama's generate take the system
    prompt as a separate field, not as a message.
    """
    parts = [system] if system else []
    parts += [str(m.get("content", "")) for m in messages if m.get("role") in _SYSTEM_ROLES]
    rest = [m for m in messages if m.get("role") not in _SYSTEM_ROLES]
    return "\n\n".join(parts) or None, rest


def _with_system(messages: Messages, system: str | None) -> Messages:
    return [{"role": "system", "content": system}, *messages] if system else list(messages)


def _last_user(messages: Messages) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def openai(messages: Messages, system: str | None) -> Body:
    # https://platform.openai.com/docs/api-reference/chat/create#chat-create-stream_options
    # include_usage adds a last chunk with token counts and empty `choices`.
    return {
        "messages": _with_system(messages, system),
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def responses(messages: Messages, system: str | None) -> Body:
    # https://platform.openai.com/docs/api-reference/responses/create
    # Each input item says `"type": "message"`: OpenAI infers it, llama.cpp (directly
    # or behind LiteLLM) answers 400 without it from the second turn on.
    instructions, rest = _split_system(messages, system)
    items = [{"type": "message", **message} for message in rest]
    body: Body = {"input": items, "stream": True}
    if instructions:
        body["instructions"] = instructions
    return body


def anthropic(messages: Messages, system: str | None) -> Body:
    # https://docs.anthropic.com/en/api/messages: max_tokens is required, and the
    # system prompt is a top-level field (a "system" message is rejected).
    instructions, rest = _split_system(messages, system)
    body: Body = {"max_tokens": 4096, "messages": rest, "stream": True}
    if instructions:
        body["system"] = instructions
    return body


def gemini(messages: Messages, system: str | None) -> Body:
    # https://ai.google.dev/api/generate-content#request-body: roles are user and model;
    # streaming is chosen by the URL (streamGenerateContent), not by the body.
    instructions, rest = _split_system(messages, system)
    contents = [
        {
            "role": "model" if m.get("role") == "assistant" else "user",
            "parts": [{"text": m.get("content", "")}],
        }
        for m in rest
    ]
    body: Body = {"contents": contents}
    if instructions:
        body["systemInstruction"] = {"parts": [{"text": instructions}]}
    return body


def ollama_chat(messages: Messages, system: str | None) -> Body:
    # https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
    # `/api/chat` is also the AI SDK's stock route, which reads each message's
    # `parts`; Ollama ignores fields it does not know, so one body serves both, and
    # the answer's framing (NDJSON or the AI SDK's header) tells them apart.
    history = _with_system(messages, system)
    return {
        "messages": [{**message, "parts": _parts(message)} for message in history],
        "stream": True,
    }


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": str(message.get("content", ""))}]


def ai_sdk(messages: Messages, system: str | None) -> Body:
    # The request of the AI SDK's `useChat` (DefaultChatTransport): UIMessages with
    # `parts`, which the stock route passes to convertToModelMessages().
    # https://ai-sdk.dev/docs/reference/ai-sdk-core/ui-message
    history = _with_system(messages, system)
    return {
        "id": "streamchat",
        "messages": [
            {"id": f"m{number}", "role": message.get("role"), "parts": _parts(message)}
            for number, message in enumerate(history, 1)
        ],
        "trigger": "submit-message",
    }


def ollama_generate(messages: Messages, system: str | None) -> Body:
    # https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-completion:
    # one prompt, no history.
    instructions, rest = _split_system(messages, system)
    body: Body = {"prompt": _last_user(rest), "stream": True}
    if instructions:
        body["system"] = instructions
    return body


def custom(messages: Messages, system: str | None) -> Body:
    # Home-made servers read either the history or just the prompt: send both.
    return {
        "messages": _with_system(messages, system),
        "prompt": _last_user(messages),
        "stream": True,
    }


# The field that caps the answer's tokens, in each provider's own terms.
# Home-made servers and the AI SDK have no standard field: they get max_tokens.


def max_tokens(tokens: int) -> Body:
    """https://platform.openai.com/docs/api-reference/chat/create (max_tokens),
    https://docs.anthropic.com/en/api/messages (max_tokens)."""
    return {"max_tokens": tokens}


def max_output_tokens(tokens: int) -> Body:
    """https://platform.openai.com/docs/api-reference/responses/create (max_output_tokens)."""
    return {"max_output_tokens": tokens}


def generation_config(tokens: int) -> Body:
    """https://ai.google.dev/api/generate-content#generationconfig (maxOutputTokens)."""
    return {"generationConfig": {"maxOutputTokens": tokens}}


def num_predict(tokens: int) -> Body:
    """https://github.com/ollama/ollama/blob/main/docs/modelfile.md#parameter (num_predict)."""
    return {"options": {"num_predict": tokens}}


def gemini_url(url: str, model: str | None) -> str:
    """Put `model` into the path, and ask for SSE (without `alt=sse` the answer is one array).

    https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
    """
    parts = urlsplit(url)
    path = parts.path
    if model:
        name = model.removeprefix("models/")
        path = re.sub(r"(/models/)[^/:]+(?=:)", lambda match: match.group(1) + name, path)
    query = parts.query
    names = {param.partition("=")[0] for param in query.split("&")}
    if path.endswith(":streamGenerateContent") and "alt" not in names:
        query = f"{query}&alt=sse" if query else "alt=sse"
    return urlunsplit(parts._replace(path=path, query=query))
