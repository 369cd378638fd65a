"""LaTeX math in rendered answers: every form, prices, bad LaTeX, containers, streaming."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from streamchat._math import MATHML_TAGS
from streamchat.render import MarkdownStream, render_markdown

FORMULA_ANSWER = r"""## Quadratics

For $ax^2 + bx + c = 0$ the roots are
$$
x = \frac{-b \pm \sqrt{b^2 - 4ac}}{2a}
$$
and Pythagoras says \(a^2 + b^2 = c^2\), or as a block:
\[
c = \sqrt{a^2 + b^2}
\]

- the set \(\{x \mid x > 0\}\) has no least element
- $$\sum_{k=1}^{n} k = \frac{n(n+1)}{2}$$

> Euler: $e^{i\pi} + 1 = 0$

| name | formula |
|------|---------|
| area | $\pi r^2$ |
| mean | \(\bar{x}\) |

The course costs $5 a week, $20 a month, or $5-$10 per lesson.
"""


class Parts(HTMLParser):
    """Tags, and visible text outside <math>, of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.depth += tag == "math"

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "math"

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.text.append(data)


def parts(html: str) -> Parts:
    found = Parts()
    found.feed(html)
    found.close()
    return found


def maths(html: str) -> list[str]:
    return re.findall(r'<math display="(block|inline)">', html)


def test_every_form_renders_as_mathml() -> None:
    html = render_markdown(FORMULA_ANSWER)
    assert maths(html) == [
        *("inline", "block", "inline", "block"),  # paragraph
        *("inline", "block"),  # list
        "inline",  # quote
        *("inline", "inline"),  # table
    ]
    shown = "".join(parts(html).text)
    assert "\\" not in shown and "$$" not in shown
    assert "costs $5 a week, $20 a month, or $5-$10 per lesson." in shown


def test_math_sits_inside_lists_quotes_and_tables() -> None:
    html = render_markdown(FORMULA_ANSWER)
    assert re.search(r"<li>the set <math", html)
    assert re.search(r"<li>\n?<math display=\"block\">", html)
    assert re.search(r"<blockquote>\s*<p>Euler: <math", html)
    assert re.search(r"<td><math display=\"inline\">", html)


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "Pay $5-$10, or $1,000.50 in total.",
        "From $3 to $4 per hour ($5 on Sundays)",
        "Set $HOME and $PATH",
        r"Escaped \$x\$ stays",
    ],
)
def test_prices_stay_text(text: str) -> None:
    html = render_markdown(text)
    assert not maths(html)
    assert text.replace("\\$", "$") in "".join(parts(html).text)


def test_backslashes_survive() -> None:
    """Markdown escapes would turn \\( into ( and \\{ into {: inside math they stay LaTeX."""
    html = render_markdown(r"Sets: \(\{a, b\}\) and \[ a \\ b \]")
    assert "{" in html and "}" in html and 'linebreak="newline"' in html
    assert "\\" not in "".join(parts(html).text)


def test_code_keeps_dollars_and_backslashes() -> None:
    html = render_markdown("Run `echo $HOME` and `\\(x\\)`:\n\n```\necho $$ $x$\n```")
    assert not maths(html)
    assert "<code>echo $HOME</code>" in html and "<code>\\(x\\)</code>" in html
    assert "$$" in html and "$x$" in html


@pytest.mark.parametrize(
    ("text", "source"),
    [
        (r"Bad: $\frac{a}$ here", r"$\frac{a}$"),
        (r"Bad: \(x^\) here", r"\(x^\)"),
        (r"Bad: $$\left( x$$", r"$$\left( x$$"),
        (r"Bad: \[\begin{matrix} a\]", r"\[\begin{matrix} a\]"),
        (r"Bad: $\notacommand$", r"$\notacommand$"),
        ("Bad: $a < b & c \\fooo$", "$a &lt; b &amp; c \\fooo$"),
    ],
)
def test_malformed_latex_shows_its_source(text: str, source: str) -> None:
    html = render_markdown(text)
    assert f'<code class="streamchat-math-error">{source}</code>' in html


def test_display_formula_spanning_lines_keeps_list_syntax_as_latex() -> None:
    html = render_markdown("$$\na\n- b\n+ c\n$$")
    assert "<ul>" not in html and "<li>" not in html
    assert maths(html) == ["block"]


def test_the_sanitizer_keeps_only_mathml_it_knows() -> None:
    html = render_markdown(r"$\href{javascript:alert(1)}{x}$ $\style{color:red}{y}$ $\class{a}{z}$")
    assert set(parts(html).tags) <= MATHML_TAGS | {"p"}
    assert "href" not in html and "style" not in html and "class" not in html


def typed(text: str) -> list[str]:
    """The bubble's HTML after each character."""
    stream = MarkdownStream()
    shown = []
    for char in text:
        stream.append(char)
        shown.append(stream.html)
    return shown


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ("So $x^2 + y_1$ done.", "inline"),
        ("So \\(x^2 + y_1\\) done.", "inline"),
        ("Then\n$$\nx^2 + y_1\n$$\ndone.", "block"),
        ("Then \\[ x^2 + y_1 \\] done.", "block"),
        ("- item \\(x^2 + y_1\\) done.", "inline"),
        ("> quote $x^2 + y_1$ done.", "inline"),
    ],
)
def test_an_unclosed_formula_shows_as_pending_source_while_typed(text: str, display: str) -> None:
    states = []
    for html in typed(text):
        shown = "".join(parts(html).text)
        assert "$" not in shown and "\\" not in shown, html  # no raw delimiters, ever
        if "streamchat-math-pending" in html:
            states.append("pending")
            assert "x^2" in html or "x" in shown
        elif maths(html):
            states.append("math")
            assert maths(html) == [display]
        else:
            states.append("none")
    # none -> pending -> math, each once: it never flips back.
    collapsed = [state for i, state in enumerate(states) if i == 0 or states[i - 1] != state]
    assert collapsed == ["none", "pending", "math"], states


def test_a_price_typed_out_never_shows_as_math() -> None:
    text = "It costs $5 and $10 per month, or $5-$10."
    for html in typed(text):
        assert "<math" not in html and "pending" not in html, html


def test_stream_ends_equal_to_a_whole_render() -> None:
    stream = MarkdownStream()
    for index in range(0, len(FORMULA_ANSWER), 3):
        stream.append(FORMULA_ANSWER[index : index + 3])
    stream.finish()
    assert stream.html == render_markdown(FORMULA_ANSWER)
    assert stream.text == FORMULA_ANSWER
