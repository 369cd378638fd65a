"""Python sources: generators, async generators, functions of the conversation, SDK streams.

The SDK tests use the real client packages: each client streams a recorded answer
from a loopback server (the same recordings the wire-format tests read), parses it
into its own chunk or event classes, and those objects must give exactly the deltas
the wire format gives. LangChain chunks are built from langchain-core's own classes.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from streamchat._sources import PythonSource, source_deltas
from streamchat.deltas import (
    Delta,
    Done,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    Usage,
    merge_tool_calls,
)
from streamchat.server import DemoServer, answer_for
from streamchat.transport import Timeouts
from test_providers_streams import (
    ANTHROPIC,
    GEMINI,
    OLLAMA_CHAT,
    OPENAI,
    OPENAI_TOOLS,
    RESPONSES,
    Recording,
)

from answers import read_all, text_of
from conftest import require
from loopback import LoopbackServer, Script

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hi"},
]


def answer_of(source: object, timeouts: Timeouts = Timeouts()) -> list[Delta]:
    """The deltas of one answer from a Python source."""
    return read_all(source_deltas(source, MESSAGES, timeouts))


def sdk(module: str) -> Any:
    """The SDK package (a test dependency: missing, it skips locally and fails in CI)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        require(False, f"the {module} package is a test dependency")


# -- plain Python ------------------------------------------------------------------------


def test_a_generator_function_gets_the_conversation() -> None:
    seen: list[list[dict[str, str]]] = []

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        seen.append(messages)
        yield from ["Hello", ",", " ", "world", "\n", "\n", "- one"]

    deltas = answer_of(answer)
    assert text_of(deltas) == "Hello, world\n\n- one"
    assert deltas[-1] == Done()
    assert seen == [MESSAGES]


def test_an_async_generator_function() -> None:
    async def answer(messages: list[dict[str, str]]) -> AsyncIterator[str]:
        for piece in ("你", "好", " 👋"):
            await asyncio.sleep(0)
            yield piece

    assert answer_of(answer) == [TextDelta("你"), TextDelta("好"), TextDelta(" 👋"), Done()]


def test_iterators_and_async_iterators_given_directly() -> None:
    async def pieces() -> AsyncIterator[str]:
        yield "a"
        yield "b"

    assert text_of(answer_of(iter(["x", "y"]))) == "xy"
    assert text_of(answer_of(pieces())) == "ab"


def test_functions_returning_text_an_awaitable_or_a_stream() -> None:
    async def later(messages: list[dict[str, str]]) -> str:
        return "whole answer"

    assert answer_of(lambda messages: "plain") == [TextDelta("plain"), Done()]
    assert answer_of(later) == [TextDelta("whole answer"), Done()]
    assert text_of(answer_of(lambda messages: iter(["s", "t"]))) == "st"


def test_a_generator_can_yield_reasoning_usage_and_a_finish_reason() -> None:
    def answer(messages: list[dict[str, str]]) -> Iterator[object]:
        yield ReasoningDelta("thinking")
        yield "answer"
        yield Usage(3, 4)
        yield Done("stop")
        yield "never shown"

    assert answer_of(answer) == [
        ReasoningDelta("thinking"),
        TextDelta("answer"),
        Usage(3, 4),
        Done("stop"),
    ]


def test_an_exception_in_the_generator_keeps_the_partial_answer() -> None:
    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        yield "Partial "
        yield "answer"
        raise ConnectionResetError("the model server went away")

    deltas = answer_of(answer)
    assert text_of(deltas) == "Partial answer"
    assert deltas[-1] == StreamError("source", "ConnectionResetError: the model server went away")


def test_an_exception_before_the_first_item_is_shown() -> None:
    def answer(messages: list[dict[str, str]]) -> str:
        raise ValueError("no model loaded")

    assert answer_of(answer) == [StreamError("source", "ValueError: no model loaded")]


def test_a_source_with_no_answer_is_an_error() -> None:
    deltas = answer_of(lambda messages: iter([]))
    assert len(deltas) == 1 and isinstance(deltas[0], StreamError)
    assert "gave no answer" in deltas[0].message


def test_a_silent_generator_hits_the_idle_timeout() -> None:
    release = threading.Event()

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        yield "started"
        release.wait(10)

    started = time.monotonic()
    deltas = answer_of(answer, Timeouts(idle=0.3))
    release.set()
    assert time.monotonic() - started < 5
    assert text_of(deltas) == "started"
    assert isinstance(deltas[-1], StreamError) and deltas[-1].kind == "timeout"


def test_a_fast_generator_is_read_in_batches() -> None:
    """100 000 tokens from a generator: the loop is woken per batch, not per token."""
    count = 100_000
    deltas = answer_of(lambda messages: (f"{n % 10}" for n in range(count)))
    assert len(text_of(deltas)) == count
    assert deltas[-1] == Done()


def test_stop_closes_a_sync_generator_promptly() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        try:
            for n in range(10_000):
                produced.append(n)
                time.sleep(0.01)
                yield f"{n} "
        finally:
            closed.set()

    async def run() -> tuple[list[Delta], float, bool]:
        deltas: list[Delta] = []
        loop_ticks = 0

        async def consume() -> None:
            async for delta in source_deltas(answer, MESSAGES):
                deltas.append(delta)

        async def ticker() -> None:
            nonlocal loop_ticks
            while True:
                loop_ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(consume())
        ticks = asyncio.ensure_future(ticker())
        while len(deltas) < 20:
            await asyncio.sleep(0.005)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled_in = time.monotonic() - started
        ticks.cancel()
        return deltas, cancelled_in, loop_ticks > 10

    deltas, cancelled_in, loop_was_free = asyncio.run(run())
    assert cancelled_in < 0.5
    assert loop_was_free  # the generator's sleeps ran on its own thread
    assert closed.wait(2), "the generator was not closed"
    assert len(produced) < 200
    assert text_of(deltas).startswith("0 1 2 3 4 ")


@pytest.mark.load
def test_stop_is_never_lost_while_items_keep_arriving() -> None:
    """A cancellation that lands as a batch completes must still stop the answer."""

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        while True:
            time.sleep(0.0002)
            yield "x"

    async def stop_once(after: int) -> None:
        got = 0

        async def consume() -> None:
            nonlocal got
            async for _ in source_deltas(answer, MESSAGES):
                got += 1

        task = asyncio.ensure_future(consume())
        while got < after:
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert done, "Stop was lost: the answer kept streaming"

    async def run() -> None:
        for after in range(1, 30):
            await stop_once(after)

    asyncio.run(run())


def test_stop_returns_at_once_even_while_the_generator_blocks() -> None:
    blocked = threading.Event()
    release = threading.Event()
    closed = threading.Event()

    def answer(messages: list[dict[str, str]]) -> Iterator[str]:
        try:
            yield "first"
            blocked.set()
            release.wait(10)  # a model call that takes its time
            yield "second"
        finally:
            closed.set()

    async def run() -> float:
        async def consume() -> None:
            async for _ in source_deltas(answer, MESSAGES):
                pass

        task = asyncio.ensure_future(consume())
        while not blocked.is_set():
            await asyncio.sleep(0.005)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.5
    assert not closed.is_set()
    release.set()
    assert closed.wait(2)  # closed as soon as its blocking call returned


def test_stop_cancels_an_async_generator() -> None:
    closed = asyncio.Event()

    async def run() -> bool:
        async def answer(messages: list[dict[str, str]]) -> AsyncIterator[str]:
            try:
                while True:
                    yield "tick "
                    await asyncio.sleep(0.01)
            finally:
                closed.set()

        got: list[Delta] = []

        async def consume() -> None:
            async for delta in source_deltas(answer, MESSAGES):
                got.append(delta)

        task = asyncio.ensure_future(consume())
        while len(got) < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return closed.is_set()

    assert asyncio.run(run())


def test_a_single_stream_answers_once() -> None:
    source = PythonSource(iter(["only once"]))
    assert source.single

    async def run() -> tuple[list[Delta], list[Delta]]:
        first = [d async for d in source.deltas(MESSAGES)]
        second = [d async for d in source.deltas(MESSAGES)]
        return first, second

    first, second = asyncio.run(run())
    assert text_of(first) == "only once"
    assert isinstance(second[0], StreamError) and "single stream" in second[0].message


def test_a_url_or_a_number_is_not_a_python_source() -> None:
    with pytest.raises(TypeError):
        PythonSource("http://localhost:8000/v1/chat/completions")
    with pytest.raises(TypeError):
        PythonSource(42)


# -- SDK streams, parsed by the SDKs themselves --------------------------------------------


def serve(server: LoopbackServer, recording: Recording) -> None:
    headers = {"Content-Type": recording.content_type}
    server.route(recording.path, Script([recording.body()], headers=headers))


@pytest.mark.parametrize("recording", [OPENAI, OPENAI_TOOLS], ids=lambda r: r.name)
def test_openai_chat_stream(server: LoopbackServer, recording: Recording) -> None:
    openai = sdk("openai")
    serve(server, recording)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert answer_of(stream) == recording.expected


def test_openai_responses_stream(server: LoopbackServer) -> None:
    openai = sdk("openai")
    serve(server, RESPONSES)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
    stream = client.responses.create(model="m", input="hi", stream=True)
    assert answer_of(stream) == RESPONSES.expected


def test_async_openai_client_in_a_function(server: LoopbackServer) -> None:
    openai = sdk("openai")
    serve(server, OPENAI)

    def answer(messages: list[dict[str, str]]) -> object:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-test")
        return client.chat.completions.create(model="m", messages=messages, stream=True)

    assert answer_of(answer) == OPENAI.expected
    assert server.received[-1].json()["messages"] == MESSAGES


def test_openai_client_against_the_demo_server(fast_demo: DemoServer) -> None:
    openai = sdk("openai")
    client = openai.OpenAI(base_url=fast_demo.base_url, api_key="unused")

    def answer(messages: list[dict[str, str]]) -> object:
        return client.chat.completions.create(
            model="streamchat-demo", messages=messages, stream=True
        )

    deltas = answer_of(answer)
    assert text_of(deltas) == answer_for("Say hi")
    assert deltas[-1] == Done("stop")
    assert isinstance(deltas[-2], Usage)


@pytest.mark.slow
def test_anthropic_stream(server: LoopbackServer) -> None:
    anthropic = sdk("anthropic")
    serve(server, ANTHROPIC)
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
    stream = client.messages.create(
        model="claude", max_tokens=100, messages=MESSAGES[1:], stream=True
    )
    assert answer_of(stream) == ANTHROPIC.expected


def test_anthropic_message_stream_helper(server: LoopbackServer) -> None:
    """`messages.stream()` adds derived `text` events to the raw ones: no text twice."""
    anthropic = sdk("anthropic")
    serve(server, ANTHROPIC)
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-test", max_retries=0)
    with client.messages.stream(model="claude", max_tokens=100, messages=MESSAGES[1:]) as stream:
        deltas = answer_of(stream)
    assert deltas == ANTHROPIC.expected


def test_google_genai_stream(server: LoopbackServer) -> None:
    sdk("google.genai")
    from google import genai
    from google.genai import types

    serve(server, GEMINI)
    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"),
    )
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    assert answer_of(stream) == GEMINI.expected


def test_ollama_stream(server: LoopbackServer) -> None:
    ollama = sdk("ollama")
    serve(server, OLLAMA_CHAT)
    client = ollama.Client(host=server.url)
    stream = client.chat(model="qwen3", messages=MESSAGES, stream=True)
    assert answer_of(stream) == OLLAMA_CHAT.expected


@pytest.mark.slow
def test_litellm_stream_against_the_demo_server(
    fast_demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline: litellm would otherwise try to download its model price list on import.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = sdk("litellm")

    def answer(messages: list[dict[str, str]]) -> object:
        return litellm.completion(
            model="openai/streamchat-demo",
            api_base=fast_demo.base_url,
            api_key="unused",
            messages=messages,
            stream=True,
        )

    deltas = answer_of(answer)
    assert text_of(deltas) == answer_for("Say hi")
    assert deltas[-1] == Done("stop")


def test_langchain_chunks() -> None:
    sdk("langchain_core")
    from langchain_core.messages import AIMessageChunk

    chunks = [
        AIMessageChunk(
            content="", usage_metadata={"input_tokens": 9, "output_tokens": 0, "total_tokens": 9}
        ),
        AIMessageChunk(content=[{"type": "thinking", "thinking": "Hmm.", "index": 0}]),
        AIMessageChunk(content=[{"type": "text", "text": "你好", "index": 1}]),
        AIMessageChunk(content=" there"),
        AIMessageChunk(
            content="",
            tool_call_chunks=[{"name": "lookup", "args": '{"q":', "id": "t1", "index": 0}],
        ),
        AIMessageChunk(content="", tool_call_chunks=[{"args": ' "x"}', "index": 0}]),
        AIMessageChunk(
            content="",
            response_metadata={"stop_reason": "tool_use"},
            usage_metadata={"input_tokens": 0, "output_tokens": 12, "total_tokens": 12},
        ),
    ]
    deltas = answer_of(iter(chunks))
    assert [d for d in deltas if isinstance(d, (TextDelta, ReasoningDelta))] == [
        ReasoningDelta("Hmm."),
        TextDelta("你好"),
        TextDelta(" there"),
    ]
    assert merge_tool_calls(deltas) == [ToolCall(0, "t1", "lookup", '{"q": "x"}')]
    assert deltas[-2:] == [Usage(9, 12), Done("tool_use")]


def test_langchain_chat_model_stream() -> None:
    sdk("langchain_core")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    model = GenericFakeChatModel(messages=iter([AIMessage(content="Hello there, world")]))
    deltas = answer_of(lambda messages: model.stream(messages))
    assert text_of(deltas) == "Hello there, world"
    assert sum(isinstance(d, TextDelta) for d in deltas) > 2
    assert deltas[-1] == Done()


def test_transformers_text_iterator_streamer() -> None:
    """The usual local-model recipe: generate() on a thread, the streamer returned."""
    sdk("transformers")
    numpy = sdk("numpy")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, TextIteratorStreamer

    vocab = {"[UNK]": 0, "Hello": 1, "world": 2, "!": 3, "你好": 4, "prompt": 5}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")

    def generate(streamer: Any) -> None:  # what model.generate does with a streamer
        streamer.put(numpy.array([[5]]))  # the prompt, skipped
        for token in (1, 2, 3, 4):
            streamer.put(numpy.array([token]))
        streamer.end()

    def answer(messages: list[dict[str, str]]) -> object:
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, timeout=10)
        threading.Thread(target=generate, args=(streamer,), daemon=True).start()
        return streamer

    deltas = answer_of(answer)
    assert text_of(deltas) == "Hello world! 你好"
    assert deltas[-1] == Done()


def test_an_sdk_http_error_keeps_its_status(server: LoopbackServer) -> None:
    openai = sdk("openai")
    server.route(
        "/v1/chat/completions",
        Script(
            [b'{"error": {"message": "Invalid model"}}'],
            status=404,
            headers={"Content-Type": "application/json"},
        ),
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)

    def answer(messages: list[dict[str, str]]) -> object:
        return client.chat.completions.create(model="m", messages=messages, stream=True)

    (error,) = answer_of(answer)
    assert isinstance(error, StreamError)
    assert (error.kind, error.status) == ("http", 404)
    assert "Invalid model" in error.message


def test_an_echoed_api_key_never_reaches_the_message(server: LoopbackServer) -> None:
    openai = sdk("openai")
    secret = "sk-user-secret-0123456789abcdef"
    echo = f'{{"error": {{"message": "Incorrect API key provided: {secret}"}}}}'
    server.route(
        "/v1/chat/completions",
        Script([echo.encode()], status=401, headers={"Content-Type": "application/json"}),
    )
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0)

    def answer(messages: list[dict[str, str]]) -> object:
        return client.chat.completions.create(model="m", messages=messages, stream=True)

    (error,) = answer_of(answer)
    assert isinstance(error, StreamError) and error.status == 401
    assert "Incorrect API key provided: [redacted]" in error.message
    assert secret not in error.message


# -- items that are not text ---------------------------------------------------------------


def test_bytes_are_utf8_text_even_split_between_items() -> None:
    items = [b"caf\xc3", b"\xa9 ", "and ", bytearray(b"na\xc3\xafve"), b" \xff", b"\xe2\x82"]
    deltas = answer_of(iter(items))
    # Invalid and cut-short sequences become U+FFFD, as a body's do.
    assert text_of(deltas) == "café and naïve \ufffd\ufffd"
    assert deltas[-1] == Done()

    async def chunks(messages: list[dict[str, str]]) -> AsyncIterator[bytes]:
        for piece in (b"\xe4\xbd", b"\xa0\xe5\xa5\xbd"):
            yield piece

    assert text_of(answer_of(chunks)) == "你好"
    assert text_of(answer_of(lambda messages: b"whole \xf0\x9f\x91\x8b")) == "whole 👋"


def test_none_is_skipped() -> None:
    deltas = answer_of(iter([None, "a", None, "b", None]))
    assert deltas == [TextDelta("ab"), Done()]  # the thread's strings come joined


@pytest.mark.parametrize(
    ("item", "name"),
    [(["x"], "list"), (3, "int"), (iter(["x"]), "list_iterator"), (object(), "object")],
    ids=["list", "int", "iterator", "object"],
)
def test_any_other_item_is_an_error_naming_its_type(item: object, name: str) -> None:
    deltas = answer_of(iter(["Partial", item, "never shown"]))
    assert text_of(deltas) == "Partial"  # what came before stays
    error = deltas[-1]
    assert isinstance(error, StreamError) and error.kind == "source"
    assert f"gave an item of type {name} (" in error.message
    assert "expected text (str, or bytes in UTF-8)" in error.message


def test_a_returned_pydantic_model_is_one_item_not_its_fields() -> None:
    sdk("langchain_core")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    model = GenericFakeChatModel(messages=iter([AIMessage(content="Hello there, world")]))
    deltas = answer_of(lambda messages: model.invoke(messages))  # not .stream(): one message
    assert text_of(deltas) == "Hello there, world"
    assert deltas[-1] == Done()


def test_a_python_sources_errors_speak_of_the_source_not_a_connection() -> None:
    """Chunks in OpenAI's shape that never say they are finished: the source's fault."""
    from streamchat._explain import explain

    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    for source in (iter([chunk, chunk]), iter([]), iter([{"unknown": 1}])):
        error = answer_of(source)[-1]
        assert isinstance(error, StreamError) and error.kind == "source", error
        told = str(explain(error))
        assert "Python" in told
        for word in ("connection", "doctor", "server", "URL"):
            assert word not in told.split("\n")[0] + told.split("\n")[1], told
