"""Structure of HTML for the spec conformance tests: tags, text, href/src/alt.

Sanitizing and highlighting are set aside: the renderer's <div>/<span> wrappers, classes,
`target`/`rel` and whitespace between tags do not count; text inside <code> counts
exactly, other text with its white space runs collapsed.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

SPEC = Path(__file__).parent / "spec"
_KEPT = ("href", "src", "alt")
_WRAPPERS = frozenset({"div", "span"})
# Raw HTML in the source that the spec passes through: streamchat escapes raw HTML on
# purpose (a model's tags never run), so such examples are left out.
_RAW_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?=[\s/>])|<!--|<\?|<![A-Z]|<!\[CDATA\[")
_RAW_SECTIONS = frozenset({"HTML blocks", "Raw HTML", "Disallowed Raw HTML"})


class _Structure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, ...]] = []
        self._text: list[str] = []
        self._code = 0

    def _flush(self) -> None:
        text = "".join(self._text)
        self._text = []
        if not self._code:
            text = re.sub(r"\s+", " ", text).strip()
        if text:
            self.out.append(("text", text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _WRAPPERS:
            return
        self._flush()
        kept = tuple(sorted(f"{name}={value or ''}" for name, value in attrs if name in _KEPT))
        self.out.append(("start", tag, *kept))
        self._code += tag == "code"

    def handle_endtag(self, tag: str) -> None:
        if tag in _WRAPPERS:
            return
        self._flush()
        self._code -= tag == "code" and self._code > 0
        self.out.append(("end", tag))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _WRAPPERS:
            self.out.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self._text.append(data)


_VOID = frozenset({"br", "hr", "img", "input"})


def structure(html: str) -> list[tuple[str, ...]]:
    parser = _Structure()
    parser.feed(html)
    parser.close()
    parser._flush()
    # A void element is one start, however it was written.
    return [item for item in parser.out if not (item[0] == "end" and item[1] in _VOID)]


def examples(name: str) -> list[dict[str, object]]:
    return json.loads((SPEC / f"{name}.json").read_text(encoding="utf-8"))["examples"]


def raw_html(example: dict[str, object]) -> bool:
    """The example's source holds raw HTML that the spec passes through."""
    if example["section"] in _RAW_SECTIONS or example["extension"] == "tagfilter":
        return True
    markdown, html = str(example["markdown"]), str(example["html"])
    return any(found.group() in html for found in _RAW_TAG.finditer(markdown))
