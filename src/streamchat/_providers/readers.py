"""Per-format readers: one decoded payload in, deltas out through a shared `Sink`.

Readers only say what they found in a payload (text, reasoning, a tool-call
fragment, token counts, a finish reason, an error). The rules every format
shares live once, in `Sink` and in `streamchat.providers.StreamParser`: the
`[DONE]` marker, JSON decoding, format sniffing, usage sent once just before
the terminal delta, and exactly one terminal delta per stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from ..deltas import (
    Delta,
    Done,
    ErrorKind,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)

__all__ = ["READERS", "Reader", "Sink", "excerpt"]


def excerpt(data: str, limit: int = 80) -> str:
    """A short, single-line, quoted sample of a payload for error messages."""
    flat = " ".join(data.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sum(*values: object) -> int | None:
    counts = [count for count in map(_int, values) if count is not None]
    return sum(counts) if counts else None


def _arguments(value: object) -> str:
    """Tool arguments as JSON text: streamed formats send text, whole ones an object."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False)


class Sink:
    """The deltas of the payload being read, and the state of the whole stream.

    Its methods take whatever a payload holds (`object`): a field of the wrong type
    is skipped instead of raising, so a quirky server costs a field, not the answer.
    """

    def __init__(self) -> None:
        self.out: list[Delta] = []
        self.usage: Usage | None = None
        self.reason: str | None = None
        self.terminal: Done | StreamError | None = None
        # Whether any answer content (text, reasoning, tool call) was delivered.
        self.content = False

    def take(self) -> list[Delta]:
        out, self.out = self.out, []
        return out

    def text(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.out.append(TextDelta(value))
            self.content = True

    def reasoning(self, value: object) -> None:
        if isinstance(value, str) and value:
            self.out.append(ReasoningDelta(value))
            self.content = True

    def tool(
        self, index: object, call_id: object = None, name: object = None, arguments: object = None
    ) -> None:
        delta = ToolCallDelta(_int(index) or 0, _str(call_id), _str(name), _arguments(arguments))
        if delta.id or delta.name or delta.arguments:
            self.out.append(delta)
            self.content = True

    def count(
        self, input_tokens: object = None, output_tokens: object = None, reasoning: object = None
    ) -> None:
        """Record token counts; later reports replace earlier ones (they are cumulative)."""
        new = (_int(input_tokens), _int(output_tokens), _int(reasoning))
        if new == (None, None, None):
            return
        old = self.usage or Usage()
        self.usage = Usage(
            new[0] if new[0] is not None else old.input_tokens,
            new[1] if new[1] is not None else old.output_tokens,
            new[2] if new[2] is not None else old.reasoning_tokens,
        )

    def finish(self, reason: object) -> None:
        """Remember why generation stopped; the terminal `Done` carries it."""
        if isinstance(reason, str) and reason:
            self.reason = reason

    def complete(self, reason: object = None) -> None:
        self.finish(reason)
        self._end(Done(self.reason))

    def fail(self, kind: ErrorKind, message: str, status: int | None = None) -> None:
        self._end(StreamError(kind, message, status))

    def _end(self, terminal: Done | StreamError) -> None:
        # Usage goes out once, before the terminal delta, even before an error:
        # errors never lose what was already received.
        if self.terminal is not None:
            return
        if self.usage is not None:
            self.out.append(self.usage)
        self.out.append(terminal)
        self.terminal = terminal


def error_message(payload: dict[str, Any], event: str) -> str | None:
    """The message of an error reported inside the stream, or None if this is no error.

    Shapes: OpenAI/Gemini `{"error": {"message", "type"|"status"}}`, Anthropic's
    `error` event `{"type": "error", "error": {...}}`, Ollama `{"error": "..."}`,
    the Responses API's `{"type": "error", "message", "code"}`, vLLM's
    `{"object": "error", "message", "type"}`.
    """
    error = payload.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and error:
        return _labelled(error, "type", "status", "code")
    if payload.get("type") == "error" or event == "error":
        # The AI SDK's UI message stream says {"type": "error", "errorText": "..."}.
        return _str(payload.get("errorText")) or _labelled(payload, "code")
    if payload.get("object") == "error":  # vLLM's mid-stream error
        return _labelled(payload, "type", "code")
    return None


def _labelled(error: dict[str, Any], *labels: str) -> str:
    message = _str(error.get("message"))
    label = next((str(error[key]) for key in labels if error.get(key)), None)
    if message and label:
        return f"{label}: {message}"
    return message or label or excerpt(json.dumps(error, ensure_ascii=False))


class Reader:
    """Interprets one format's payloads. A new instance per stream: some keep state."""

    name: ClassVar[str]
    # The completion marker, named in the "incomplete" message.
    marker: ClassVar[str]
    # A clean end of body completes the answer (formats without an end marker).
    ends_on_clean_close: ClassVar[bool] = False

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        """Whether a payload has this format's unmistakable shape (for sniffing)."""
        return False

    def read(self, payload: object, data: str, event: str, sink: Sink) -> None:
        """Read one payload: `payload` is `data` decoded, or None when `data` is not JSON."""
        if isinstance(payload, list):
            # A whole JSON array answer (Gemini without alt=sse): read each element.
            for item in payload:
                if sink.terminal is None:
                    self.read(item, data, event, sink)
        elif isinstance(payload, dict):
            message = error_message(payload, event)
            if message is None:
                self.read_object(payload, event, sink)
            else:
                sink.fail("provider", message)
        elif event == "error":
            sink.fail("provider", " ".join(data.split()))
        else:
            sink.fail(
                "protocol", f"expected a JSON object in the {self.name} stream, got {excerpt(data)}"
            )

    def read_blank(self, data: str, event: str, sink: Sink) -> None:
        """Read a payload of only whitespace: nothing, between JSON documents."""

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        raise NotImplementedError

    def unexplained(self, sink: Sink) -> str | None:
        """At a clean end: why the stream, though complete, is not understood (or None)."""
        return None


class OpenAIChatReader(Reader):
    """Chat Completions chunks; also a whole `chat.completion` sent despite `stream: true`.

    https://platform.openai.com/docs/api-reference/chat-streaming
    """

    name = "openai"
    marker = "data: [DONE]"

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return "choices" in payload

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        for choice in map(_obj, _list(payload.get("choices"))):
            if choice.get("index", 0) != 0:  # n > 1: one bubble shows the first choice
                continue
            # A whole completion has `message` where a chunk has `delta`.
            delta = _obj(choice.get("delta") or choice.get("message"))
            # DeepSeek, Qwen and llama.cpp say `reasoning_content`, vLLM/OpenRouter `reasoning`.
            sink.reasoning(delta.get("reasoning_content") or delta.get("reasoning"))
            sink.text(delta.get("content"))
            sink.text(delta.get("refusal"))
            for position, call in enumerate(map(_obj, _list(delta.get("tool_calls")))):
                function = _obj(call.get("function"))
                index = call.get("index", position)
                sink.tool(index, call.get("id"), function.get("name"), function.get("arguments"))
            sink.finish(choice.get("finish_reason"))
        usage = _obj(payload.get("usage"))
        details = _obj(usage.get("completion_tokens_details"))
        prompt, output = usage.get("prompt_tokens"), usage.get("completion_tokens")
        sink.count(prompt, output, details.get("reasoning_tokens"))
        if payload.get("object") == "chat.completion":
            sink.complete()


Handler = Callable[[Any, dict[str, Any], Sink], None]


class ResponsesReader(Reader):
    """The Responses API's typed events; also a whole `response` object.

    https://platform.openai.com/docs/api-reference/responses-streaming
    The stream ends with `response.completed`, `response.incomplete` or
    `response.failed`; there is no `[DONE]`.
    """

    name = "openai-responses"
    marker = "response.completed"

    def __init__(self) -> None:
        self._summary: tuple[object, object] | None = None

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        kind = payload.get("type")
        return (isinstance(kind, str) and kind.startswith("response.")) or (
            payload.get("object") == "response"
        )

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        if payload.get("object") == "response":
            self._whole(payload, sink)
            return
        handler = self.HANDLERS.get(_str(payload.get("type")) or event)
        if handler is not None:
            handler(self, payload, sink)

    def _text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.text(payload.get("delta"))

    def _summary_text(self, payload: dict[str, Any], sink: Sink) -> None:
        # Summary parts arrive one after another; keep them apart as paragraphs.
        part = (payload.get("item_id"), payload.get("summary_index"))
        if self._summary is not None and part != self._summary:
            sink.reasoning("\n\n")
        self._summary = part
        sink.reasoning(payload.get("delta"))

    def _reasoning_text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.reasoning(payload.get("delta"))

    def _item_added(self, payload: dict[str, Any], sink: Sink) -> None:
        item = _obj(payload.get("item"))
        if item.get("type") == "function_call":
            index = payload.get("output_index")
            sink.tool(index, item.get("call_id"), item.get("name"), item.get("arguments"))

    def _arguments_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.tool(payload.get("output_index"), arguments=payload.get("delta"))

    def _ended(self, payload: dict[str, Any], sink: Sink) -> None:
        response = _obj(payload.get("response"))
        usage = _obj(response.get("usage"))
        details = _obj(usage.get("output_tokens_details"))
        sink.count(
            usage.get("input_tokens"), usage.get("output_tokens"), details.get("reasoning_tokens")
        )
        # `response.incomplete` is a finished answer cut short (e.g. max_output_tokens),
        # like Chat Completions' finish_reason "length": Done with that reason.
        reason = _obj(response.get("incomplete_details")).get("reason")
        sink.complete(reason or response.get("status") or payload.get("type"))

    def _failed(self, payload: dict[str, Any], sink: Sink) -> None:
        response = _obj(payload.get("response"))
        error = _obj(response.get("error"))
        sink.fail("provider", _labelled(error, "code") if error else "the response failed")

    def _whole(self, response: dict[str, Any], sink: Sink) -> None:
        for index, item in enumerate(map(_obj, _list(response.get("output")))):
            kind = item.get("type")
            if kind == "message":
                for part in map(_obj, _list(item.get("content"))):
                    sink.text(part.get("text") or part.get("refusal"))
            elif kind == "reasoning":
                summary = [_obj(part).get("text") for part in _list(item.get("summary"))]
                sink.reasoning("\n\n".join(text for text in summary if isinstance(text, str)))
            elif kind == "function_call":
                sink.tool(index, item.get("call_id"), item.get("name"), item.get("arguments"))
        if response.get("status") == "failed":
            self._failed({"response": response}, sink)
        else:
            self._ended({"response": response}, sink)

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "response.output_text.delta": _text,
        "response.refusal.delta": _text,
        "response.reasoning_summary_text.delta": _summary_text,
        "response.reasoning_text.delta": _reasoning_text,
        "response.output_item.added": _item_added,
        "response.function_call_arguments.delta": _arguments_delta,
        "response.completed": _ended,
        "response.incomplete": _ended,
        "response.failed": _failed,
    }


class AnthropicReader(Reader):
    """Anthropic Messages events; also a whole `message` object.

    https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types
    """

    name = "anthropic"
    marker = "message_stop"

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        # A whole message has a list of content blocks; home-made streams also say
        # {"type": "message", "content": "text"}, which is not Anthropic's.
        kind = _str(payload.get("type"))
        whole = kind == "message" and isinstance(payload.get("content"), list)
        return whole or kind in AnthropicReader.HANDLERS

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        if payload.get("type") == "message":
            self._whole(payload, sink)
            return
        handler = self.HANDLERS.get(_str(payload.get("type")) or event)
        if handler is not None:
            handler(self, payload, sink)

    def _count(self, usage: dict[str, Any], sink: Sink) -> None:
        # `input_tokens` excludes the cached part of the prompt; the whole prompt counts.
        prompt = _sum(
            usage.get("input_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        sink.count(prompt, usage.get("output_tokens"))

    def _message_start(self, payload: dict[str, Any], sink: Sink) -> None:
        self._count(_obj(_obj(payload.get("message")).get("usage")), sink)

    def _block_start(self, payload: dict[str, Any], sink: Sink) -> None:
        self._block(payload.get("index"), _obj(payload.get("content_block")), sink)

    def _block(self, index: object, block: dict[str, Any], sink: Sink) -> None:
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            # The input streams as input_json_delta; the start carries `{}`.
            sink.tool(index, block.get("id"), block.get("name"), block.get("input") or None)
        elif kind == "thinking":
            sink.reasoning(block.get("thinking"))
        elif kind == "text":
            sink.text(block.get("text"))

    def _block_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        delta = _obj(payload.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            sink.text(delta.get("text"))
        elif kind == "thinking_delta":
            sink.reasoning(delta.get("thinking"))
        elif kind == "input_json_delta":
            sink.tool(payload.get("index"), arguments=delta.get("partial_json"))

    def _message_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.finish(_obj(payload.get("delta")).get("stop_reason"))
        self._count(_obj(payload.get("usage")), sink)

    def _message_stop(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.complete()

    def _whole(self, message: dict[str, Any], sink: Sink) -> None:
        for index, block in enumerate(map(_obj, _list(message.get("content")))):
            self._block(index, block, sink)
        self._count(_obj(message.get("usage")), sink)
        sink.complete(message.get("stop_reason"))

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }


class GeminiReader(Reader):
    """`GenerateContentResponse` chunks of `streamGenerateContent?alt=sse`.

    https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
    There is no end marker: the last chunk has a `finishReason`, then the body ends.
    """

    name = "gemini"
    marker = "a finishReason"

    def __init__(self) -> None:
        # Gemini sends each function call whole, without an index: number them.
        self._calls = 0

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return "candidates" in payload or "promptFeedback" in payload

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        blocked = _obj(payload.get("promptFeedback")).get("blockReason")
        if blocked:
            sink.fail("provider", f"the prompt was blocked: {blocked}")
            return
        for candidate in map(_obj, _list(payload.get("candidates"))[:1]):
            for part in map(_obj, _list(_obj(candidate.get("content")).get("parts"))):
                self._part(part, sink)
            sink.finish(candidate.get("finishReason"))
        usage = _obj(payload.get("usageMetadata"))
        thoughts = usage.get("thoughtsTokenCount")
        # candidatesTokenCount leaves the thoughts out; other formats count them as output.
        output = _sum(usage.get("candidatesTokenCount"), thoughts)
        sink.count(usage.get("promptTokenCount"), output, thoughts)

    def _part(self, part: dict[str, Any], sink: Sink) -> None:
        call = part.get("functionCall")
        if isinstance(call, dict):
            sink.tool(self._calls, call.get("id"), call.get("name"), call.get("args") or {})
            self._calls += 1
        elif part.get("thought") is True:
            sink.reasoning(part.get("text"))
        else:
            sink.text(part.get("text"))


class OllamaReader(Reader):
    """Ollama `/api/chat` and `/api/generate` lines (NDJSON).

    https://github.com/ollama/ollama/blob/main/docs/api.md
    """

    name = "ollama"
    marker = '"done": true'

    def __init__(self) -> None:
        self._calls = 0

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("done"), bool) and (
            isinstance(payload.get("message"), dict) or isinstance(payload.get("response"), str)
        )

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        message = _obj(payload.get("message"))
        sink.reasoning(message.get("thinking") or payload.get("thinking"))
        sink.text(message.get("content"))
        sink.text(payload.get("response"))
        for call in map(_obj, _list(message.get("tool_calls"))):
            function = _obj(call.get("function"))
            sink.tool(self._calls, call.get("id"), function.get("name"), function.get("arguments"))
            self._calls += 1
        if payload.get("done") is True:
            sink.count(payload.get("prompt_eval_count"), payload.get("eval_count"))
            sink.complete(payload.get("done_reason"))


class LlamaCppReader(Reader):
    """llama.cpp's native `/completion` stream: `{"content", "stop"}` objects.

    https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
    The last one has `"stop": true`, why it stopped (`stop_type`) and the token counts.
    """

    name = "llama.cpp"
    marker = '"stop": true'

    # stop_type in the names the other formats use for the same reasons.
    _REASONS: ClassVar[dict[str, str]] = {"eos": "stop", "word": "stop", "limit": "length"}

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return isinstance(payload.get("stop"), bool) and isinstance(payload.get("content"), str)

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        sink.text(payload.get("content"))
        if payload.get("stop") is True:
            timings = _obj(payload.get("timings"))
            sink.count(
                payload.get("tokens_evaluated", timings.get("prompt_n")),
                payload.get("tokens_predicted", timings.get("predicted_n")),
            )
            kind = _str(payload.get("stop_type"))
            sink.complete(self._REASONS.get(kind or "", kind))


class AiSdkReader(Reader):
    """The Vercel AI SDK's UI message stream (`toUIMessageStreamResponse()`).

    https://ai-sdk.dev/docs/ai-sdk-ui/stream-protocol#data-stream-protocol
    SSE events typed `start`, `text-delta`, `reasoning-delta`, `tool-input-*`,
    `error` (with `errorText`), `finish` (with `finishReason`), then `data: [DONE]`;
    the response carries the header `x-vercel-ai-ui-message-stream: v1`. Token
    counts travel only if the route puts them in the finish's `messageMetadata`.
    """

    name = "ai-sdk"
    marker = "data: [DONE]"

    def __init__(self) -> None:
        # Tool calls by toolCallId: their index, and whether their input streamed.
        self._calls: dict[str, tuple[int, bool]] = {}

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return _str(payload.get("type")) in AiSdkReader.HANDLERS

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        handler = self.HANDLERS.get(_str(payload.get("type")) or "")
        if handler is not None:
            handler(self, payload, sink)

    def _text(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.text(payload.get("delta"))

    def _reasoning(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.reasoning(payload.get("delta"))

    def _call(self, payload: dict[str, Any], streamed: bool) -> int:
        call_id = str(payload.get("toolCallId"))
        index, was_streamed = self._calls.get(call_id, (len(self._calls), False))
        self._calls[call_id] = (index, was_streamed or streamed)
        return index

    def _tool_start(self, payload: dict[str, Any], sink: Sink) -> None:
        index = self._call(payload, False)
        sink.tool(index, payload.get("toolCallId"), payload.get("toolName"))

    def _tool_delta(self, payload: dict[str, Any], sink: Sink) -> None:
        sink.tool(self._call(payload, True), arguments=payload.get("inputTextDelta"))

    def _tool_input(self, payload: dict[str, Any], sink: Sink) -> None:
        streamed = self._calls.get(str(payload.get("toolCallId")), (0, False))[1]
        if not streamed:  # sent whole, without tool-input-delta chunks
            index = self._call(payload, True)
            sink.tool(
                index, payload.get("toolCallId"), payload.get("toolName"), payload.get("input", {})
            )

    def _metadata(self, payload: dict[str, Any], sink: Sink) -> None:
        metadata = _obj(payload.get("messageMetadata"))
        usage = _obj(metadata.get("totalUsage") or metadata.get("usage"))
        details = _obj(usage.get("outputTokenDetails"))
        reasoning = usage.get("reasoningTokens", details.get("reasoningTokens"))
        sink.count(usage.get("inputTokens"), usage.get("outputTokens"), reasoning)

    def _finish(self, payload: dict[str, Any], sink: Sink) -> None:
        self._metadata(payload, sink)
        sink.complete(payload.get("finishReason"))

    def _abort(self, payload: dict[str, Any], sink: Sink) -> None:
        reason = _str(payload.get("reason"))
        sink.fail("incomplete", "the server aborted the answer" + (f": {reason}" if reason else ""))

    def _ignore(self, payload: dict[str, Any], sink: Sink) -> None:
        pass

    HANDLERS: ClassVar[dict[str, Handler]] = {
        "start": _metadata,
        "message-metadata": _metadata,
        "start-step": _ignore,
        "finish-step": _ignore,
        "text-start": _ignore,
        "text-end": _ignore,
        "text-delta": _text,
        "reasoning-start": _ignore,
        "reasoning-end": _ignore,
        "reasoning-delta": _reasoning,
        "tool-input-start": _tool_start,
        "tool-input-delta": _tool_delta,
        "tool-input-available": _tool_input,
        "finish": _finish,
        "abort": _abort,
    }


class LangChainReader(Reader):
    """LangChain's `AIMessageChunk`s, as `chat_model.stream()` yields them (dumped to dicts).

    https://python.langchain.com/api_reference/core/messages/langchain_core.messages.ai.AIMessageChunk.html
    `content` is text or a list of blocks (text, thinking, reasoning); tool calls come
    as `tool_call_chunks`. Token counts are per chunk and add up (Anthropic's models
    report the prompt at the start and the output at the end). There is no end
    marker: the iterator ends.
    """

    name = "langchain"
    marker = "the end of the iterator"
    ends_on_clean_close = True

    def __init__(self) -> None:
        self._tokens = [0, 0, 0]
        self._counted = [False, False, False]

    @staticmethod
    def claims(payload: dict[str, Any]) -> bool:
        return payload.get("type") in ("AIMessageChunk", "AIMessage", "ai")

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        content = payload.get("content")
        kwargs = _obj(payload.get("additional_kwargs"))
        sink.reasoning(kwargs.get("reasoning_content"))
        if isinstance(content, str):
            sink.text(content)
        for block in map(_obj, _list(content)):
            kind = block.get("type")
            if kind == "text":
                sink.text(block.get("text"))
            elif kind in ("thinking", "reasoning"):
                sink.reasoning(block.get(kind))
        for position, call in enumerate(map(_obj, _list(payload.get("tool_call_chunks")))):
            index = position if call.get("index") is None else call.get("index")
            sink.tool(index, call.get("id"), call.get("name"), call.get("args"))
        self._count(_obj(payload.get("usage_metadata")), sink)
        metadata = _obj(payload.get("response_metadata"))
        reason = metadata.get("finish_reason") or metadata.get("stop_reason")
        sink.finish(reason or metadata.get("done_reason"))

    def _count(self, usage: dict[str, Any], sink: Sink) -> None:
        details = _obj(usage.get("output_token_details"))
        new = (usage.get("input_tokens"), usage.get("output_tokens"), details.get("reasoning"))
        for position, value in enumerate(map(_int, new)):
            if value is not None:
                self._tokens[position] += value
                self._counted[position] = True
        totals = [t if seen else None for t, seen in zip(self._tokens, self._counted, strict=True)]
        sink.count(*totals)


# Fields that carry the text in home-made JSON streams, most specific first.
_TEXT_KEYS = ("text", "content", "delta", "token", "response", "answer", "message", "output")
_REASONING_KEYS = ("reasoning", "reasoning_content", "thinking")
# Event names (or JSON `type`s) a home-made server may use for its text, and for its end.
_TEXT_EVENTS = frozenset({"message", "delta", "token", "text", "chunk", "content"})
_END_EVENTS = frozenset({"done", "end", "finish"})


def _mode_of(first: object) -> str:
    if isinstance(first, dict):
        return "object"
    return "string" if isinstance(first, str) else "text"


class CustomReader(Reader):
    """Home-made streams: plain-text data, JSON strings, or JSON objects with a text field.

    The first payload decides which: a server that sends `data: Hello` sends plain
    text throughout, even when a later token happens to look like JSON.
    """

    name = "custom"
    marker = "[DONE]"
    ends_on_clean_close = True

    def __init__(self) -> None:
        self._mode: str | None = None
        self._ignored: str | None = None

    def read(self, payload: object, data: str, event: str, sink: Sink) -> None:
        if self._mode is None:
            self._mode = _mode_of(payload)
        if event in _END_EVENTS:
            sink.complete()
        elif self._mode == "object" or event == "error":
            super().read(payload, data, event, sink)
        elif event in _TEXT_EVENTS:
            sink.text(payload if self._mode == "string" and isinstance(payload, str) else data)
        else:
            self._ignore(data)

    def read_blank(self, data: str, event: str, sink: Sink) -> None:
        # A plain-text server's token " " or "\n" is text (FastAPI's `data: {token}`,
        # sse-starlette's EventSourceResponse). Before the first token it cannot be
        # told from a keep-alive, and leading blanks change nothing in Markdown.
        if self._mode == "text" and event in _TEXT_EVENTS:
            sink.text(data)

    def read_object(self, payload: dict[str, Any], event: str, sink: Sink) -> None:
        kind = str(payload.get("type") or event)
        text = _first_text(payload, _TEXT_KEYS)
        if "reasoning" in kind or "thinking" in kind:
            sink.reasoning(text)
        else:
            sink.reasoning(_first_text(payload, _REASONING_KEYS))
            sink.text(text)
        if payload.get("done") is True or kind in _END_EVENTS:
            sink.complete(payload.get("finish_reason"))
        elif text is None:
            self._ignore(json.dumps(payload, ensure_ascii=False))

    def _ignore(self, data: str) -> None:
        if self._ignored is None:
            self._ignored = data

    def unexplained(self, sink: Sink) -> str | None:
        if sink.content or self._ignored is None:
            return None
        return (
            f"no text found in the stream; its first event was {excerpt(self._ignored)}"
            f" (expected plain text or a JSON field such as {', '.join(_TEXT_KEYS[:5])})"
        )


def _first_text(payload: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, dict):  # {"delta": {"content": "..."}}
            value = value.get("content", value.get("text"))
        if isinstance(value, str):
            return value
    return None


# Sniffing order: the hinted format is tried first, then these.
READERS: tuple[type[Reader], ...] = (
    OpenAIChatReader,
    ResponsesReader,
    AnthropicReader,
    GeminiReader,
    OllamaReader,
    LlamaCppReader,
    AiSdkReader,
    LangChainReader,
)
