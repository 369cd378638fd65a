"""Reject a request that cannot be sent, before any I/O, with a message that says why.

httpx and h11 find these problems only while sending (`UnsupportedProtocol`,
`LocalProtocolError`), and their messages quote the offending header value, which
is usually the API key. The checks here name the header, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx

from ._secrets import mask_url

__all__ = ["request_problem"]

# https://www.rfc-editor.org/rfc/rfc9110#section-5.1 (field-name = token)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# https://www.rfc-editor.org/rfc/rfc9110#section-5.5: visible ASCII, space and tab.
# (obs-text, bytes 0x80-0xFF, is obsolete; httpx sends str values as ASCII.)
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*\Z")


def request_problem(url: str, headers: Mapping[str, str]) -> str | None:
    """Why this request cannot be sent as given, or None if it can."""
    return _url_problem(url) or next(
        (problem for name, value in headers.items() if (problem := _header_problem(name, value))),
        None,
    )


def _url_problem(url: str) -> str | None:
    shown = mask_url(url)
    if "://" not in url:
        return f"the URL {shown!r} has no scheme: did you mean 'http://{shown}'?"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"the URL {shown!r} is not valid: {exc}"
    if parsed.scheme not in ("http", "https"):
        return f"the URL {shown!r} is {parsed.scheme}://; streamchat speaks http:// and https://"
    if not parsed.host:
        return f"the URL {shown!r} has no host"
    return None


def _header_problem(name: str, value: str) -> str | None:
    if not _TOKEN.match(name):
        return f"the header name {name!r} is not valid (letters, digits and !#$%&'*+-.^_`|~ only)"
    if _FIELD_VALUE.match(value):
        return None
    if value != value.strip("\r\n"):
        return (
            f"the value of the header {name!r} ends with a line break (a key read from a file"
            " keeps its newline: strip it)"
        )
    bad = next(char for char in value if not _FIELD_VALUE.match(char))
    what = "a non-ASCII character" if ord(bad) > 0x7E else f"the control character U+{ord(bad):04X}"
    return f"the value of the header {name!r} contains {what}; header values must be ASCII"
