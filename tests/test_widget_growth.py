"""A long conversation costs each turn end what a short one does.

The static copy of the conversation (`_static_copy`) is sent whole at every turn end
and saved whole with the notebook, so it is bounded; finished answers' HTML lives in
one trait (`finished`), so the widget's class and trait set do not grow per answer.
The answers come from a Python function: no server, hundreds of real turns in seconds.
"""

from __future__ import annotations

import json
from typing import Any

from streamchat._static_copy import static_copy
from streamchat.render import render_markdown
from streamchat.widget import StreamChat

ANSWER = ("Some **bold** text and `code` in a paragraph that goes on. " * 20)[:1000]


def sizes_of_the_saved_copy(chat: StreamChat) -> list[int]:
    """The bytes of each static copy the chat's displays are rewritten with."""
    sizes: list[int] = []

    def update(data: dict[str, Any], metadata: dict[str, Any]) -> None:
        sizes.append(len(json.dumps([data, metadata], ensure_ascii=False).encode()))

    chat._displays.update = update  # type: ignore[method-assign]
    return sizes


def sizes_of_turn_ends(chat: StreamChat) -> list[int]:
    """The bytes of the comm messages (state and custom) each turn end sends."""
    sizes: list[int] = []
    counted = [0]
    send, finish = chat._send, chat._driver._finish

    def counting_send(msg: dict[str, Any], buffers: Any = None) -> None:
        counted[0] += len(json.dumps(msg, ensure_ascii=False).encode())
        send(msg, buffers=buffers)

    def counting_finish(*args: Any) -> None:
        before = counted[0]
        finish(*args)
        sizes.append(counted[0] - before)

    chat._send = counting_send  # type: ignore[method-assign]
    chat._driver._finish = counting_finish  # type: ignore[method-assign]
    return sizes


def ask(chat: StreamChat, times: int) -> None:
    for n in range(times):
        chat.ask(f"question {n}")
        assert chat.wait(30)
        assert chat.status == "done"


def test_a_turn_end_sends_no_more_of_the_saved_copy_at_turn_150_than_at_turn_30(chats) -> None:
    chat = StreamChat(lambda messages: ANSWER, speed=0)
    chats.append(chat)
    sizes = sizes_of_the_saved_copy(chat)
    messages = sizes_of_turn_ends(chat)
    ask(chat, 150)
    assert len(sizes) == 150, "one rewrite per turn end"
    print(f"saved copy per turn end: turn 10 {sizes[9]:,} B, 30 {sizes[29]:,}, 150 {sizes[-1]:,}")
    print(f"messages per turn end: turn 10 {messages[9]:,} B, 150 {messages[-1]:,}")
    assert sizes[-1] <= sizes[29] * 1.05, "the copy grows with the conversation"
    assert messages[-1] <= messages[9] + 100, "the turn end's messages grow with the conversation"
    assert sizes[-1] < 1_000_000
    # The copy says what it left out; the transcript still has everything.
    copy = chat._repr_mimebundle_()[0]
    assert "earlier turns of this conversation are left out" in copy["text/html"]
    assert "question 149" in copy["text/plain"] and "question 0\n" not in copy["text/plain"]
    assert "question 0\n" in chat.transcript


def test_ten_answers_of_a_megabyte_put_less_than_a_megabyte_in_the_saved_notebook() -> None:
    answer = "word " * 200_000  # 1 MB; rendered as a paragraph (the renderer is not measured)
    turns: list[dict[str, Any]] = []
    sources: list[str] = []
    for n in range(10):
        turns += [
            {"id": 2 * n, "role": "user", "text": f"question {n}"},
            {"id": 2 * n + 1, "role": "assistant", "html": f"<p>{answer}</p>", "status": "done"},
        ]
        sources += [f"question {n}", answer]
    copy = static_copy(turns, sources)
    size = len(json.dumps(copy, ensure_ascii=False).encode())
    print(f"saved copy after ten 1 MB answers: {size:,} B")
    assert size < 1_000_000
    assert "question 9" in copy["text/html"], "the last question"
    assert (
        "shortened in this saved copy: the first 20,000 of 1,000,000 characters"
        in (copy["text/html"])
    )
    assert "18 earlier turns of this conversation are left out" in copy["text/plain"]


def test_sixty_answers_leave_the_class_and_its_traits_as_they_were(chats) -> None:
    chat = StreamChat(lambda messages: ANSWER, speed=0)
    chats.append(chat)
    # (anywidget makes each instance a class of its own once, for `_esm` and `_css`.)
    cls, keys, traits = type(chat), list(chat.keys), set(chat.trait_names())
    mro = len(cls.__mro__)
    ask(chat, 60)
    print(f"MRO length after 60 answers: {len(type(chat).__mro__)} (before: {mro})")
    assert type(chat) is cls
    assert len(type(chat).__mro__) == mro
    assert chat.keys == keys
    assert set(chat.trait_names()) == traits
    # Every answer's HTML is still in the state a page opened later asks for.
    finished = chat.get_state()["finished"]
    answers = [turn for turn in chat.turns if turn["role"] == "assistant"]
    assert [finished[str(turn["id"])]["html"] for turn in answers] == [
        turn["html"] for turn in answers
    ]


def test_a_browser_cannot_rewrite_the_finished_answers(chats) -> None:
    """The kernel's copy is what it rendered and sanitized: what a page sends back (a
    slider's save, a hostile page) does not replace what other pages are given."""
    chat = StreamChat(lambda messages: "**safe**", speed=0)
    chats.append(chat)
    ask(chat, 1)
    (answer,) = [turn for turn in chat.turns if turn["role"] == "assistant"]
    forged = {str(answer["id"]): {"html": "<img src=x onerror=alert(1)>"}}
    chat.set_state({"finished": forged, "speed": 40.0})
    assert chat.speed == 40.0
    kept = chat.get_state()["finished"][str(answer["id"])]["html"]
    assert kept == render_markdown("**safe**") == "<p><strong>safe</strong></p>\n"


def test_a_view_that_asks_again_gets_that_answer_in_one_message(chats) -> None:
    chat = StreamChat(lambda messages: "**safe**", speed=0)
    chats.append(chat)
    sent: list[Any] = []
    chat._emit = sent.append  # type: ignore[method-assign]
    ask(chat, 2)
    first = chat.turns[1]
    sent.clear()
    chat._on_frontend_msg(chat, {"type": "resend", "turn": first["id"]}, None)
    chat._on_frontend_msg(chat, {"type": "resend", "turn": 10**9}, None)  # no such answer
    assert sent == [
        {
            "type": "finished",
            "turn": first["id"],
            "html": first["html"],
            "reasoning_html": first["reasoning_html"],
            "source": first["source"],
        }
    ]


def test_a_retried_answer_leaves_no_html_behind(chats) -> None:
    answers = iter([RuntimeError("no"), "second try"])

    def source(messages: list[dict[str, str]]) -> str:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    chat = StreamChat(source, speed=0)
    chats.append(chat)
    chat.ask("hi")
    assert chat.wait(30) and chat.status == "error"
    failed = chat.turns[-1]["id"]
    chat.retry()
    assert chat.wait(30) and chat.status == "done"
    assert list(chat.finished) == [str(chat.turns[-1]["id"])]
    assert str(failed) not in chat.get_state()["finished"]
