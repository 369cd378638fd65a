"""Stop, Retry and Send act on the turn they name (turns are addressed by id)."""

from __future__ import annotations

import pytest

from streamchat._messages import parse_browser_message
from streamchat.widget import StreamChat
from test_widget import ANSWER, make, openai_chunks

from loopback import Script, wait_until


def browser(chat: StreamChat, **message: object) -> None:
    """A message as the front end sends it."""
    chat._handle_custom_msg(message, [])


def test_a_late_stop_for_an_older_answer_leaves_the_newer_one_typing(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.02))
    chat, _ = make(chats, url, speed=0)
    chat.ask("first")
    first = chat.turns[-1]["id"]
    chat.ask("second")
    wait_until(lambda: chat.status == "streaming")
    browser(chat, type="stop", turn=first)  # read late: the first answer already ended
    assert chat.status == "streaming"
    browser(chat, type="stop", turn=chat.turns[-1]["id"])
    assert chat.status == "stopped"


def test_a_new_prompt_stops_the_answer_being_typed_with_a_note(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.02))
    chat, capture = make(chats, url, speed=0)
    chat.ask("first")
    wait_until(lambda: len(capture.custom()) >= 2)
    browser(chat, type="send", prompt="second")
    stopped = chat.turns[1]
    assert stopped["status"] == "stopped"
    assert stopped["note"] == "Stopped: a new prompt was sent."
    assert "*(Stopped: a new prompt was sent.)*" in chat.transcript
    chat.stop()
    assert chat.turns[-1]["note"] is None, "a Stop needs no note"


def test_retry_only_for_the_last_answer_and_never_while_one_streams(server, chats) -> None:
    broken = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER), cut_after=3))
    chat, _ = make(chats, broken, speed=0)
    chat.ask("one")
    assert chat.wait(10) and chat.status == "error"
    older = chat.turns[-1]["id"]
    chat.ask("two")
    assert chat.wait(10) and chat.status == "error"
    turns = [dict(turn) for turn in chat.turns]
    browser(chat, type="retry", turn=older)  # an older answer: its question is not the last
    assert chat.turns == turns
    server.route("/v1/chat/completions", Script(openai_chunks(ANSWER * 3), pause=0.02))
    browser(chat, type="retry", turn=chat.turns[-1]["id"])
    wait_until(lambda: chat.status == "streaming")
    live = chat.turns[-1]["id"]
    browser(chat, type="retry", turn=live)  # while it streams: nothing to retry
    assert chat.status == "streaming" and chat.turns[-1]["id"] == live
    assert chat.wait(20) and chat.status == "done"
    assert [t["role"] for t in chat.turns] == ["user", "assistant"] * 2


def test_the_typed_rate_is_told_apart_from_the_received_rate(server, chats) -> None:
    url = server.route("/v1/chat/completions", Script(openai_chunks(ANSWER, size=40)))
    chat, _ = make(chats, url, speed=200, step=2)
    chat.ask("pace")
    assert chat.wait(20)
    stats = chat.stats
    print(f"received {stats['chars_per_second']} chars/s, typed {stats['typed_per_second']}")
    assert stats["chars_per_second"] > 1000, "the server sent it all at once"
    assert 120 < stats["typed_per_second"] < 260, "typed at the Speed setting"


@pytest.mark.parametrize(
    "content",
    [
        None,
        "stop",
        {"type": "send", "prompt": "   "},
        {"type": "send", "prompt": 3},
        {"type": "retry"},
        {"type": "retry", "turn": "2"},
        {"type": "retry", "turn": True},
        {"type": "nonsense"},
    ],
)
def test_malformed_browser_messages_are_ignored(content: object) -> None:
    assert parse_browser_message(content) is None


def test_browser_messages_are_parsed_as_declared() -> None:
    assert parse_browser_message({"type": "stop"}) == {"type": "stop", "turn": None}
    assert parse_browser_message({"type": "retry", "turn": 4, "x": 1}) == {
        "type": "retry",
        "turn": 4,
    }
    assert parse_browser_message({"type": "hello"}) == {"type": "hello"}
