"""Check that every fact of an old README still stands in the new README or in docs/.

    python tools/check_moved_facts.py [--old REV]      # REV: default 608fde1, the last
                                                       # README before the move to docs/

When the README became a front page (issue 25), its reference text moved to docs/,
mostly word for word. This splits the old README (`git show REV:README.md`) into
facts: every sentence of its prose, every row of its tables, every line of its code
blocks, and every section heading. A fact stands when its words (whitespace and `**`
ignored) appear in the new README.md or a docs/*.md page; a fact that was reworded
stands when all of the new words that `REWORDED` gives for it appear. A section stands
when the page `SECTIONS` names for it exists and the README links to it. It prints
each fact that does not stand and exits 1 if there is any: run it again after a merge
that touched the README on another branch, with that branch's old README as REV.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Where each old section lives now.
SECTIONS = {
    "Set-up: two commands": "docs/development.md",
    "In a notebook": "docs/notebook.md",
    "Everywhere a notebook goes": "docs/frontends.md",
    "Record once, demo anywhere": "docs/tape.md",
    "Demo to a room": "docs/stage.md",
    "From Python: generators and SDK clients": "docs/sources.md",
    "From the terminal": "docs/cli.md",
    "What it speaks": "docs/sources.md",
    "How it is built": "docs/architecture.md",
    "Benchmarks": "docs/benchmarks.md",
}

# Old facts said in new words: the old text, and the phrases that now say it (each must
# appear in the new README or docs/).
REWORDED: dict[str, tuple[str, ...]] = {
    # Measured again with more tests in the tier: 1m58s at load 4.
    "While you work, `make test-fast` runs the unit tier (no browser, real servers or load "
    "tests) in about a minute;": (
        "`make test-fast` runs the unit tier (no browser, real servers or load tests)",
        "in under two minutes",
    ),
    # The opening, now the README's two sentences and docs/notebook.md's first lines.
    "Streamed LLM answers as a first-class citizen of notebooks.": (
        "Streamed LLM answers as a first-class citizen of notebooks",
    ),
    "Write `StreamChat(url)` in a Jupyter cell and get a chat bubble in which the model's "
    "answer types itself out, Markdown rendered live, with a blinking cursor, speed and step "
    "sliders, a prompt box and a Stop button.": (
        "`StreamChat(url)` in a Jupyter cell gives a chat bubble in which the model's answer "
        "types itself out, Markdown rendered live, with a blinking cursor, speed and step "
        "sliders, a prompt box and a Stop button.",
    ),
    # Links relative to docs/ now that the text lives there.
    "`Race` sends one prompt to several sources at once, side by side, and keeps the figures "
    "in a table the next cell can use (see [docs/race.md](docs/race.md)):": (
        "`Race` sends one prompt to several sources at once, side by side, and keeps the "
        "figures in a table the next cell can use (see [race.md](race.md)):",
    ),
    # "Record once, demo anywhere": docs/tape.md said all of it, in its own words.
    "Every answer is recorded as it streams, with its timing.": (
        "A tape is a conversation recorded with its timing",
        "# recording is always on",
    ),
    "Save the conversation as a tape and replay it later with no network, no key and none of "
    "the day's latency or randomness: the same answers, typed at the recorded pace (or the "
    "Speed slider's), with the footer saying it is a replay.": (
        "A replay types the same answers again through the same typewriter, renderer and "
        "statistics, with no network, no key, no randomness and the latency of the day it was "
        "recorded.",
        'pace="typed", speed=80)  # the slider\'s pace',
        "The answers' footer says the answer is replayed",
    ),
    'chat.save("demo.tape.json") # after a rehearsal with the real model': (
        'chat.save("demo.tape.json") # the conversation so far',
        "Record a rehearsal",
    ),
    'StreamChat.replay("demo.tape.json", rate=1.5) # on stage: preset prompts are the recorded '
    "ones": (
        'StreamChat.replay("demo.tape.json", rate=1.5)',
        "# preset prompts: the recorded ones",
    ),
    'StreamChat(url, history="demo.tape.json") # carry on where the tape ends': (
        'chat = StreamChat(url, history="demo.tape.json") # carry on in a new kernel',
    ),
    "![A chat on stage in Voila: one question and its answer in large type, an e-mail address "
    "masked](docs/img/stage.png)": (
        "![A chat on stage in Voila: one question and its answer in large type, an e-mail "
        "address masked](img/stage.png)",
    ),
    # The CLI's request options and keys, now under their own headings.
    "A tape holds no key, header value or URL credential ([format and details](docs/tape.md)).": (
        "A tape holds no key, header value or URL credential ([tapes](tape.md)).",
    ),
    "On this 2-core virtual machine a thread's wake-up after 20 ms of sleep costs ~90 us of CPU "
    "before any Python runs, and the code after it runs on cold caches, so the loop thread now "
    "wakes on one grid of frames (`_frames.py`, above): 33 times a second instead of 85.": (
        "On this 2-core virtual machine a thread's wake-up after 20 ms of sleep costs ~90 us of "
        "CPU before any Python runs, and the code after it runs on cold caches, so the loop "
        "thread now wakes on one grid of frames (`_frames.py`, see "
        "[architecture](architecture.md)): 33 times a second instead of 85.",
    ),
}

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z`(\"*!\[])")


def normalize(text: str) -> str:
    return " ".join(text.replace("**", "").split())


def facts(markdown: str) -> list[tuple[str, str]]:
    """(kind, text) for every heading, table row, code line and prose sentence."""
    found: list[tuple[str, str]] = []
    in_code = False
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            text = normalize(" ".join(paragraph))
            found.extend(("sentence", s) for s in _SENTENCE_END.split(text) if s)
            paragraph.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush()
            in_code = not in_code
        elif in_code:
            if line.strip():
                found.append(("code", normalize(line)))
        elif line.startswith("#"):
            flush()
            found.append(("heading", line.lstrip("#").strip()))
        elif line.startswith("|"):
            flush()
            if not re.fullmatch(r"[|\-: ]+", line):
                found.append(("table row", normalize(line)))
        elif not line.strip() or line.startswith("- "):
            flush()
            if line.strip():
                paragraph.append(line[2:])
        else:
            paragraph.append(line)
    flush()
    return found


def standing(kind: str, text: str, corpus: str, readme: str) -> bool:
    if kind == "heading":
        page = SECTIONS.get(text)
        return text == "streamchat" or (
            page is not None and (ROOT / page).exists() and f"]({page})" in readme
        )
    if text in REWORDED:
        return all(normalize(phrase) in corpus for phrase in REWORDED[text])
    return text in corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="608fde1", help="the revision of the old README")
    args = parser.parse_args(argv)
    old = subprocess.run(
        ["git", "show", f"{args.old}:README.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = [readme, *(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("docs/*.md")))]
    corpus = normalize("\n".join(pages))
    old_facts = facts(old)
    missing = [(kind, text) for kind, text in old_facts if not standing(kind, text, corpus, readme)]
    counts: dict[str, int] = {}
    for kind, _ in old_facts:
        counts[kind] = counts.get(kind, 0) + 1
    reworded = sum(text in REWORDED for _, text in old_facts)
    unused = set(REWORDED) - {text for _, text in old_facts}
    print(
        f"{len(old_facts)} facts in README.md at {args.old} "
        f"({', '.join(f'{n} {kind}s' for kind, n in counts.items())}); "
        f"{reworded} reworded, {len(missing)} not found"
    )
    for kind, text in missing:
        print(f"  not found ({kind}): {text}")
    for text in sorted(unused):
        print(f"  REWORDED names no fact of the old README: {text}")
    return 1 if missing or unused else 0


if __name__ == "__main__":
    sys.exit(main())
