"""Write tests/js/fixtures/rendered_streams.json: real renderer output, patch by patch.

Each stream is a Markdown answer fed to `streamchat.render.MarkdownStream` in pieces of
a few sizes (one character, a token's worth, a line's worth); the node suite applies
every batch of patches in place and checks the DOM against a parse of the whole HTML.
Run it again when the renderer changes: `python tests/js/make_streams.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from streamchat.render import MarkdownStream, Patch

OUT = Path(__file__).parent / "fixtures" / "rendered_streams.json"

CODE = (
    "```python\n"
    + "".join(
        f'def f{i}(x, y="<{i}>"):  # line {i} & more\n    return x * {i} + len(y)  # 🚀\n'
        for i in range(30)
    )
    + "```\n"
)
TABLE = "| name | kind | size & cost |\n|---|:---:|---:|\n" + "".join(
    f"| row {i} | *kind* `{i}` | {i * 7} KB <b> |\n" for i in range(25)
)
LISTS = (
    "Steps:\n\n1. first **bold** item\n2. second with `code` and a [link](http://x.y)\n"
    "   - nested a\n   - nested b & c\n3. third\n\n- [ ] task one\n- [x] task two\n\n"
    "> a quote that goes on\n> and on\n\nDone.\n"
)
MATH = (
    "Roots of $ax^2 + bx + c = 0$ are\n$$\nx = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\n$$\n"
    "and \\(e^{i\\pi} + 1 = 0\\).\n\n| f | value |\n|---|---|\n| $\\pi r^2$ | area |\n"
)
EMOJI = (
    "# Emoji 🚀 and entities\n\nA 👩‍👩‍👧 family, flags 🇫🇷🇩🇪, a &amp; b < c > d, "
    "\"quotes\" & 'apostrophes', non-breaking\u00a0space, and *emphasis that ends "
    'later* with ~~strike~~.\n\n---\n\nA [link with > in title](http://e.x "a > b").\n'
)
PROSE = " ".join(
    f"Sentence {i} says *something* about `streams` and **patches**." for i in range(40)
)
MIXED = "\n\n".join([PROSE[:600], CODE[:900] + "```", TABLE[:700], LISTS, MATH, EMOJI])

TEXTS = {
    "code": CODE,
    "table": TABLE,
    "lists": LISTS,
    "math": MATH,
    "emoji": EMOJI,
    "prose": PROSE,
    "mixed": MIXED,
}


def compact(op: Patch) -> dict[str, object]:
    """An op as patch_cases.json writes it: its name and the arguments it uses."""
    if op.op == "commit":
        return {"op": "commit", "size": op.size}
    fields = {"drop": op.drop, "keep": op.keep}
    return {"op": op.op, "html": op.html, **{key: value for key, value in fields.items() if value}}


def pieces(text: str, size: int, rng: random.Random) -> list[str]:
    out, at = [], 0
    while at < len(text):
        step = size if size > 0 else rng.randint(1, 12)
        out.append(text[at : at + step])
        at += step
    return out


def main() -> None:
    rng = random.Random(18)
    streams = []
    for name, text in TEXTS.items():
        # One character at a time for the short ones: every intermediate state.
        for size in (1, 0, 40) if len(text) < 1000 else (0, 40):
            stream = MarkdownStream()
            batches = [stream.append(piece) for piece in pieces(text, size, rng)]
            batches.append(stream.finish())
            batches = [[compact(op) for op in ops] for ops in batches if ops]
            streams.append({"name": f"{name}/{size or 'random'}", "batches": batches})
    OUT.write_text(json.dumps({"streams": streams}, ensure_ascii=False) + "\n", encoding="utf-8")
    print(OUT, sum(len(s["batches"]) for s in streams), "batches")


if __name__ == "__main__":
    main()
