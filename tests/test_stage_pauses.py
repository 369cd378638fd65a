"""Issue 24: natural pauses (`PauseMarks`, `PausingTypewriter`), on a simulated clock."""

from __future__ import annotations

import time

import pytest

from streamchat._pauses import PauseMarks, Pauses, PausingTypewriter
from streamchat.typewriter import Typewriter

P = Pauses(sentence=0.25, paragraph=0.6, block=0.8)
TEXT = "One. Two!\n\nA paragraph:\n```py\nx = 1. y\n\nz\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n"


def marks_of(text: str, size: int) -> list[tuple[str, float]]:
    """Each mark as the text shown before it (its last 6 characters) and its length."""
    scanner = PauseMarks(P)
    marks = []
    for start in range(0, len(text), size):
        marks += scanner.feed(text[start : start + size])
    return [(text[:position][-6:], seconds) for position, seconds in marks]


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_marks_at_sentences_paragraphs_code_blocks_and_tables(size: int) -> None:
    assert (
        marks_of(TEXT, size)
        == [
            ("One. ", 0.25),  # a sentence's end, after its space
            ("\nTwo!\n\n"[-6:], 0.6),  # a paragraph's end: before the next one
            ("graph:\n"[-6:], 0.8),  # before the code block (nothing inside it pauses)
            ("z\n```\n", 0.8),  # before the table's first row, not its others
        ]
    )


def test_no_sentence_pause_in_a_number_or_at_a_word() -> None:
    assert marks_of("Version 2.5 is out.Now e-mail", 3) == []


def reveal(typewriter: Typewriter, text: str, until: float) -> list[tuple[float, str]]:
    """Push `text` at 0 and take at every 10 ms: (time, text) of each reveal."""
    typewriter.push(text, 0.0)
    typewriter.close(0.0)
    shown = []
    for tick in range(int(until * 100) + 1):
        now = tick / 100
        if text := typewriter.take(now):
            shown.append((now, text))
    assert typewriter.finished
    return shown


def gap_after(shown: list[tuple[float, str]], prefix: str) -> float:
    """The time between the reveal that completes `prefix` and the next one."""
    text = ""
    for index, (now, piece) in enumerate(shown):
        text += piece
        if text == prefix:
            return shown[index + 1][0] - now
    raise AssertionError(f"no reveal ends at {prefix!r}")


def test_the_typewriter_halts_at_each_mark_and_keeps_its_pace_after() -> None:
    text = "Hi there.\n\nNext:\n```\ncode\n```\n"
    shown = reveal(PausingTypewriter(50, pauses=P), text, 5)
    assert "".join(piece for _, piece in shown) == text
    assert gap_after(shown, "Hi there.\n\n") == pytest.approx(0.62, abs=0.011)
    assert gap_after(shown, "Hi there.\n\nNext:\n") == pytest.approx(0.82, abs=0.011)
    # No burst after a pause: no take reveals more than one step's worth late.
    assert max(len(piece) for _, piece in shown) <= 2
    plain = reveal(Typewriter(50), text, 5)
    assert shown[-1][0] - plain[-1][0] == pytest.approx(0.6 + 0.8, abs=0.03)


def test_speed_zero_drops_the_pauses_and_shows_the_rest_at_once() -> None:
    typewriter = PausingTypewriter(20, pauses=P)
    typewriter.push("One. Two. Three.\n\nFour. " * 20, 0.0)
    assert typewriter.take(0.0) == "O"
    typewriter.speed = 0
    rest = typewriter.take(0.05)
    assert rest.endswith("Four.") and len(rest) == 20 * 24 - 2  # the last cluster waits
    typewriter.push("More. Text.", 0.06)
    assert typewriter.take(0.1) == " More. Text"  # no pause after "More. "
    assert typewriter.next_deadline() is None


def test_marks_at_one_place_make_one_pause_the_longest() -> None:
    shown = reveal(PausingTypewriter(50, pauses=P), "Intro.\n\n```\nx\n```\n", 5)
    assert gap_after(shown, "Intro.\n\n") == pytest.approx(0.82, abs=0.011)


@pytest.mark.parametrize(
    ("burst", "after"),
    [
        ("x\n" * 500_000, [(1, 0.6), (8, 0.25)]),  # a paragraph's end, then a sentence's
        ("x\n\n" * 333_333, [(8, 0.25)]),  # blank lines already: no second paragraph end
        ("A. " * 333_333, [(2, 0.6), (8, 0.25)]),  # one line: its end, then a blank one
        ("```\nx\n" * 125_001, []),  # an odd number of fences: the code block is open
    ],
)
def test_a_megabyte_at_once_is_followed_not_scanned(
    burst: str, after: list[tuple[int, float]]
) -> None:
    """A push's first 16 K are marked; the rest is only followed, at regex speed."""
    scanner = PauseMarks(P)
    started = time.process_time()
    scanner.feed(burst)
    assert time.process_time() - started < 0.25  # line by line: 0.6 s and more
    marks = scanner.feed("\n\nNext. One")
    assert marks == [(len(burst) + at, seconds) for at, seconds in after]
