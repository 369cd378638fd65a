"""The one Markdown engine: markdown-it-py set up for GitHub Flavored Markdown, and its rules.

Models write GitHub Flavored Markdown (https://github.github.com/gfm/), which is CommonMark
(https://spec.commonmark.org/0.31.2/) plus tables, strikethrough, task lists and extended
autolinks. markdown-it-py follows CommonMark, gives block tokens with source line maps
(what `MarkdownStream` splits an answer by) and is what rich's terminal Markdown parses
with, so the widget, the saved copy and the terminal all read an answer through `parser`.

On top of the "commonmark" preset with its `table` and `strikethrough` rules:

* raw HTML is off: the model's `<b>` shows as the text "<b>" (chat UIs do the same);
* math (`$...$`, `\\(...\\)`, `$$...$$`, `\\[...\\]`) as an inline rule and a block rule,
  found by `_math.match` (Pandoc's rule for `$`: "$5 and $10" stays text); being rules,
  they never look inside code spans, code blocks, link destinations or autolinks;
* task list items (https://github.github.com/gfm/#task-list-items-extension-);
* extended autolinks (https://github.github.com/gfm/#autolinks-extension-): `www.`,
  `http(s)://` and e-mail addresses, by GFM's own rules. linkify-it-py would link more
  ("README.md" or "example.com" as links) and adds a dependency, so this module has the
  few lines GFM describes;
* images become links ("🖼 alt") unless allowed, and a link whose text names another host
  than its target says the real host after it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, normalizeReference
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.reference import reference as _engine_reference
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from streamchat import _math

from ._highlight import CodeBlock
from ._sanitize import LINK_HOST_CLASS

__all__ = ["IMAGE_MARK", "parser", "top_level_blocks"]

IMAGE_MARK = "🖼"
MAX_NESTING = 20  # markdown-it's own guard: deeper lists and quotes stay text


@functools.cache
def parser(allow_images: bool = False) -> MarkdownIt:
    """The configured engine (one per setting; markdown-it keeps no state between calls)."""
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough"])
    # With "html" off these rules take nothing; each was still tried at every line.
    md.disable(["html_block", "html_inline"])
    md.block.ruler.at("reference", _reference)
    md.block.ruler.before("table", "simple_reference", _simple_reference)
    md.inline.ruler.before("escape", "math", _math_inline)
    md.block.ruler.before(
        "fence", "math_block", _math_block, {"alt": ["paragraph", "reference", "blockquote"]}
    )
    md.core.ruler.after("text_join", "gfm_autolinks", _autolinks)
    md.core.ruler.after("gfm_autolinks", "task_lists", _task_lists)
    md.core.ruler.after("task_lists", "streamchat_links", _links(allow_images))
    md.core.ruler.after("streamchat_links", "table_align", _table_align)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _code_block)
    for name in ("math_inline", "math_block", "streamchat_html"):
        md.add_render_rule(name, _raw)
    md.add_render_rule("reference", _nothing)
    return md


def top_level_blocks(tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """The line ranges [start, end) of the top-level blocks, in order."""
    return [
        (token.map[0], token.map[1])
        for token in tokens
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]


def _reference(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's link reference definition rule, leaving a token (not hidden: the
    renderer would end a line after it, which a streamed block has not) with the
    definition's line map: a definition is a block of its own, where streams split."""
    begin = state.bMarks[start] + state.tShift[start]
    if state.src.find("]:", begin, state.eMarks[start]) < 0 and (
        start + 1 >= state.lineMax or state.isEmpty(start + 1)
    ):
        return False  # its label would have to go on to the next line, and none does
    if not _engine_reference(state, start, end, silent):
        return False
    if not silent:
        token = state.push("reference", "", 0)
        token.map = [start, state.line]
    return True


def _simple_reference(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """`_reference` of a simple definition followed by a blank line or the end, tried
    before every other block rule: none of them takes a line that starts with "[" and
    is followed by a blank line (a table's header is followed by its delimiter row)."""
    found = _one_line_reference(state, start)
    if not found:
        return False  # (False: not a definition; the other rules tell what it is)
    if silent:
        return True
    label, href = found
    state.line = start + 1
    references = state.env.setdefault("references", {})
    ref = {"title": "", "href": href, "map": [start, state.line]}
    if label not in references:
        references[label] = ref
    else:
        state.env.setdefault("duplicate_refs", []).append({**ref, "label": label})
    token = state.push("reference", "", 0)
    token.map = [start, state.line]
    return True


# A definition on a line of its own, "[label]: destination", with no title, and no angle
# brackets, parentheses, entities or backslashes in its destination: the usual kind (and
# 50,000 of them in cmark-gfm's "many references" case).
_SIMPLE_REFERENCE = re.compile(r"\[([^\[\]\\]+)\]:[ \t]*([^\x00-\x20\x7f<>()&\\]+)[ \t]*")


def _one_line_reference(state: StateBlock, start: int) -> tuple[str, str] | None:
    """What markdown-it's rule finds of a simple definition followed by a blank line or
    the end (no title can follow on the next line), at a fraction of its cost: (its
    normalized label, its link) if it is one, else None (the engine's rule decides)."""
    begin = state.bMarks[start] + state.tShift[start]
    if state.src[begin : begin + 1] != "[" or state.is_code_block(start):
        return None
    if start + 1 < state.lineMax and not state.isEmpty(start + 1):
        return None
    found = _SIMPLE_REFERENCE.fullmatch(state.src, begin, state.eMarks[start])
    if found is None:
        return None
    label = normalizeReference(found.group(1))
    href = _normalized_link(state.md, found.group(2))
    return (label, href) if label and href is not None else None


@functools.lru_cache(maxsize=256)
def _normalized_link(md: MarkdownIt, destination: str) -> str | None:
    """The destination as the engine's rule keeps it; None: one it refuses."""
    href = md.normalizeLink(destination)
    return href if md.validateLink(href) else None


# --- math -----------------------------------------------------------------------------------


def _math_inline(state: StateInline, silent: bool) -> bool:
    """A formula at state.pos: `_math.match` knows the delimiters and Pandoc's `$` rule.

    Runs before `escape`, so "\\(" opens a formula instead of escaping "(".
    """
    if state.src[state.pos] not in "$\\":
        return False
    formula = _math.match(state.src, state.pos, checked=True)
    if formula is None or formula.end > state.posMax:
        return False
    if not silent:
        token = state.push("math_inline", "math", 0)
        token.content = _math.to_html(formula)
        token.markup, token.info = formula.opener, formula.source
    state.pos = formula.end
    return True


_DISPLAY_OPENERS = {"$$": "$$", "\\[": "\\]"}
_OPENERS = tuple(_DISPLAY_OPENERS)


def _math_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """A display formula whose opener starts a line, up to the line its closer ends.

    Like a fence, the opener alone decides that a formula begins, so no later line can
    change how earlier ones parse (what `MarkdownStream` relies on): it ends at its
    closer, at a blank line or at the end of its container. Unclosed, it shows as the
    text it is; while streaming, `_math.PENDING` at the end of the text marks it as
    being typed. "$$5" opens no formula (a price).
    """
    if not state.src.startswith(_OPENERS, state.bMarks[start] + state.tShift[start]):
        return False  # (first: it is tried on every line of every paragraph)
    if state.is_code_block(start):
        return False
    first = state.src[state.bMarks[start] + state.tShift[start] : state.eMarks[start]]
    opener = first[:2]
    closer = _DISPLAY_OPENERS.get(opener)
    if closer is None or first[2:3].isdigit():
        return False
    if first[2:].strip() and _close_display(first[2:], closer) is None:
        return False  # text after the opener: a formula within a paragraph, if any
    if silent:
        return True
    line, text, found = start, first[2:], _close_display(first[2:], closer)
    while found is None:
        if line + 1 >= end or state.isEmpty(line + 1) or state.sCount[line + 1] < state.blkIndent:
            break
        line += 1
        text += "\n" + state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
        found = _close_display(text, closer)
    token = state.push("math_block", "math", 0)
    token.block = True
    token.markup, token.info = opener, text
    token.map = [start, line + 1]
    if found is None:
        token.content = f"<p>{escapeHtml(opener + text)}</p>\n"
    else:
        token.content = _math.to_html(_math.Formula(0, 0, opener, *found)) + "\n"
    state.line = line + 1
    return True


def _close_display(text: str, closer: str) -> tuple[str, bool] | None:
    """(the LaTeX, closed) if `text` (after the opener) ends with the closer or PENDING."""
    stripped = text.rstrip()
    if stripped.endswith(_math.PENDING):
        return stripped[: -len(_math.PENDING)].strip(), False
    if stripped.endswith(closer) and len(stripped) >= len(closer):
        inner = stripped[: -len(closer)]
        if closer == "$$" and inner.endswith("\\"):
            return None
        return inner.strip(), True
    return None


def _raw(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """A token whose content is HTML made by a rule (MathML, a note): as it is."""
    return tokens[idx].content


def _nothing(
    self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return ""


# --- code -----------------------------------------------------------------------------------


def _fence(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    return _after_hidden(tokens, idx) + code_html(token.info, token.content) + "\n"


def _code_block(
    self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _after_hidden(tokens, idx) + code_html("", tokens[idx].content) + "\n"


def _after_hidden(tokens: Sequence[Token], idx: int) -> str:
    """A line break after a tight list item's text, as markdown-it puts before a block."""
    return "\n" if idx and tokens[idx - 1].hidden else ""


def code_html(info: str, content: str) -> str:
    """A code block's HTML, line by line as `MarkdownStream` builds it."""
    block = CodeBlock(info)
    for line in content.split("\n")[:-1] if content else []:
        block.add(line)
    return block.html(final=True)


# --- GFM: task lists, autolinks, table alignment ----------------------------------------------

_TASK = re.compile(r"\[([ xX])\](?=[ \t]|$)")


def _task_lists(state: StateCore) -> None:
    """A list item whose paragraph starts with "[ ]" or "[x]" gets a disabled checkbox."""
    tokens = state.tokens
    for index in range(2, len(tokens)):
        token = tokens[index]
        if not (
            token.type == "inline"
            and tokens[index - 1].type == "paragraph_open"
            and tokens[index - 2].type == "list_item_open"
            and token.children
            and token.children[0].type == "text"
        ):
            continue
        first = token.children[0]
        found = _TASK.match(first.content)
        if found is None:
            continue
        first.content = first.content[found.end() :]
        box = Token("streamchat_html", "", 0)
        checked = " checked" if found.group(1) != " " else ""
        box.content = f'<input type="checkbox"{checked} disabled>'
        token.children.insert(0, box)
        tokens[index - 2].attrSet("class", "task-list-item")
        _list_of(tokens, index - 2).attrSet("class", "task-list")


def _list_of(tokens: Sequence[Token], item: int) -> Token:
    level = tokens[item].level - 1
    for index in range(item - 1, -1, -1):
        if tokens[index].level == level and tokens[index].nesting == 1:
            return tokens[index]
    return tokens[item]


def _table_align(state: StateCore) -> None:
    """`align="left"`, not an inline style (the sanitizer keeps no style attribute); and
    GFM's <del> for strikethrough, not markdown-it's <s>."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and token.attrs:
            style = str(token.attrs.pop("style", ""))
            token.attrs = {"align": style.removeprefix("text-align:")} if style else {}
        elif token.type == "inline" and token.children:
            for child in token.children:
                if child.type in ("s_open", "s_close"):
                    child.tag = "del"


# GFM's extended autolinks: where one may start, and its valid domain.
_AUTOLINK_START = re.compile(r"(?:https?://|www\.)|[\w.+-]+@", re.IGNORECASE)
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)*")
_EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_TRAILING = "?!.,:*_~'\""
_ENTITY_END = re.compile(r"&[A-Za-z0-9]+;$")


def _autolinks(state: StateCore) -> None:
    """Link `www.`, `http(s)://` and e-mail addresses in text outside links."""
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        children, out, depth, previous = token.children, [], 0, ""
        for child in children:
            depth += child.type == "link_open"
            depth -= child.type == "link_close"
            if child.type == "text" and depth == 0 and _AUTOLINK_START.search(child.content):
                out += _linked(child, previous)
            else:
                out.append(child)
            previous = child.content[-1:] if child.type == "text" else " "
        token.children = out


def _linked(text: Token, before: str) -> list[Token]:
    content, tokens, last, position = text.content, [], 0, 0
    while (found := _AUTOLINK_START.search(content, position)) is not None:
        start, opener = found.start(), found.group()
        prior = content[start - 1] if start else before
        link = None
        if opener.endswith("@") or prior == "" or prior.isspace() or prior in "*_~(":
            link = _extended(content, start, opener)
        if link is None:
            position = found.end()
            continue
        end, href = link
        if start > last:
            tokens.append(_text(content[last:start]))
        tokens += _link_tokens(href, content[start:end])
        last = position = end
    if last == 0:
        return [text]
    if last < len(content):
        tokens.append(_text(content[last:]))
    return tokens


def _extended(content: str, start: int, opener: str) -> tuple[int, str] | None:
    """(end, href) of the extended autolink at `start`, or None."""
    if opener.endswith("@"):
        email = _EMAIL.match(content, start)
        if email is None:
            return None
        end = email.end()
        while content[end - 1] == ".":
            end -= 1
        if content[end - 1] in "-_" or "." not in content[email.start(1) : end]:
            return None
        return end, "mailto:" + content[start:end]
    domain = _DOMAIN.match(content, start + len(opener))
    if domain is None:
        return None
    labels = domain.group().split(".")
    if len(labels) < 2 or any("_" in label for label in labels[-2:]):
        return None  # a valid domain has a period, and no "_" in its last two labels
    end = domain.end()
    while end < len(content) and not content[end].isspace() and content[end] != "<":
        end += 1
    end = _trim(content, start, end)
    if end <= start + len(opener):
        return None
    url = content[start:end]
    return end, ("http://" + url if opener.lower() == "www." else url)


def _trim(content: str, start: int, end: int) -> int:
    """GFM's extended autolink path validation: trailing punctuation, unmatched ")" and
    an entity-like end are not part of the link."""
    while end > start:
        last = content[end - 1]
        if last in _TRAILING or (
            last == ")" and content.count("(", start, end) < content.count(")", start, end)
        ):
            end -= 1
        elif last == ";" and (entity := _ENTITY_END.search(content, start, end)) is not None:
            end = entity.start()
        else:
            break
    return end


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _link_tokens(href: str, label: str) -> list[Token]:
    opening = Token("link_open", "a", 1)
    opening.attrs = {"href": href}
    opening.markup, opening.info = "linkify", "auto"
    closing = Token("link_close", "a", -1)
    closing.markup, closing.info = "linkify", "auto"
    return [opening, _text(label), closing]


# --- links and images -----------------------------------------------------------------------

# A link text that is itself a URL or a host name ("https://bank.example/login",
# "bank.example"): the reader takes it for the target.
_URL_TEXT = re.compile(
    r"\s*(?:[a-z][a-z0-9+.\-]*://)?([^\s/:?#@]+\.[^\s/:?#@]+)(?:[/:?#]\S*)?\s*", re.I
)
# A file name looks like a host name ("README.md"); it names no site.
_FILE_SUFFIXES = frozenset(
    (
        *("md", "py", "txt", "js", "ts", "json", "html", "css", "rs", "go", "sh", "yml"),
        *("yaml", "toml", "ipynb", "csv", "pdf", "png", "jpg", "zip"),
    )
)


def _links(allow_images: bool) -> Any:
    def rule(state: StateCore) -> None:
        for token in state.tokens:
            if token.type == "inline" and token.children:
                token.children = _redressed(token.children, allow_images)

    return rule


def _redressed(children: list[Token], allow_images: bool) -> list[Token]:
    """Images as links (unless allowed); a note of the real host after a link whose text
    names another."""
    out: list[Token] = []
    opened: list[int] = []  # where the open links' tokens are in `out`
    for child in children:
        if child.type == "image" and not allow_images:
            out += _image_link(child, inside_link=bool(opened))
            continue
        if child.type == "link_close" and opened:
            start = opened.pop()
            note = _host_note(out[start], out[start + 1 :])
            if note is not None:
                out.append(note)
        if child.type == "link_open":
            opened.append(len(out))
        out.append(child)
    return out


def _image_link(image: Token, inside_link: bool) -> list[Token]:
    """`![alt](src)` as a link labelled "🖼 alt", so nothing loads by itself (remote
    images are how prompt injection exfiltrates: the browser sends the URL on load)."""
    alt = "".join(child.content for child in image.children or []) or image.content
    label = _text(f"{IMAGE_MARK} {alt or 'image'}")
    tag = "span" if inside_link else "a"
    opening, closing = Token(f"{tag}_open", tag, 1), Token(f"{tag}_close", tag, -1)
    opening.type, closing.type = "image_link_open", "image_link_close"
    if not inside_link:
        opening.attrs["href"] = str(image.attrGet("src") or "")
    if image.attrGet("title"):
        opening.attrs["title"] = str(image.attrGet("title"))
    return [opening, label, closing]


def _host_note(link: Token, inner: list[Token]) -> Token | None:
    """`[https://bank.example](https://evil.example)` reads as a link to the bank: the
    reader sees "https://bank.example (evil.example)" instead."""
    shown = _URL_TEXT.fullmatch("".join(token.content for token in inner if token.type == "text"))
    target = _host(unquote(str(link.attrGet("href") or "")))
    if shown is None or target is None or shown.group(1).lower().rstrip(".") == target.rstrip("."):
        return None
    if shown.group(1).rpartition(".")[2].lower() in _FILE_SUFFIXES:
        return None
    note = Token("streamchat_html", "", 0)
    note.content = f'<span class="{LINK_HOST_CLASS}"> ({escapeHtml(target)})</span>'
    return note


def _host(url: str) -> str | None:
    found = re.match(r"\s*[a-z][a-z0-9+.\-]*://([^/?#]*)", url, re.I)
    return found.group(1).rpartition("@")[2].split(":")[0].lower() or None if found else None
