"""Issue 24, the kernel's side of the stage: on-screen redaction, words per minute, Instant
and `chat.stage()`, on a real chat streaming from a Python source."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from streamchat import _messages
from streamchat._pauses import chars_per_second
from streamchat._stage import MASK, RedactedStream, Redaction
from streamchat.render import MarkdownStream, render_markdown
from streamchat.widget import StreamChat

SECRETS = "Write to bob.smith@example.com, key sk-proj-abcdefgh12345678XYZ, on db01.corp.internal."


def test_each_preset_masks_its_kind_and_leaves_look_alikes() -> None:
    redaction = Redaction.of(True)
    assert redaction(SECRETS) == f"Write to {MASK}, key {MASK}, on {MASK}."
    assert redaction("AIza" + "A" * 35) == MASK
    assert redaction("ping 10.0.0.12 now") == f"ping {MASK} now"
    kept = "Edit file.py and widget.js, call np.array, e.g. v2.5; sk-learn is a word."
    assert redaction(kept) == kept
    assert Redaction.of(["email"])(SECRETS).count(MASK) == 1
    assert Redaction.of([r"ACME-\d+"])("ticket ACME-42 done") == f"ticket {MASK} done"
    assert not Redaction.of(())
    with pytest.raises(re.error):
        Redaction.of(["(unclosed"])
    with pytest.raises(ValueError, match="preset names or regular expressions"):
        Redaction.of([3])  # type: ignore[list-item]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_a_match_split_across_pieces_is_masked_before_it_is_rendered(size: int) -> None:
    text = f"# Contacts\n\n{SECRETS}\n\n```\ncurl https://api.example.com\n```\n"
    stream = RedactedStream(MarkdownStream(), Redaction.of(True))
    seen = []
    for start in range(0, len(text), size):
        for patch in stream.append(text[start : start + size]):
            seen.append(patch.html)
    seen += [patch.html for patch in stream.finish()]
    assert stream.text == text  # what the model said, for the history
    assert stream.html == render_markdown(Redaction.of(True)(text))
    for secret in ("bob.smith", "example.com", "sk-proj", "db01"):
        assert not any(secret in html for html in seen)


def test_a_word_without_end_is_not_held_for_ever() -> None:
    stream = RedactedStream(MarkdownStream(), Redaction.of(["email"]))
    stream.append("x" * 10_000)
    assert len(stream.html) > 9_000  # shown but for the last characters
    stream.finish()
    assert "x" * 10_000 in stream.html


def test_a_chat_masks_what_the_room_sees_but_not_what_the_model_gets(chats) -> None:
    asked = []

    def answer(messages: list[dict[str, str]]) -> str:
        asked.append(messages[-1]["content"])
        return SECRETS

    chat = StreamChat(answer, redact=["email", "api_key", "host"], speed=0)
    chats.append(chat)
    chat.ask("Mail alice@example.org please")
    assert chat.wait(30)
    assert asked == ["Mail alice@example.org please"]
    assert chat.messages[-2]["content"] == "Mail alice@example.org please"
    assert chat.messages[-1]["content"] == SECRETS
    question, reply = chat.turns
    assert question["text"] == f"Mail {MASK} please"
    stored = chat.finished[str(reply["id"])]
    data, _ = chat._repr_mimebundle_()
    for shown in (stored["html"], stored["source"], chat.transcript, *data.values()):
        text = str(shown)
        assert "bob.smith" not in text and "sk-proj" not in text and "alice@" not in text
    assert MASK in stored["html"] and MASK in data["text/html"]


def test_no_patterns_no_change(chats) -> None:
    chat = StreamChat(lambda messages: SECRETS, speed=0)
    chats.append(chat)
    chat.ask("hi")
    assert chat.wait(30)
    assert "bob.smith@example.com" in chat.finished[str(chat.turns[-1]["id"])]["html"]


def test_wpm_sets_the_speed_in_characters_per_second(chats) -> None:
    assert chars_per_second(180) == 18
    with pytest.raises(ValueError):
        chars_per_second(0)
    chat = StreamChat(lambda messages: "hi", wpm=180)
    chats.append(chat)
    assert chat.speed == 18
    chat.wpm = 300
    assert chat.speed == 30
    chat.speed = 24  # the Speed slider moved: the pace in words follows
    assert chat.wpm == 240 and chat.speed == 24
    chat.speed = 0  # as it arrives: no pace in words
    assert chat.wpm is None and chat.speed == 0


def test_instant_shows_the_rest_of_a_slow_answer_at_once(chats) -> None:
    sent: list[Any] = []
    chat = StreamChat(lambda messages: "word " * 400, speed=5, pauses=True)
    chats.append(chat)
    real = chat._emit
    chat._emit = lambda content: (sent.append(content), real(content))  # type: ignore[method-assign]
    chat.ask("go")
    polls = threading.Event()
    for _ in range(600):  # until the answer is live and typing (30 s at most)
        if chat.status == "streaming" or polls.wait(0.05):
            break
    assert chat.status == "streaming"
    turn = chat.turns[-1]["id"]
    chat._on_frontend_msg(chat, {"type": "instant", "turn": turn + 1}, None)  # another turn
    assert not chat.wait(0.5)
    chat._on_frontend_msg(chat, {"type": "instant", "turn": turn}, None)
    assert chat.wait(5), "Instant must end a 400-word answer typed at 5 chars/s at once"
    assert chat.turns[-1]["status"] == "done"
    assert chat.messages[-1]["content"] == "word " * 400


def test_stage_tells_the_views(chats) -> None:
    sent: list[Any] = []
    chat = StreamChat(lambda messages: "hi")
    chats.append(chat)
    chat._emit = sent.append  # type: ignore[method-assign]
    chat.stage()
    chat.stage(False)
    assert sent == [_messages.stage(True), _messages.stage(False)]
    assert _messages.parse_browser_message({"type": "instant", "turn": "x"}) == {
        "type": "instant",
        "turn": None,
    }


@pytest.mark.parametrize("unit", ["a", "a.", "1.", "a@", "a-", "x@y.", "a.com."])
def test_no_text_makes_the_patterns_backtrack(unit: str) -> None:
    """32 K of a pattern's favourite characters (what the outbox renders at most at once)
    is masked in linear time: unanchored, "a." * 16384 took 12 s."""
    text = unit * (32_768 // len(unit))
    started = time.process_time()
    Redaction.of(True)(text)
    assert time.process_time() - started < 0.25
