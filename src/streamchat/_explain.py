"""What a failed answer means, in plain words, with what to do about it.

The transport's `StreamError.message` is exact and technical ("HTTP 401 Unauthorized:
Incorrect API key", "incomplete chunked encoding ..."): right for a log, wrong as the first
thing a person reads. `explain` puts a sentence in plain words first, then the fix, and
keeps the technical message last, unchanged, for a search or a bug report. The wording
lives here only, for the widget's bubble and the terminal alike; the two differ only in
how an option is spelled (``api_key=`` in Python, a flag on the command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamchat.deltas import StreamError
from streamchat.providers import PROVIDERS, Provider, lookup

__all__ = ["Explanation", "explain"]

Audience = Literal["notebook", "terminal"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A failure as a person reads it: what happened, what to do, the technical detail."""

    what: str
    fix: str
    detail: str

    def __str__(self) -> str:
        return "\n".join(part for part in (self.what, self.fix, self.detail) if part)


def explain(
    error: StreamError, *, provider: str | None = None, audience: Audience = "notebook"
) -> Explanation:
    """Plain words and a fix for `error`; `provider` names the API key's variable and header."""
    spell = _SPELLINGS[audience]
    known = lookup(provider) if provider in PROVIDERS else None
    if known is not None and audience == "terminal":
        # The header that carries this provider's key (Anthropic's and Gemini's are their own).
        ((header, value),) = known.credentials("...").items()
        spell = {**spell, "key": f"pass --header '{header}: {value}'"}
    if error.kind == "http":
        what, fix = _http(error.status or 0, error.retry_after, known, spell)
    else:
        what, fix = _BY_KIND[error.kind]
    return Explanation(what, fix.format(**spell), error.message)


_SPELLINGS: dict[Audience, dict[str, str]] = {
    "notebook": {
        "key": "pass api_key=",
        "timeout": "raise timeouts=Timeouts(total=...)",
        "model": "the model= name",
        "limits": "pass limits=Limits(...) with more room",
    },
    "terminal": {
        "key": "pass --header 'Authorization: Bearer ...'",
        "timeout": "raise --total-timeout or --idle-timeout",
        "model": "the --model name",
        "limits": "use streamchat from Python with limits=Limits(...)",
    },
}

_BY_KIND: dict[str, tuple[str, str]] = {
    "connect": (
        "Could not reach the server.",
        "Check that it is running and that the URL's host and port are right.",
    ),
    "timeout": (
        "The server took too long to answer.",
        "Retry; if the answer is genuinely long, {timeout}.",
    ),
    "incomplete": (
        "The connection closed before the answer was complete.",
        "Retry. If it keeps happening, the server or a proxy in between cut the stream:"
        " check its logs and timeouts (`streamchat doctor URL` shows where).",
    ),
    "network": (
        "The connection broke while the answer was arriving.",
        "Check the network (VPN, Wi-Fi) and retry.",
    ),
    "provider": (
        "The model's server reported an error in the middle of the answer.",
        "Its message is below: often a wrong model name, a used-up quota or a rejected"
        " option. Retry if it looks temporary.",
    ),
    "protocol": (
        "The server's answer is not a chat stream streamchat can read.",
        "Check that the URL is the chat endpoint (e.g. /v1/chat/completions);"
        " `streamchat doctor URL` shows what the server sent.",
    ),
    "request": (
        "The request could not be sent as given.",
        "Check the URL (with http:// or https://) and the header values (one line each).",
    ),
    "limit": (
        "The answer grew past a size limit, so it stops here; what came is kept.",
        "If an answer really is that long, {limits}.",
    ),
    "source": (  # an exception, an item it cannot type, a stream that ended short
        "The Python code that streams the answer failed.",
        "Its error is below: fix the function, generator or client it comes from, then retry.",
    ),
}


def _http(
    status: int, retry_after: float | None, provider: Provider | None, spell: dict[str, str]
) -> tuple[str, str]:
    if status == 401:
        key = provider.key if provider is not None else None
        # The variable's key goes to its provider's own host only (the transport's detail
        # says when it was held back from another host).
        where = f"set {key.variable} (for its provider's host) or {{key}}" if key else "{key}"
        return "The server refused the API key.", f"Check the key: {where}."
    if status == 403:
        return (
            "The server refused access with this key.",
            "Check that the key may use this model or endpoint.",
        )
    if status == 404:
        return (
            "The server has no such endpoint or model.",
            "Check the URL's path and {model}.",
        )
    if status == 429:
        wait = f"wait {retry_after:g} s" if retry_after is not None else "wait a little"
        return (
            "The server is limiting requests (rate limit or quota).",
            f"Retry after a pause ({wait}), or check the account's quota.",
        )
    if status in (502, 503, 504):
        return (
            "The server, or a proxy in front of it, could not get an answer from the model.",
            "Retry in a moment; if it persists, check that the model server is up.",
        )
    if status >= 500:
        return "The server failed while answering.", "Retry; if it persists, check its logs."
    return (
        "The server rejected the request.",
        "Its message below usually names the option or field it did not accept.",
    )
