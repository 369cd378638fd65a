"""LaTeX math in Markdown answers: where it is, and its MathML.

Models write math the way Jupyter and ChatGPT render it (MathJax's default delimiters):
inline ``$...$`` and ``\\(...\\)``, display ``$$...$$`` and ``\\[...\\]``. Markdown knows none
of them, and its backslash escapes would eat ``\\(``, ``\\{`` and ``\\\\``, so the engine has a
math rule that takes a formula out of the text before any other inline rule sees it
(`match`, used by `render._engine`), and a block rule for display formulas on lines of
their own, so list and table syntax inside them stays LaTeX.

A single ``$`` is also money. Pandoc's rule tells them apart
(https://pandoc.org/MANUAL.html#extension-tex_math_dollars): the opening ``$`` has a
non-space right after it, the closing one a non-space right before it and no digit right
after it, and the formula stays on one line; so "$5 and $10" and "$5-$10" stay text.

The MathML comes from latex2mathml (MathML Core renders in every current browser without
script, so saved notebooks show it too). Its string output is not safe HTML: it unescapes
its own serialization, so ``\\text{<img onerror=...>}`` comes out as a live tag. This module
therefore serializes latex2mathml's element tree itself, escaping all text and keeping only
the elements and attributes the converter emits (`MATHML_TAGS`, `attribute_filter`):
no ``href`` (``\\href``), ``style`` or ``class`` (``\\style``, ``\\class``), and lengths bounded
so a formula cannot draw over the page around the bubble.

While an answer streams, `mark_pending` ends an open block's unclosed formula with
`PENDING`, and such a formula shows as its source in a muted style until it closes.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = [
    "HTML_CLASSES",
    "MATHML_ATTRIBUTES",
    "MATHML_TAGS",
    "PENDING",
    "Formula",
    "attribute_filter",
    "find",
    "mark_pending",
    "match",
    "to_html",
]

# A Unicode noncharacter (https://www.unicode.org/faq/private_use.html#nonchar1), which
# exists for a program's internal use: it ends a formula that is still being typed.
PENDING = "\ufdd0"

MAX_SOURCE = 1000  # latex2mathml needs ~30 us per character: bound the cost of one formula
MAX_NESTING = 40  # deeper braces exhaust its recursion long before they mean anything
_UNKNOWN_COMMAND = re.compile(r"\\[A-Za-z]+\*?")
_ARITY = {
    **dict.fromkeys(("mfrac", "mroot", "msub", "msup", "munder", "mover"), 2),
    **dict.fromkeys(("msubsup", "munderover"), 3),
}
_MACRO_DEFINITION = re.compile(r"\\(?:(?:re|provide)?newcommand|[gex]?def|let)(?![A-Za-z])")

_CLOSERS = {"$$": "$$", "\\[": "\\]", "\\(": "\\)"}
_PENDING_CLASS = "streamchat-math-pending"
_BLOCK_CLASS = "streamchat-math-block"
_ERROR_CLASS = "streamchat-math-error"
HTML_CLASSES = frozenset({_PENDING_CLASS, _BLOCK_CLASS, _ERROR_CLASS})  # what `to_html` writes
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, slots=True)
class Formula:
    """A formula in Markdown source: ``text[start:end]`` is it with its delimiters."""

    start: int
    end: int
    opener: str  # "$", "$$", "\\(" or "\\["
    source: str  # the LaTeX between the delimiters
    closed: bool  # False: still being typed (it ended at PENDING)

    @property
    def display(self) -> bool:
        return self.opener in ("$$", "\\[")

    @property
    def closer(self) -> str:
        return _CLOSERS.get(self.opener, "$")


def _escaped(text: str, i: int) -> bool:
    """True when an odd run of backslashes comes right before text[i].

    Only the last 256 characters are looked at, so many openers cost little each; a
    longer run of backslashes is no LaTeX anyone means.
    """
    before = text[max(0, i - 256) : i]
    return (len(before) - len(before.rstrip("\\"))) % 2 == 1


def _opener_at(text: str, i: int, checked: bool = False) -> str | None:
    if not checked and _escaped(text, i):
        return None
    for opener in ("$$", "\\[", "\\("):
        if text.startswith(opener, i):
            return opener
    return "$" if text.startswith("$", i) else None


def match(text: str, i: int, *, checked: bool = False) -> Formula | None:
    """The formula that opens at text[i], closed or ended by PENDING; None if none does.

    `checked`: the caller scans left to right stepping over escapes, so text[i] is known
    not to be escaped (counting the backslashes before it would cost a run's length).
    """
    opener = _opener_at(text, i, checked)
    if opener is None:
        return None
    if opener == "$":
        return _dollar(text, i)
    closer = _CLOSERS[opener]
    start = i + len(opener)
    at = start
    while True:
        end = text.find(closer, at)
        if end < 0 or not _escaped(text, end):
            break
        at = end + 1
    pending = text.find(PENDING, start)
    if pending >= 0 and (end < 0 or pending < end):
        return _formula(text, i, pending, opener, closed=False)
    if end < 0:
        return None
    return _formula(text, i, end, opener, closed=True)


def _formula(text: str, i: int, end: int, opener: str, closed: bool) -> Formula | None:
    source = text[i + len(opener) : end]
    if not source.strip() or _BLANK_LINE.search(source):
        return None
    after = end + (len(_CLOSERS[opener]) if closed else len(PENDING))
    return Formula(i, after, opener, source, closed)


def _dollar(text: str, i: int) -> Formula | None:
    start = i + 1
    if start >= len(text) or text[start].isspace() or text[start] == PENDING:
        return None
    end = start
    while end < len(text):
        char = text[end]
        if char in "\n" + PENDING:
            break
        if char == "\\":
            end += 2
            continue
        if char == "$":
            break
        end += 1
    if end >= len(text) or text[end] == "\n":
        return None
    if text[end] == PENDING:
        if text[start].isdigit():
            return None  # "$5" is a price until its closing "$" proves otherwise
        return Formula(i, end + 1, "$", text[start:end], closed=False)
    after = text[end + 1 : end + 2]
    if text[end - 1].isspace() or after.isdigit():
        return None
    return Formula(i, end + 1, "$", text[start:end], closed=True)


def find(text: str) -> Iterator[Formula]:
    """The formulas in a Markdown fragment, left to right, skipping code spans."""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "`":
            i = _code_span_end(text, i)
        elif char in "$\\" and (formula := match(text, i, checked=True)) is not None:
            yield formula
            i = formula.end
        else:
            i += 2 if char == "\\" else 1


def may_go_on(text: str, separator: str) -> bool:
    """Whether a formula opened in `text` could still close after it and `separator`
    (a space or a line break): then a paragraph must not be cut there.

    Conservative (a price such as "$5 a week" holds cuts back to the end of its line),
    and a function of `text` and `separator` alone, so a stream and a whole render cut
    alike. "$...$" never spans a line break; the other delimiters may.
    """
    if "$" not in text and "\\" not in text:
        return False
    end = 0
    for formula in find(text):
        end = formula.end
    rest = text[end:]
    if "$$" in rest or "\\[" in rest or "\\(" in rest:
        return True
    return separator != "\n" and _DOLLAR_OPENER.search(rest, rest.rfind("\n") + 1) is not None


_DOLLAR_OPENER = re.compile(r"\$\S")


def _code_span_end(text: str, i: int) -> int:
    """Past the code span opening at text[i], or past its backticks if it never closes."""
    end = _run_end(text, i)
    run = text[i:end]
    close = re.compile(rf"(?<!`){run}(?!`)").search(text, end)
    return close.end() if close is not None else end


def _run_end(text: str, i: int) -> int:
    end = i
    while end < len(text) and text[end] == text[i]:
        end += 1
    return end


# --- block structure ------------------------------------------------------------------------

# --- streaming ------------------------------------------------------------------------------


def mark_pending(text: str) -> str:
    """End an unclosed formula that runs to the end of `text` with PENDING.

    A formula with nothing typed yet after its opener, and a last character that may be
    the start of one ("$", "\\"), are held back instead: they show once decided.
    """
    if text.endswith(PENDING) or ("$" not in text and "\\" not in text):
        return text  # the second test: most text has no formula, decided at C speed
    if text.endswith("\\") and not _escaped(text, len(text) - 1):
        text = text[:-1]
    i = 0
    while i < len(text):
        char = text[i]
        if char == "`":
            end = _code_span_end(text, i)
            if text[end - 1] != "`" or end == _run_end(text, i):
                return text  # a code span still open: the rest is code
            i = end
            continue
        if char in "$\\":
            formula = match(text, i, checked=True)
            if formula is not None and formula.end == len(text) and formula.opener == "$":
                text = text[:-1]  # a "$" closer followed by a digit is a price: wait
            elif formula is not None:
                i = formula.end
                continue
            pending = match(text + PENDING, i, checked=True)
            if pending is not None and pending.end == len(text) + len(PENDING):
                if pending.opener == "$$" and text.endswith("$"):
                    text = text[:-1]  # the closer being typed
                return text + PENDING
            if _opener_at(text, i, True) is not None and not text[i:].strip("$\\([ \t\n"):
                return text[:i]
        i += 2 if char == "\\" else 1
    return text


# --- MathML ---------------------------------------------------------------------------------

# Exactly the elements latex2mathml 3 emits (its converter, commands and walker modules).
MATHML_TAGS = frozenset(
    {
        *("math", "mrow", "mi", "mn", "mo", "mtext", "mspace", "mstyle", "mpadded"),
        *("mphantom", "menclose", "mfrac", "msqrt", "mroot", "msub", "msup", "msubsup"),
        *("munder", "mover", "munderover", "mtable", "mtr", "mtd"),
    }
)
_BOOLEAN = frozenset({"true", "false"})
_ENUMS: dict[str, frozenset[str]] = {
    "display": frozenset({"block", "inline"}),
    **dict.fromkeys(
        ("accent", "displaystyle", "fence", "largeop", "movablelimits", "separator", "stretchy"),
        _BOOLEAN,
    ),
    "form": frozenset({"prefix", "infix", "postfix"}),
    "linebreak": frozenset({"newline"}),
    "mathvariant": frozenset(
        {
            *("normal", "bold", "italic", "bold-italic", "double-struck", "fraktur"),
            *("bold-fraktur", "script", "bold-script", "sans-serif", "bold-sans-serif"),
            *("sans-serif-italic", "sans-serif-bold-italic", "monospace"),
        }
    ),
}
_TOKEN_LISTS: dict[str, frozenset[str]] = {
    "notation": frozenset(
        {"box", "updiagonalstrike", "downdiagonalstrike", "horizontalstrike", "verticalstrike"}
    ),
    "columnalign": frozenset({"left", "center", "right"}),
    "columnlines": frozenset({"none", "solid", "dashed"}),
    "rowlines": frozenset({"none", "solid", "dashed"}),
}
_LENGTHS = frozenset(
    {
        *("width", "height", "depth", "lspace", "rspace", "voffset", "linethickness"),
        *("mathsize", "minsize", "maxsize", "columnspacing", "rowspacing"),
    }
)
_COLORS = frozenset({"mathcolor", "mathbackground"})
_LENGTH = re.compile(r"([+-]?)(\d{1,4}(?:\.\d{0,4})?|\.\d{1,4})(em|ex|mu|pt|px|%)?")
_EM_PER_UNIT = {"em": 1.0, "ex": 0.5, "mu": 1 / 18, "pt": 0.1, "px": 1 / 16, "%": 0.01, "": 1.0}
_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,20}")
MATHML_ATTRIBUTES = frozenset({*_ENUMS, *_TOKEN_LISTS, *_LENGTHS, *_COLORS, "scriptlevel"})
# Lengths a formula may use, in em: enough for spacing, matrices and \rule, never enough to
# reach outside the bubble (a raised or pulled-back box could otherwise cover the page).
_MAX_EM = 20.0
_MIN_EM = -2.0


def attribute_filter(element: str, attribute: str, value: str) -> str | None:
    """Keep a MathML attribute only with a value latex2mathml could have meant."""
    if element not in MATHML_TAGS:
        return None
    if attribute in _ENUMS:
        return value if value in _ENUMS[attribute] else None
    if attribute in _TOKEN_LISTS:
        tokens = value.split()
        return value if tokens and set(tokens) <= _TOKEN_LISTS[attribute] else None
    if attribute == "scriptlevel":
        return value if re.fullmatch(r"[+-]?[0-2]", value) else None
    if attribute in _LENGTHS:
        tokens = value.split()
        return value if tokens and all(_bounded_length(t, attribute) for t in tokens) else None
    if attribute in _COLORS:
        return value if _COLOR.fullmatch(value) else None
    return None


def _bounded_length(token: str, attribute: str) -> bool:
    found = _LENGTH.fullmatch(token)
    if found is None:
        return False
    sign, number, unit = found.groups()
    em = float(number) * _EM_PER_UNIT[unit or ""] * (-1 if sign == "-" else 1)
    if attribute == "voffset":
        return abs(em) <= -_MIN_EM
    return _MIN_EM <= em <= _MAX_EM


def to_html(formula: Formula) -> str:
    """The formula as HTML: MathML; its source while typed or when it cannot convert."""
    if not formula.closed:
        kind = f"{_PENDING_CLASS} {_BLOCK_CLASS}" if formula.display else _PENDING_CLASS
        return f'<span class="{kind}">{html.escape(formula.source)}</span>'
    mathml = _mathml(formula.source, formula.display)
    if mathml is not None:
        return mathml
    written = f"{formula.opener}{formula.source}{formula.closer}"
    return f'<code class="{_ERROR_CLASS}">{html.escape(written)}</code>'


@functools.lru_cache(maxsize=512)
def _mathml(source: str, display: bool) -> str | None:
    """Cached: an open block is re-rendered on every update with the same formulas."""
    if len(source) > MAX_SOURCE or _MACRO_DEFINITION.search(source) or _too_deep(source):
        return None
    # Imported at the first formula, not with the renderer: latex2mathml loads
    # importlib.metadata, urllib.request, http.client and ssl (~40 ms), which a chat that
    # shows no math never needs, and which a sans-I/O renderer should not drag in.
    from latex2mathml.converter import convert_to_element

    try:
        tree = convert_to_element(source, display="block" if display else "inline")
    except Exception:  # latex2mathml's errors share no base class; any failure shows source
        return None
    if not all(_well_formed(node) for node in tree.iter()):
        return None
    return "".join(_serialize(tree))


def _well_formed(node: Element) -> bool:
    """latex2mathml keeps an unknown command as text and "\\frac{a}" as a one-part mfrac."""
    if _UNKNOWN_COMMAND.fullmatch(node.text or ""):
        return False
    arity = _ARITY.get(node.tag)
    return arity is None or len(node) == arity


def _too_deep(source: str) -> bool:
    depth = 0
    for char in source:
        depth += char == "{"
        depth -= char == "}"
        if depth > MAX_NESTING:
            return True
    return False


def _serialize(element: Element) -> Iterator[str]:
    # latex2mathml writes character references ("&#x0003D;") into its text nodes and
    # leaves "<" and "&" from the source raw: decode its references, then escape all.
    tag = element.tag if element.tag in MATHML_TAGS else "mrow"
    attributes = "".join(
        f' {name}="{html.escape(kept)}"'
        for name, value in element.attrib.items()
        if (kept := attribute_filter(tag, name, value)) is not None
    )
    yield f"<{tag}{attributes}>"
    if element.text:
        yield _text(element.text)
    for child in element:
        yield from _serialize(child)
        if child.tail:
            yield _text(child.tail)
    yield f"</{tag}>"


_REFERENCE = re.compile(r"&#x([0-9a-fA-F]{1,6});")


def _text(text: str) -> str:
    decoded = _REFERENCE.sub(_character, text)
    return html.escape(decoded, quote=False)


def _character(reference: re.Match[str]) -> str:
    code = int(reference.group(1), 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return reference.group()
    return chr(code)
