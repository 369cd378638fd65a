"""No state of a streamed answer may carry a script-capable construct.

Each payload is typed into `MarkdownStream` one character at a time and every intermediate
HTML (and every patch) is parsed with html.parser: an unclosed fence or code span must not
turn its raw HTML live even for one update.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from streamchat._math import MATHML_ATTRIBUTES, MATHML_TAGS
from streamchat.render import MarkdownStream, render_markdown

from xss_payloads import PAYLOADS

FORBIDDEN_TAGS = {
    *("script", "iframe", "object", "embed", "style", "svg", "form", "meta"),
    # MathML that is not latex2mathml's: foreign content and actions (math itself is
    # allowed, its elements and attributes only from the renderer's allowlist).
    *("annotation-xml", "annotation", "semantics", "maction", "mglyph", "malignmark"),
    *("base", "link", "frame", "frameset", "applet", "noscript", "template", "body"),
    *("button", "textarea", "select", "video", "audio", "source", "details", "title"),
}
URL_ATTRIBUTES = {
    *("href", "src", "action", "formaction", "data", "background", "poster"),
    *("xlink:href", "srcset", "lowsrc", "dynsrc", "cite", "ping"),
}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Characters a browser's URL parser drops or that hide a scheme from a naive check.
INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f\u00ad\u200b-\u200f\u2028\u2029\u2060\ufeff]")
SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")


class ScriptFinder(HTMLParser):
    """Collects every construct in an HTML string that could run script or load a resource."""

    def __init__(self, *, allow_images: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.allow_images = allow_images
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "img" and not self.allow_images:
            self.problems.append("<img> while images are not allowed")
        values = dict(attrs)
        if tag == "input" and (values.get("type") != "checkbox" or "disabled" not in values):
            self.problems.append(f"live <input {values}>")
        for name, value in attrs:
            self._check_attribute(tag, name, value or "")

    handle_startendtag = handle_starttag

    def _check_attribute(self, tag: str, name: str, value: str) -> None:
        if name.startswith("on") or name in ("style", "srcdoc", "http-equiv"):
            self.problems.append(f"{tag}[{name}]")
        if tag in MATHML_TAGS and name not in MATHML_ATTRIBUTES:
            self.problems.append(f"{tag}[{name}]")
        if name in URL_ATTRIBUTES:
            # html.parser has already decoded character references in `value`.
            scheme = SCHEME.match(INVISIBLE.sub("", value).lower())
            if scheme is not None and scheme.group(1) not in SAFE_SCHEMES:
                self.problems.append(f"{tag}[{name}={value!r}]")


def script_constructs(html: str, *, allow_images: bool = False) -> list[str]:
    finder = ScriptFinder(allow_images=allow_images)
    finder.feed(html)
    finder.close()
    return finder.problems


def assert_stream_safe(chunks: list[str], *, allow_images: bool = False) -> None:
    stream = MarkdownStream(allow_images=allow_images)
    for index, chunk in enumerate(chunks):
        patches = stream.append(chunk)
        for html in [stream.html, *(patch.html for patch in patches)]:
            problems = script_constructs(html, allow_images=allow_images)
            assert not problems, (index, "".join(chunks[: index + 1]), html)
    patches = stream.finish()
    for html in [stream.html, *(patch.html for patch in patches)]:
        assert not script_constructs(html, allow_images=allow_images), html


def test_the_checker_finds_what_it_looks_for() -> None:
    """The checker itself must catch each kind of problem, or the tests below prove nothing."""
    assert script_constructs("<p><script>x</script></p>") == ["<script>"]
    assert script_constructs('<a href="jav&#x09;ascript:alert(1)">x</a>')
    assert script_constructs('<a href=" JAVASCRIPT:alert(1)">x</a>')
    assert script_constructs('<img src="https://evil.example/p.png">')
    assert not script_constructs('<img src="https://ok.example/p.png">', allow_images=True)
    assert script_constructs('<b onclick="x()">b</b>')
    assert script_constructs('<svg><a href="data:text/html,x">x</a></svg>') == [
        "<svg>",
        "a[href='data:text/html,x']",
    ]
    assert not script_constructs('<a href="https://ok.example/a:b">x</a><a href="#x">y</a>')
    assert script_constructs('<math><mi href="https://x.example">x</mi></math>') == ["mi[href]"]
    assert script_constructs("<math><semantics><annotation-xml>") == [
        "<semantics>",
        "<annotation-xml>",
    ]
    assert not script_constructs('<math display="block"><mi mathvariant="bold">x</mi></math>')


def test_the_corpus_is_large_enough_and_dangerous() -> None:
    """Plain markdown-it (CommonMark: raw HTML passed through, no sanitizer, its own URL
    check off) fails on most payloads."""
    assert len(PAYLOADS) >= 50
    assert len(set(PAYLOADS)) == len(PAYLOADS)
    plain = MarkdownIt("commonmark")
    plain.validateLink = lambda url: True  # type: ignore[method-assign]
    unsafe = [payload for payload in PAYLOADS if script_constructs(plain.render(payload))]
    assert len(unsafe) >= 0.8 * len(PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_typed_one_character_at_a_time(payload: str) -> None:
    assert_stream_safe(list(payload))


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_with_images_allowed(payload: str) -> None:
    """allow_images loads <img> from http(s) only: still no script, no data:/javascript:."""
    assert_stream_safe(list(payload), allow_images=True)
    assert not script_constructs(render_markdown(payload, allow_images=True), allow_images=True)


def _answer_with_payloads() -> str:
    parts = ["## Answer\n\nHere is what I found:\n"]
    for index, payload in enumerate(PAYLOADS):
        if index % 7 == 0:
            parts.append(f"\n```\n{payload}\n```\n")
        elif index % 5 == 0:
            parts.append(f"\n- item {index}: {payload}\n")
        else:
            parts.append(f"\nParagraph {index} with **bold** and {payload}\n")
    return "".join(parts)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=400))
def test_payloads_split_across_random_chunks(sizes: list[int]) -> None:
    answer = _answer_with_payloads()
    chunks, at = [], 0
    for size in sizes:
        chunks.append(answer[at : at + size])
        at += size
    chunks.append(answer[at:])
    assert_stream_safe([chunk for chunk in chunks if chunk])


def test_script_urls_are_dropped_but_the_link_text_stays() -> None:
    html = render_markdown("[click me](JaVa&#x09;Script:alert(1)) and [ok](https://ok.example)")
    assert "click me" in html
    assert "alert" not in html.split("click me")[0]
    assert 'href="https://ok.example"' in html


def test_links_open_in_a_new_tab_without_referrer() -> None:
    html = render_markdown("[docs](https://ok.example/docs) and https://ok.example/bare")
    assert html.count('rel="noopener noreferrer"') == 2
    assert html.count('target="_blank"') == 2


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("Use <b>bold</b> or <script>alert(1)</script>.")
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_remote_image_becomes_a_link_that_loads_nothing() -> None:
    html = render_markdown("![a cat](https://evil.example/cat.png?q=SECRET)")
    assert "<img" not in html
    assert ">🖼 a cat</a>" in html
    assert 'href="https://evil.example/cat.png?q=SECRET"' in html


def test_images_load_when_allowed_but_never_from_script_or_data_urls() -> None:
    html = render_markdown("![cat](https://ok.example/cat.png)", allow_images=True)
    assert script_constructs(html) == ["<img> while images are not allowed"]
    assert 'src="https://ok.example/cat.png"' in html
    for url in ("javascript:alert(1)", "data:image/svg+xml;base64,PHN2Zz4="):
        html = render_markdown(f"![x]({url})", allow_images=True)
        assert "src=" not in html


def test_unclosed_fence_keeps_html_as_code_at_every_step() -> None:
    stream = MarkdownStream()
    for char in "```\n<img src=x onerror=alert(1)>\n<script>alert(1)</script>":
        stream.append(char)
        assert "<img" not in stream.html
        assert "<script" not in stream.html
    assert "&lt;script&gt;" in stream.html
    assert "<pre>" in stream.html


def test_math_commands_cannot_link_restyle_or_inject() -> None:
    for payload in PAYLOADS[-10:]:
        html = render_markdown(payload)
        assert not script_constructs(html), html
        assert " href=" not in html and " style=" not in html and "jp-Dialog" not in html
    assert render_markdown("$\\href{javascript:alert(1)}{click me}$").count("<math") == 1
