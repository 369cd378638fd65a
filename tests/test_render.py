"""render_markdown on answers as LLMs write them, and MarkdownStream's patches."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patch_view import checked
from streamchat.render import (
    MarkdownStream,
    Patch,
    highlight_css,
    render_markdown,
)
from streamchat.render._engine import parser

# --- realistic answers ---------------------------------------------------------------------

GUIDE = """\
## Streaming with httpx

Sure! Here's a quick guide to **async HTTP streaming** in Python with `httpx`.
Key points:
- Use `AsyncClient` for connection pooling
- Stream with `client.stream("GET", url)`
  - read chunks with `aiter_bytes()`
  - or lines with `aiter_lines()`
- Always set a *timeout*

### Example

```python
import httpx

async def main(url: str) -> None:
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", url) as response:

            async for line in response.aiter_lines():
                print(line)
```

| Option | Default | Notes |
|--------|:-------:|------:|
| `timeout` | 5 s | per operation |
| `http2` | off | needs `h2` |

1. Install: `pip install httpx`
2. Run the script:
   ```bash
   python main.py https://example.com
   ```
3. Check the output

> **Note:** ~~requests~~ is synchronous.
> Use httpx for async code.

Tasks:
- [x] write the client
- [ ] add retries

More at https://www.python-httpx.org/async/ — enjoy 🚀

---

That's it! 😀
"""

CHINESE = """\
## 安装步骤

首先，安装依赖：
1. 打开终端
2. 运行 `pip install httpx`
   - 需要 Python 3.10+
   - 推荐使用虚拟环境

完成！🎉 **注意**：不要~~忘记~~保存。

| 名称 | 说明 |
|------|------|
| 流式 | 逐字显示 |
"""

LOOSE_LIST = """\
Here are three options:

1. **Retry with backoff.** Wait longer after each failure.

   This works well for transient errors.

2. **Circuit breaker.** Stop calling a failing service.

   ```python
   breaker = CircuitBreaker(threshold=5)
   ```

3. **Fallback.** Serve a cached answer.

- Also consider *timeouts*
- And [rate limits](https://example.com/limits)

Choose the one that fits.
"""

EDGE_BLOCKS = """\
# Title
Intro text right under the heading.
> A quote
> - with a dash line

> Another quote paragraph

    indented code block

Setext heading
--------------

***

Final paragraph with a reference [link][docs] and an email <team@example.com>.

[docs]: https://example.com/docs
"""

UNCLOSED = """\
Let me write the function:

```rust
fn main() {
    println!("hello");
"""

DOCUMENTS = [GUIDE, CHINESE, LOOSE_LIST, EDGE_BLOCKS, UNCLOSED]


# --- helpers -------------------------------------------------------------------------------


class VisibleText(HTMLParser):
    """The text a reader sees outside code, where Markdown markers must never show."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth_in_code = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("code", "pre"):
            self.depth_in_code += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre"):
            self.depth_in_code -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth_in_code:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "".join(parser.parts)


def chunked(text: str, sizes: list[int]) -> list[str]:
    chunks, at = [], 0
    for size in sizes:
        if at >= len(text):
            break
        chunks.append(text[at : at + size])
        at += size
    if at < len(text):
        chunks.append(text[at:])
    return chunks


def stream_all(chunks: list[str]) -> tuple[MarkdownStream, list[Patch]]:
    """Stream `chunks`, applying each patch as a view does (`patch_view`): the view's
    HTML is the stream's after every chunk."""
    stream, shown, patches = MarkdownStream(), ("", ""), []
    for chunk in chunks:
        for patch in stream.append(chunk):
            shown = checked(shown, patch)
            patches.append(patch)
        assert "".join(shown) == stream.html
    for patch in stream.finish():
        shown = checked(shown, patch)
        patches.append(patch)
    assert "".join(shown) == stream.html
    return stream, patches


# --- rendering -----------------------------------------------------------------------------


def test_headings_paragraphs_quote_rule_and_inline_code() -> None:
    html = render_markdown(GUIDE)
    assert "<h2>Streaming with httpx</h2>" in html
    assert "<h3>Example</h3>" in html
    assert "<strong>async HTTP streaming</strong>" in html
    assert "<code>httpx</code>" in html
    assert "<blockquote>\n<p><strong>Note:</strong> <del>requests</del> is synchronous." in html
    assert "<hr>" in html


def test_code_is_highlighted_with_classes_and_language() -> None:
    html = render_markdown("Try this:\n\n```python\ndef f(x):\n    return x  # done\n```\n")
    assert '<div class="language-python streamchat-code"><pre>' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="c1"># done</span>' in html
    assert "style=" not in html


def test_code_without_language_is_plain_and_escaped() -> None:
    html = render_markdown("```\na < b && c\n```")
    assert '<div class="language-text streamchat-code">' in html
    assert "a &lt; b &amp;&amp; c" in html


def test_table_with_alignment() -> None:
    html = render_markdown(GUIDE)
    assert '<th align="center">Default</th>' in html
    assert '<td align="right">per operation</td>' in html
    assert "<td><code>timeout</code></td>" in html


def test_table_right_after_a_paragraph() -> None:
    html = render_markdown("Comparison:\n| A | B |\n|---|---|\n| 1 | 2 |")
    assert html.startswith("<p>Comparison:</p>\n<table>")
    assert "<td>2</td>" in html


def test_strikethrough_needs_two_tildes() -> None:
    html = render_markdown("It takes ~5 min ~~or an hour~~.")
    assert html == "<p>It takes ~5 min <del>or an hour</del>.</p>\n"


def test_task_list_items_are_disabled_checkboxes() -> None:
    html = render_markdown(GUIDE)
    assert re.search(r'<input type="checkbox" checked="?"? disabled="disabled"> write', html)
    assert '<input type="checkbox" disabled="disabled"> add retries' in html
    assert '<ul class="task-list">' in html


def test_list_right_after_a_paragraph() -> None:
    html = render_markdown("Here are the steps:\n1. Open a terminal\n2. Run it")
    assert html == (
        "<p>Here are the steps:</p>\n<ol>\n<li>Open a terminal</li>\n<li>Run it</li>\n</ol>\n"
    )
    assert render_markdown("Key points:\n- one\n- two").startswith("<p>Key points:</p>\n<ul>")


def test_only_one_may_start_a_list_inside_a_paragraph() -> None:
    """CommonMark: "The year was\\n1984. ..." is a paragraph, not a list starting at 1984."""
    html = render_markdown("The year was\n1984. It was cold.")
    assert "<ol" not in html


def test_nested_lists_indented_by_two_spaces() -> None:
    html = render_markdown("- fruit\n  - apple\n    - green\n  - pear\n- veg")
    assert html == (
        "<ul>\n<li>fruit\n<ul>\n<li>apple\n<ul>\n<li>green</li>\n</ul>\n</li>\n<li>pear</li>\n"
        "</ul>\n</li>\n<li>veg</li>\n</ul>\n"
    )


def test_nested_list_and_code_under_a_numbered_item() -> None:
    html = render_markdown(GUIDE)
    assert '<li>Stream with <code>client.stream("GET", url)</code>\n<ul>' in html
    assert '<li>Run the script:\n<div class="language-bash streamchat-code">' in html
    assert "<li>Check the output</li>" in html


def test_numbering_goes_on_after_a_code_block() -> None:
    html = render_markdown("1. First\n\n```\nx\n```\n\n2. Second")
    assert '<ol start="2">\n<li>Second</li>' in html


def test_heading_ends_a_list() -> None:
    html = render_markdown("- a\n- b\n## Next\ntext")
    assert html == "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<h2>Next</h2>\n<p>text</p>\n"


def test_bare_urls_become_links_without_trailing_punctuation() -> None:
    html = render_markdown(
        "Docs: https://docs.python.org/3/library/asyncio.html. Or www.python.org!"
    )
    assert '<a href="https://docs.python.org/3/library/asyncio.html" ' in html
    assert "asyncio.html</a>. Or" in html
    assert '<a href="http://www.python.org" ' in html


def test_chinese_and_emoji() -> None:
    html = render_markdown(CHINESE)
    assert "<h2>安装步骤</h2>" in html
    assert "<p>首先，安装依赖：</p>\n<ol>\n<li>打开终端</li>" in html
    assert "<li>需要 Python 3.10+</li>" in html
    assert "完成！🎉 <strong>注意</strong>：不要<del>忘记</del>保存。" in html
    assert "<td>逐字显示</td>" in html
    assert "enjoy 🚀" in render_markdown(GUIDE)


def test_highlight_css_is_scoped_with_light_and_dark() -> None:
    css = (Path(__file__).parents[1] / "src/streamchat/static/highlight.css").read_text()
    assert css.startswith("/* Generated by streamchat.render.highlight_css()")
    rules = [line.strip() for line in css.splitlines() if "{" in line and "@media" not in line]
    assert all(rule.startswith((".streamchat ", "body[", "body:not(")) for rule in rules)
    assert ".streamchat .streamchat-code .k {" in css
    assert 'body[data-jp-theme-light="false"] .streamchat .streamchat-code .k {' in css
    media = css[css.index("@media (prefers-color-scheme: dark) {") :]
    assert "body:not([data-jp-theme-light]) .streamchat .streamchat-code .k {" in media
    assert highlight_css().count("{") == css.count("{")


# --- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("document", DOCUMENTS, ids=["guide", "chinese", "loose", "edge", "open"])
@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=300))
def test_patches_rebuild_the_html_at_every_step(document: str, sizes: list[int]) -> None:
    stream, patches = stream_all(chunked(document, sizes))
    assert stream.text == document
    assert stream.html == render_markdown(document)
    if document is not EDGE_BLOCKS:  # a late reference definition needs a reset
        assert "reset" not in [patch.op for patch in patches]


@pytest.mark.parametrize("document", DOCUMENTS, ids=["guide", "chinese", "loose", "edge", "open"])
def test_character_by_character(document: str) -> None:
    stream, patches = stream_all(list(document))
    assert stream.html == render_markdown(document)
    assert sum(patch.op in ("append", "commit") for patch in patches) >= 2


def test_windows_line_ends() -> None:
    document = GUIDE.replace("\n", "\r\n")
    stream, patches = stream_all(chunked(document, [7] * len(document)))
    assert stream.html == render_markdown(document) == render_markdown(GUIDE)
    assert "reset" not in [patch.op for patch in patches]


def test_finished_blocks_are_sent_once_and_the_tail_stays_small() -> None:
    paragraphs = [f"Paragraph number {n} with some **text**." for n in range(30)]
    stream, patches = stream_all([p + "\n\n" for p in paragraphs])
    # Each paragraph is shown live, then committed as it is: its HTML goes once.
    assert [patch.op for patch in patches].count("commit") == 30
    assert sum(len(patch.html) for patch in patches) == len(stream.html)
    assert max(len(patch.html) for patch in patches if patch.op == "tail") < 100


def test_a_block_that_finishes_unlike_its_live_rendering_is_appended() -> None:
    stream = MarkdownStream()
    stream.append("Some *open")  # shown repaired: the emphasis closed
    patches = stream.append(" text\n\nNext\n")  # finished as typed: the star shows
    assert patches[0] == Patch("append", "<p>Some *open text</p>\n")
    assert stream.html == "<p>Some *open text</p>\n<p>Next</p>\n"


def test_a_late_reference_definition_resets() -> None:
    stream = MarkdownStream()
    stream.append("See [the docs][d].\n\nMore text.\n\n")
    patches = stream.append("[d]: https://example.com\n")
    patches += stream.finish()
    assert patches[-1].op == "reset"
    assert 'href="https://example.com"' in stream.html
    assert stream.html == render_markdown(stream.text)


def test_a_late_definition_matches_its_label_case_folded_and_collapsed() -> None:
    # https://spec.commonmark.org/0.31.2/#matches: case-folded, whitespace collapsed.
    stream = MarkdownStream()
    stream.append("First [The   Docs].\n\nSecond [other][] and [more][ THE\tdocs ].\n\n")
    patches = stream.append("Third.\n\n[the docs]: https://example.com/d\n")
    patches += stream.finish()
    assert [patch.op for patch in patches].count("reset") == 1
    assert stream.html.count('href="https://example.com/d"') == 2
    assert stream.html == render_markdown(stream.text)


def test_a_late_definition_changes_a_table_whose_rows_were_rendered_before() -> None:
    # A table keeps the HTML of its rows: rendered before the definition came.
    text = "| [a] | b |\n|---|---|\n| [a] | b |\n\n[A]: /w 'x'\n"
    stream, patches = stream_all(list(text))
    assert patches[-1].op == "reset"
    assert stream.html.count('href="/w"') == 2
    assert stream.html == render_markdown(text)


def test_a_late_definition_nobody_uses_sends_no_reset() -> None:
    stream = MarkdownStream()
    stream.append("See [the docs][d] and [x].\n\n[x]: https://example.com/x\n\nMore.\n\n")
    patches = stream.append("[unused]: https://example.com/u\n")
    patches += stream.finish()
    assert "reset" not in [patch.op for patch in patches]
    assert stream.html == render_markdown(stream.text)


def test_a_definition_with_its_title_on_the_next_line_is_used_whole() -> None:
    # Fed a line at a time, "[a]: /u" is a definition already; its title comes next.
    text = '[a]: /u\n  "The title"\n\n[a]\n'
    stream, patches = stream_all(list(text))
    assert 'title="The title"' in stream.html
    assert stream.html == render_markdown(text)
    assert "reset" not in [patch.op for patch in patches]


def _references(count: int) -> str:
    """bench_pathological's "many references": each defined, each block using the first."""
    return "".join(f"[x{n}]: /url\n\n[x0]\n\n" for n in range(count))


def test_finish_of_many_references_costs_little() -> None:
    # finish() used to render the whole answer again whenever a definition existed
    # (11.6 s for 1 MB of these): now only blocks that a later definition may change.
    text = _references(15_000)  # ~320 KB
    stream = MarkdownStream()
    for start in range(0, len(text), 4096):
        stream.append(text[start : start + 4096])
    cpu = time.process_time()
    patches = stream.finish()
    cpu = time.process_time() - cpu
    assert cpu < 0.08, f"finish() took {cpu:.3f} s of CPU"  # ~0.015 s; 3.9 s before
    assert "reset" not in [patch.op for patch in patches]
    assert stream.html.count('href="/url"') == 15_000


def test_a_late_definition_every_block_uses_changes_them_all() -> None:
    text = "".join(f"Use {n} of [late].\n\n" for n in range(300)) + "[late]: /l\n"
    stream, patches = stream_all(chunked(text, [50] * len(text)))
    assert patches[-1].op == "reset"
    assert stream.html.count('href="/l"') == 300
    assert stream.html == render_markdown(text)


def test_no_patch_when_nothing_changes() -> None:
    stream = MarkdownStream()
    assert stream.append("Hello") == [Patch("tail", "<p>Hello</p>\n")]
    assert stream.append("") == []
    assert stream.append("**") == []  # an emphasis marker alone shows nothing yet


def test_finish_is_final() -> None:
    stream = MarkdownStream()
    stream.append("Hi")
    assert stream.finish() == [Patch("commit", size=len("<p>Hi</p>\n"))]
    assert stream.finish() == []
    with pytest.raises(RuntimeError):
        stream.append("more")


@pytest.mark.parametrize(
    ("text", "markers"),
    [
        ("This is **bold text** here and __more__.", "*_"),
        ("Some *italic words* and _underscored words_ too.", "*_"),
        ("Use `pip install httpx` and ``a`b`` now.", "`"),
        ("A ~~wrong~~ right answer.", "~"),
        ("**Bold with `code` inside** and *em with **strong** inside*.", "*`"),
        ("See [the docs](https://example.com/docs) for more.", "[]()"),
        ("Look at ![a chart](https://example.com/c.png) below.", "[]()!"),
        ("- **Item** one\n- [ ] *task*\n\n1. `code`", "*`[]"),
        ("| **A** | B |\n|---|---|\n| `1` | 2 |\n", "*`|-"),
        ("# Heading **bold**\n\nText\n---", "*#-"),
    ],
)
def test_no_raw_markers_flash(text: str, markers: str) -> None:
    stream = MarkdownStream()
    for index, char in enumerate(text):
        stream.append(char)
        shown = visible_text(stream.html)
        for marker in markers:
            assert marker not in shown, (text[: index + 1], shown)
        assert "https" not in shown


def test_open_fence_shows_as_code_while_typed() -> None:
    stream = MarkdownStream()
    for index, char in enumerate(GUIDE):
        stream.append(char)
        assert "`" not in visible_text(stream.html), GUIDE[: index + 1]
        if GUIDE[: index + 1].endswith("```python\nimport"):
            assert "<pre>" in stream.html
            assert '<span class="kn">import</span>' in stream.html


def test_half_typed_link_shows_its_text_only() -> None:
    stream = MarkdownStream()
    stream.append("Read [the guide](https://exa")
    assert stream.html == "<p>Read the guide</p>\n"
    stream.append("mple.com).")
    assert '<a href="https://example.com" target="_blank"' in stream.html


def test_unclosed_emphasis_renders_as_it_will_end() -> None:
    stream = MarkdownStream()
    stream.append("Answer: **forty")
    assert stream.html == "<p>Answer: <strong>forty</strong></p>\n"
    stream.append(" two** and `x")
    assert stream.html == "<p>Answer: <strong>forty two</strong> and <code>x</code></p>\n"


def test_a_table_with_only_its_header_has_no_empty_row() -> None:
    """A header alone has no body row: typed out, an empty one showed with the cursor in it."""
    html = render_markdown("| Name | Kind |\n|---|---|")
    assert "<tbody>" not in html and "<th>Kind</th>" in html
    stream = MarkdownStream()
    header = "| Name | Kind |\n|------|------|\n"
    for char in header:
        stream.append(char)
        assert "<td>" not in stream.html, stream.text
    for char in "| a | b |\n":
        stream.append(char)
    assert "<td>a</td>" in stream.html


SIMPLE_DEFINITIONS = [
    "[a]: /u\n\n[a]",
    "[a]: /u\n[a]",  # no blank line after: the engine's own rule
    '[a]: /u\n"title"\n\n[a]',
    "```\n[a]: /u\n\n```\n\n[a]",  # in a fence: code
    "> [a]: /u\n\n[a]",
    "- [a]: /u\n\n  [b]: /v\n\n[a] [b]",
    "    [a]: /u\n\n[a]",  # indented: code
    "[a]: javascript:alert(1)\n\n[a]",  # a link it refuses: a paragraph
    "[a]: /u&amp;v\n\n[a]",
    "[a]: /one\n\n[A]: /two\n\n[a]",  # the first wins
    "[ ]: /u\n\n[ ]",  # no label
    "Text\n[a]: /u\n\n[a]",  # no definition within a paragraph
    "[a]:\t/ü%20x \t\n\n[a]",
    "| x |\n|---|\n[a]: /u\n\n[a]",
]


@pytest.mark.parametrize("text", SIMPLE_DEFINITIONS)
def test_simple_definitions_read_as_the_engine_reads_them(text: str) -> None:
    """`_engine._simple_reference` takes a one-line definition before the engine's rule
    would: the HTML is the same with it and without it."""
    md = parser(False)
    fast = render_markdown(text)
    md.block.ruler.disable("simple_reference")
    try:
        assert render_markdown(text) == fast
    finally:
        md.block.ruler.enable("simple_reference")


def test_a_repeated_block_renders_as_it_did() -> None:
    text = "[a]: /u\n\n" + "\n\n".join(["[a] and *b*", "| x |\n|---|\n| 1 |", "- [a]"] * 5)
    html = render_markdown(text)
    assert html.count('<a href="/u"') == 10 and html.count("<em>b</em>") == 5
    stream = MarkdownStream()
    for start in range(0, len(text), 3):
        stream.append(text[start : start + 3])
    stream.finish()
    assert stream.html == html


def test_late_definitions_in_any_order_end_as_rendered_whole() -> None:
    """finish() looks at no block when no label changed after a block that may use it
    began (`Machine.stale`): documents of definitions (changed, repeated, with titles on
    the next line) and uses in any order, streamed in any deltas, end as rendered whole."""
    import random

    rng = random.Random(19)
    pieces = [
        "[a]: /1\n\n", "[A]: /2\n\n", "[b]: /3\n", '"t"\n\n', "[c]:\n/4\n\n", "[a] x\n\n",
        "[b][] y\n\n", "- [c]\n- [a]\n\n", "| h |\n|---|\n| [b] |\n\n", "> [a]\n\n", "[d]\n\n",
    ]  # fmt: skip
    for _ in range(150):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(2, 9)))
        stream = MarkdownStream()
        end = 0
        while end < len(text):
            size = rng.choice([1, 2, 5, 13, 40])
            stream.append(text[end : end + size])
            end += size
        stream.finish()
        assert stream.html == render_markdown(text), text


@pytest.mark.parametrize("text", ["\n", "\n\n \n", " ", "\t\n"])
def test_blank_text_renders_as_nothing(text: str) -> None:
    assert render_markdown(text) == ""
