"""The sanitizer: nh3 (ammonia) with a strict allowlist of tags, attributes, classes and URL
schemes, run over every piece of HTML the engine produces.

The engine already escapes raw HTML (the model's `<b>` shows as text); this second layer
means even a bug in a rule cannot emit a script-capable element, an event handler, a
`javascript:` URL or a class from the host page's namespace.
"""

from __future__ import annotations

import functools
import html
import re
from urllib.parse import unquote

import nh3
from pygments.token import STANDARD_TYPES

from streamchat import _math

__all__ = ["CODE_CLASS", "LINK_HOST_CLASS", "RAW_CLASS", "escape_text", "safe_classes", "sanitize"]

CODE_CLASS = "streamchat-code"  # wrapper <div> of a highlighted code block
LINK_HOST_CLASS = "streamchat-link-host"  # the real host after a link text naming another
RAW_CLASS = "streamchat-raw"  # a block shown as escaped text (too costly to render)

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
    "ol": frozenset({"task-list"}),
    "li": frozenset({"task-list-item"}),
}
# C0 and C1 controls other than tab and line ends: never text a reader should get,
# and in a code block Copy would put ESC or BEL sequences on the clipboard.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _safe_url(value: str) -> str | None:
    """Drop a URL whose scheme is not http(s)/mailto, however it is disguised.

    nh3 already checks the scheme after decoding entities; this second check also decodes
    percent-escapes (the engine writes a tab as "%09") and removes
    every control, space and invisible character anywhere in the value (browsers strip some
    of them: https://url.spec.whatwg.org/#concept-basic-url-parser), so "java&#x09;script:"
    or "\\x01javascript:" cannot slip through a difference between two URL parsers.
    """
    probe = _INVISIBLE.sub("", unquote(html.unescape(value))).lower()
    scheme = _SCHEME.match(probe)
    if scheme is not None and scheme.group(1) not in _URL_SCHEMES:
        return None
    return value


def safe_classes(element: str, value: str) -> str | None:
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
        return safe_classes(element, value)
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


def sanitize(html_text: str, allow_images: bool) -> str:
    return _CONTROL.sub("", _cleaner(allow_images).clean(html_text))


def escape_text(text: str) -> str:
    """Text as HTML, exactly as `sanitize` would leave it (nh3 reads CR as LF)."""
    return html.escape(_CONTROL.sub("", text.replace("\r", "\n")), quote=False)
