"""A lone surrogate ("\\ud800" in a JSON string) becomes U+FFFD, as invalid UTF-8 does.

JSON may escape half of a UTF-16 pair on its own, and `json.loads` gives it back as a
lone surrogate, which no UTF-8 encoder accepts: the comm message, the saved notebook
and the terminal would all fail on it. Before the fix the answer ended with a
UnicodeEncodeError and its text was duplicated and cut.
"""

from __future__ import annotations

import json

from streamchat.deltas import ReasoningDelta, StreamError, TextDelta, ToolCallDelta
from streamchat.widget import StreamChat

from loopback import LoopbackServer, Script

LONE = '"a\\ud800b"'  # as the JSON text has it
PAIR = '"\\ud83d\\ude00"'  # a whole pair: one emoji


def chunk(content_json: str) -> bytes:
    return f'data: {{"choices":[{{"delta":{{"content":{content_json}}}}}]}}\n\n'.encode()


def test_a_lone_surrogate_from_a_server_is_typed_as_a_replacement_character(
    server: LoopbackServer, chats
) -> None:
    finish = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    url = server.route(
        "/v1/chat/completions",
        Script([chunk('"One "'), chunk(LONE), chunk(PAIR), chunk('" two"'), finish]),
    )
    chat = StreamChat(url, speed=0)
    chats.append(chat)
    chat.ask("hi")
    assert chat.wait(20)
    turn = chat.turns[-1]
    assert (turn["status"], turn["error"]) == ("done", None)
    assert chat.messages[-1]["content"] == "One a\ufffdb😀 two"  # nothing twice, nothing cut
    assert "a\ufffdb" in turn["html"]
    json.dumps(chat.get_state(), ensure_ascii=False).encode("utf-8")  # synced and saved
    json.dumps(chat._repr_mimebundle_(), ensure_ascii=False).encode("utf-8")
    chat.transcript.encode("utf-8")


def test_a_python_sources_lone_surrogates_too(chats) -> None:
    chat = StreamChat(iter(["x\udfff", "y"]), speed=0)
    chats.append(chat)
    assert chat.wait(20)
    assert chat.turns[-1]["status"] == "done"
    assert chat.messages[-1]["content"] == "x\ufffdy"


def test_every_delta_that_carries_text_is_valid_unicode() -> None:
    assert TextDelta("a\ud800b").text == "a\ufffdb"
    assert ReasoningDelta("\udc00").text == "\ufffd"
    call = ToolCallDelta(0, "id\ud800", "f\ud800", '{"q": "\ud800"}')
    assert (call.id, call.name, call.arguments) == ("id\ufffd", "f\ufffd", '{"q": "\ufffd"}')
    assert StreamError("provider", "bad \ud800").message == "bad \ufffd"
    text = "plain text, 你好 😀"
    assert TextDelta(text).text is text  # valid text is not copied
