"""The one place for secret handling: what counts as a secret, and how it is masked.

Secrets are API keys and tokens in auth headers (known ones such as `Authorization`
and any custom header a user adds), secret query parameters (`?key=`) and URL
credentials (`user:pass@`). Servers echo them back: in a 401 body, an SSE error
event, an HTML page, a header. Every message a person or a log can see (errors,
turns, transcripts, doctor reports, CLI stderr, logging) goes through `redact` first,
and before it is cut short, so no piece of a key survives a truncation.

Three layers: `Secrets` knows the actual values of one request (and the forms a server
may echo them in: percent-, JSON-, HTML- or Basic-encoded); every `Secrets` also masks
the credentials the whole process knows of, the values of the providers' key variables
in the environment (the registry's `key_variables()`); and `scrub` removes what looks like a
credential whatever its value (URL userinfo, `key=` parameters, bearer tokens, bare
keys shaped like OpenAI's, Anthropic's or Google's), for text whose request is unknown,
such as a library's log record or an SDK's error. None of it depends on what an SDK
keeps of its request: a Python source's SDK error is masked as well as a URL's.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

from ._providers.registry import key_variables

__all__ = [
    "REDACTED",
    "EchoMask",
    "Secrets",
    "install_log_filter",
    "is_secret_header",
    "mask_headers",
    "mask_url",
    "scrub",
]

REDACTED = "[redacted]"

# Headers that carry credentials by definition.
_AUTH_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)
# A name that says "credential", in a header or a query parameter (`X-Custom-Auth`,
# `X-Portkey-Api-Key`, `access_token`, `sig`...).
_SECRET_NAME = re.compile(
    r"auth|key|token|secret|passw|cookie|session|signature|credential|^sig$|^code$", re.I
)
# Headers that are never secret: the ones the request builder itself sets. Any
# other header a user adds may be a gateway's credential under a name we cannot
# guess, so its value is treated as secret too (when long enough to be one).
_PUBLIC_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "anthropic-version",
        "anthropic-beta",
        "cache-control",
        "connection",
        "content-type",
        "content-length",
        "host",
        "last-event-id",
        "user-agent",
    }
)
# Shorter values are not credentials, and replacing them would garble messages.
_MIN_KNOWN = 4
_MIN_CUSTOM = 6
# An environment variable's value is masked in every message of the process, not only
# in one request's: a short test value ("test", "dummy") must not garble them all.
_MIN_ENVIRONMENT = 8

# Credentials recognisable by their shape. https://www.rfc-editor.org/rfc/rfc3986#section-3.2.1
_USERINFO = re.compile(r"(?<=://)[^/\s?#@'\"<>]+@")
_PARAM_NAME = r"[A-Za-z0-9_.-]*(?:key|token|secret|passw|auth|signature)[A-Za-z0-9_.-]*|sig|code"
_SECRET_PARAM = re.compile(rf"(?<=[?&;])({_PARAM_NAME})=[^&\s#'\"<>]+", re.I)
_SECRET_PARAM_NAME = re.compile(rf"(?:{_PARAM_NAME})\Z", re.I)
# A credential after its scheme has a digit somewhere ("Bearer authentication failed"
# is prose, not a token).
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+(?=[^\s\d]*\d)[A-Za-z0-9._~+/=-]{8,}", re.I)
# Bare API keys, by the shapes the providers give them: OpenAI's `sk-...` (`sk-proj-`,
# OpenRouter's `sk-or-v1-`, LiteLLM's virtual keys), Anthropic's `sk-ant-...` and
# Google's `AIza` + 35. Servers quote them without a scheme ("Incorrect API key
# provided: sk-..."). A digit is required, so that words ("sk-learn-compatible") stay.
_KEY_SHAPE = re.compile(
    r"\b(?:sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])"
)


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential whatever its length."""
    lowered = name.lower()
    return lowered in _AUTH_HEADERS or bool(_SECRET_NAME.search(lowered))


def scrub(text: str) -> str:
    """Mask what looks like a credential in `text`, without knowing any value."""
    if "://" in text:
        text = _USERINFO.sub("***@", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda match: f"{match.group(1)}=***", text)
    text = _BEARER.sub(lambda match: f"{match.group(1)} ***", text)
    return _KEY_SHAPE.sub(REDACTED, text)


def mask_url(url: str) -> str:
    """`url` fit to show: no userinfo, no secret query parameter values."""
    return scrub(url)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers fit to show: credentials masked, keeping an auth scheme (`Bearer ***`)."""
    return {name: _mask_header(name, value) for name, value in headers.items()}


def _mask_header(name: str, value: str) -> str:
    lowered = name.lower()
    if lowered in _PUBLIC_HEADERS:
        return value
    if not is_secret_header(name) and len(value) < _MIN_CUSTOM:
        return value
    scheme, _, credential = value.partition(" ")
    return f"{scheme} ***" if credential and lowered in _AUTH_HEADERS else "***"


class Secrets:
    """The secret values of one request, and every form a server may echo them in."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            forms.update(_forms(value))
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = sorted((form for form in forms if len(form) >= _MIN_KNOWN), key=len)[::-1]

    @classmethod
    def of(cls, url: str, headers: Mapping[str, str]) -> Secrets:
        """The secrets in a request's URL and headers."""
        return cls([*_header_secrets(headers), *_url_secrets(url)])

    def __bool__(self) -> bool:
        return bool(self._forms)

    def joined(self, other: Secrets) -> Secrets:
        """These secrets and `other`'s, in one set of forms (longest first)."""
        joined = Secrets()
        joined._forms = sorted({*self._forms, *other._forms}, key=len, reverse=True)
        return joined

    def redact(self, text: str) -> str:
        """`text` with every known secret, and anything shaped like one, masked.

        Known: this request's secrets and the process's (`_environment`). A secret cut
        short by an earlier truncation (`sk-abc…`) is masked too, from its fourth
        character, so that code which shortens before redacting leaks nothing either.
        """
        for secrets in (self, _environment()):
            text = secrets._replace(text)
        return scrub(text)

    def mask(self, text: str) -> str:
        """`text` with the known secret values masked (this request's and the process's),
        and nothing else: for a model's answer or a prompt, kept as it was (a tape),
        which may quote what merely looks like a credential (a code sample's `Bearer
        ...`) but must not carry a real one."""
        for secrets in (self, _environment()):
            text = secrets._replace(text)
        return text

    def _replace(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        if "…" in text:
            text = self._cut_prefixes(text)
        return text

    def _cut_prefixes(self, text: str) -> str:
        for form in self._forms:
            for length in range(len(form) - 1, _MIN_KNOWN - 1, -1):
                prefix = form[:length] + "…"
                if prefix in text:
                    text = text.replace(prefix, REDACTED + "…")
                    break
        return text

    @contextmanager
    def active(self) -> Iterator[None]:
        """Mask these secrets in log records while the block runs (see `install_log_filter`)."""
        with _lock:
            _active.append(self)
        try:
            yield
        finally:
            with _lock:
                _active.remove(self)


class EchoMask:
    """Known secret values masked in text that arrives in pieces.

    A model (or a server quoting the request) may echo the key it was sent, a token at a
    time: `sk-pro` then `j-abc...`. Each piece goes on at once except a tail that may be
    the start of a secret, held until the next piece shows whether it is; so an answer
    is delayed only where it looks like the beginning of a key. Known: this request's
    secrets and the process's key variables (`_environment`). Only known values are
    masked: an answer may quote a key's shape in an example (`sk-...`), and a room
    watching a demo needs no more than that (`_stage` masks shapes on request).
    """

    def __init__(self, secrets: Secrets, *, joined: bool = False) -> None:
        self._known = secrets if joined else secrets.joined(_environment())
        self._held = ""

    def fresh(self) -> EchoMask:
        """A mask of the same secrets for other text of the same answer (its reasoning,
        a tool call's arguments), without reading the environment again."""
        return EchoMask(self._known, joined=True)

    def __bool__(self) -> bool:
        return bool(self._known)

    def feed(self, text: str) -> str:
        """What of `text` can be shown now, secrets masked."""
        text = self._known._replace(self._held + text)
        held = self._started(text)
        self._held = text[len(text) - held :] if held else ""
        return text[: len(text) - held]

    def flush(self) -> str:
        """The held tail, at the end of the text: masked when long enough to be a
        meaningful part of a key."""
        held, self._held = self._held, ""
        return REDACTED if len(held) >= _MIN_KNOWN else held

    def _started(self, text: str) -> int:
        """The length of the longest tail of `text` that a secret starts with."""
        longest = 0
        for form in self._known._forms:
            for size in range(min(len(form) - 1, len(text)), longest, -1):
                if text.endswith(form[:size]):
                    longest = size
                    break
        return longest


def _header_secrets(headers: Mapping[str, str]) -> Iterator[str]:
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _PUBLIC_HEADERS:
            continue
        if is_secret_header(name) or len(value.strip()) >= _MIN_CUSTOM:
            yield value
            yield value.strip()
            credential = value.strip().partition(" ")[2]
            if credential:
                yield credential.strip()
            if lowered == "cookie":
                yield from (part.partition("=")[2] for part in value.split(";"))


def _url_secrets(url: str) -> Iterator[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.username or parts.password:
        # httpx sends URL credentials as Basic auth: the server may echo that form.
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        yield base64.b64encode(f"{user}:{password}".encode()).decode()
        yield from (part for part in (parts.username, parts.password) if part)
    for param in parts.query.split("&"):
        name, _, value = param.partition("=")
        if value and _SECRET_PARAM_NAME.match(name):
            yield value


def _environment() -> Secrets:
    """The values of the providers' key variables set in this process's environment.

    Masked in every message whether or not they were sent: an SDK reads them itself
    (openai's client reads OPENAI_API_KEY), and a server may quote one back.
    """
    names = key_variables()
    return _environment_secrets(tuple(os.environ.get(name, "").strip() for name in names))


@functools.lru_cache(maxsize=8)
def _environment_secrets(values: tuple[str, ...]) -> Secrets:
    return Secrets(value for value in values if len(value) >= _MIN_ENVIRONMENT)


def _forms(value: str) -> set[str]:
    """The secret as sent and as a server may echo it: decoded, quoted, escaped."""
    forms = {value, unquote(value)}
    for form in list(forms):
        forms.add(quote(form, safe=""))
        forms.add(json.dumps(form)[1:-1])
        forms.add(html.escape(form))
    return {form for form in forms if form.strip()}


# -- logging ------------------------------------------------------------------------

_lock = threading.Lock()
_active: list[Secrets] = []
# httpx logs each request's URL at INFO (with its userinfo); httpcore logs failures
# at DEBUG with the exception, which may quote a header value.
_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "streamchat",
)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        with _lock:
            active = list(_active)
        clean = Secrets().redact(message)  # the environment's keys, key-shaped text
        for secrets in active:
            clean = secrets.redact(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = _RedactingFilter()


def install_log_filter() -> None:
    """Mask secrets in the records of httpx, httpcore and streamchat (idempotent).

    A filter on a logger sees the records created there (not its children's), so
    each logger that may quote a request gets one.
    """
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)
