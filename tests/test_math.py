"""The math module alone: finding formulas, the price rule, streaming states, safe MathML."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from streamchat import _math
from streamchat._math import PENDING, find, mark_pending, match, to_html
from streamchat.render import parser, render_markdown


def sources(text: str) -> list[tuple[str, str]]:
    return [(f.opener, f.source) for f in find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$E=mc^2$", [("$", "E=mc^2")]),
        ("a \\(x^2\\) b", [("\\(", "x^2")]),
        ("$$\\int_0^1 f$$", [("$$", "\\int_0^1 f")]),
        ("\\[ a \\\\ b \\]", [("\\[", " a \\\\ b ")]),
        ("$a$ and $b$", [("$", "a"), ("$", "b")]),
        ("$$a$$ $b$ \\(c\\) \\[d\\]", [("$$", "a"), ("$", "b"), ("\\(", "c"), ("\\[", "d")]),
        ("\\(\\{x\\}\\)", [("\\(", "\\{x\\}")]),  # escaped braces do not end it
        ("\\(a \\\\)", []),  # "\\\\" then ")": a LaTeX line break, not the closer
        ("$\\$5$", [("$", "\\$5")]),
    ],
)
def test_every_form_is_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert sources(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "It costs $5 and $10.",
        "Between $5-$10 a month",
        "($5)($10)",
        "$1,000.00 or $2,000",
        "I paid $ 5 and $ 6",
        "US$5 and US$10",
        "Use $HOME and $PATH",
        "\\$x$ is escaped",
        "a $ b $ c",  # spaces inside the dollars: not math
        "$x\ny$",  # an inline formula stays on one line
        "$$\n\n$$",  # an empty display formula
        "$$ a\n\nb $$",  # a blank line ends a paragraph, and with it any formula
        "\\\\(x\\\\)",  # an escaped backslash, then parentheses
        "`$x$` and ``$$y$$``",  # code spans
    ],
)
def test_prices_shell_variables_escapes_and_code_stay_text(text: str) -> None:
    assert sources(text) == []


def test_a_price_before_a_formula_does_not_swallow_it() -> None:
    assert sources("It costs $5, and $x^2$ grows") == [("$", "x^2")]


def test_match_only_at_an_opener() -> None:
    assert match("a $x$", 0) is None
    formula = match("a $x$ b", 2)
    assert formula is not None
    assert (formula.start, formula.end, formula.closed, formula.display) == (2, 5, True, False)


def display_formulas(lines: list[str]) -> int:
    """How many display formulas the engine's block rule makes of the lines."""
    tokens = parser().parse("\n".join(lines) + "\n")
    return sum(1 for token in tokens if token.type == "math_block" and "<math" in token.content)


def test_a_display_formula_keeps_latex_away_from_block_rules() -> None:
    lines = ["$$", "a", "- b", "| c |", "$$", "after"]
    assert display_formulas(lines) == 1
    html = render_markdown("\n".join(lines))
    assert "<li>" not in html and "<table>" not in html and "<p>after</p>" in html


def test_display_formulas_in_quotes_and_lists() -> None:
    assert display_formulas(["> $$", "> x", "> $$"]) == 1
    assert display_formulas(["- \\[", "  y", "  \\]"]) == 1


@pytest.mark.parametrize(
    "lines",
    [
        ["```", "$$", "- a", "$$", "```"],  # inside a fence
        ["    $$", "    - a", "    $$"],  # indented code
        ["$$", "a", "", "b $$"],  # a blank line: no formula
        ["$$", "never closed"],
        ["`$$`", "- a"],  # a code span
    ],
)
def test_other_lines_make_no_display_formula(lines: list[str]) -> None:
    assert display_formulas(lines) == 0


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("So $x^2 +", "So $x^2 +" + PENDING),
        ("So \\(a", "So \\(a" + PENDING),
        ("$$\n\\sum_i", "$$\n\\sum_i" + PENDING),
        ("see \\[ y", "see \\[ y" + PENDING),
        # Nothing typed yet after the opener, or maybe an opener: held back.
        ("So $", "So "),
        ("So $$", "So "),
        ("So \\", "So "),
        ("So \\(", "So "),
        ("So $$\n", "So "),
        # Decided: closed formulas, prices, a formula that ended at a line break.
        ("So $x$ and", "So $x$ and"),
        ("So $x$", "So $x" + PENDING),
        ("So $$x$$", "So $$x$$"),
        ("It costs $5", "It costs $5"),
        ("$x\nnext", "$x\nnext"),
        ("`$x", "`$x"),
    ],
)
def test_mark_pending(typed: str, expected: str) -> None:
    assert mark_pending(typed) == expected


def test_an_unclosed_formula_has_one_state_while_it_is_typed() -> None:
    """Every prefix of "Then $a_1 + b$ ends." shows the formula as pending or done."""
    text = "Then $a_1 + b$ ends."
    states = []
    for end in range(len(text) + 1):
        marked = mark_pending(text[:end])
        formulas = list(find(marked))
        assert len(formulas) <= 1
        assert "$" not in "".join(
            part for part in re.split(r"\$[^$]*\$|\$[^$]*" + PENDING, marked)
        ), f"a raw dollar shows at {end}: {marked!r}"
        states.append("none" if not formulas else "done" if formulas[0].closed else "pending")
    assert states[:7] == ["none"] * 7  # "Then $": the "$" is held back
    # The closing "$" waits for the next character: "$5-$1" would make it a price.
    assert set(states[7:15]) == {"pending"}
    assert set(states[15:]) == {"done"}


def test_pending_and_failing_formulas_show_their_source() -> None:
    pending = match("\\(a < b" + PENDING, 0)
    assert pending is not None and not pending.closed
    assert to_html(pending) == '<span class="streamchat-math-pending">a &lt; b</span>'
    failing = match("$\\frac{a}$", 0)
    assert failing is not None
    assert to_html(failing) == '<code class="streamchat-math-error">$\\frac{a}$</code>'


@pytest.mark.parametrize(
    "source",
    [
        "\\frac{a}",  # a fraction without a denominator
        "x^",
        "\\left( x",
        "\\begin{matrix} a",
        "\\unknowncommand{x}",
        "{" * 60 + "x" + "}" * 60,
        "x" * (_math.MAX_SOURCE + 1),
        "\\newcommand{\\a}{\\a\\a}\\a",  # macros could expand without bound
        "\\def\\b{x}\\b",
    ],
)
def test_malformed_or_costly_latex_shows_source(source: str) -> None:
    assert _math._mathml(source, False) is None


def test_mathml_for_common_answers() -> None:
    html = _math._mathml("x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}", True)
    assert html is not None
    assert html.startswith('<math display="block"><mrow><mi>x</mi><mo>=</mo><mfrac>')
    assert "<msqrt>" in html and "±" in html


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


@pytest.mark.parametrize(
    "source",
    [
        "\\href{javascript:alert(1)}{x}",
        "\\href{https://example.com}{x}",
        "\\style{position:fixed;top:0;left:0;width:100vw;height:100vh}{x}",
        "\\class{jp-Dialog}{x}",
        "\\fcolorbox{red}{blue}{x}",  # latex2mathml writes a CSS "border-color" attribute
        "\\text{<img src=x onerror=alert(1)>}",
        "\\text{<script>alert(1)</script>}",
        "a < b \\& c > d",
        "\\text{&lt;script&gt;}",
        "\\color{javascript:alert(1)}{x}",
        "\\color{red;background:url(x)}{x}",
        "\\mathrm{</math><img src=x onerror=alert(1)>}",
        "\\html{<b>x</b>}",
        "\\raisebox{900em}{x}",  # would move it over the page above
        "\\mkern-900mu x",  # would pull it over what is on the left
        "\\rule{5000em}{5000em}",
        "\\hspace{-100em}",
    ],
)
def test_mathml_carries_nothing_dangerous(source: str) -> None:
    html = _math._mathml(source, False)
    if html is None:
        return  # shown as escaped source: covered by the pending/failing test
    found = parsed(html)
    assert set(found.tags) <= _math.MATHML_TAGS
    names = {name for name, _ in found.attributes}
    assert not names & {"href", "style", "class", "id", "border-color", "xmlns"}
    for name, value in found.attributes:
        assert value is not None
        assert "javascript" not in value.lower() and "(" not in value and ";" not in value
        assert _math.attribute_filter("mrow", name, value) == value
        if re.fullmatch(r"[+-]?[\d.]+(em|ex|mu|pt|px|%)?", value.split()[0]):
            assert not re.search(r"\d{3}", value), f"{name}={value}"
    assert "<img" not in html and "<script" not in html and "<b>" not in html


def test_text_in_a_formula_is_text() -> None:
    html = _math._mathml("\\text{<b>&amp;</b>}", False)
    assert html is not None
    assert "".join(parsed(html).text) == "<b>&amp;</b>"


@pytest.mark.parametrize(
    ("attribute", "value", "kept"),
    [
        ("display", "block", True),
        ("display", "inline;x", False),
        ("mathvariant", "double-struck", True),
        ("mathvariant", "url(x)", False),
        ("width", "0.167em", True),
        ("width", "-0.167em", True),
        ("width", "+0.833em", True),
        ("width", "21em", False),
        ("width", "-3em", False),
        ("width", "calc(100vw)", False),
        ("voffset", "-.2em", True),
        ("voffset", "3em", False),
        ("columnspacing", "0em 2em", True),
        ("mathcolor", "red", True),
        ("mathcolor", "#ff000080", True),
        ("mathcolor", "rgb(0,0,0)", False),
        ("notation", "updiagonalstrike downdiagonalstrike", True),
        ("notation", "box phasorangle", False),
        ("scriptlevel", "1", True),
        ("scriptlevel", "99", False),
        ("href", "https://example.com", False),
        ("style", "color:red", False),
        ("onclick", "alert(1)", False),
    ],
)
def test_attribute_filter(attribute: str, value: str, kept: bool) -> None:
    assert (_math.attribute_filter("mstyle", attribute, value) == value) is kept


def _emitted() -> tuple[set[str], set[str]]:
    """Every element and attribute name latex2mathml emits for each command it knows."""
    from latex2mathml import commands
    from latex2mathml.converter import convert_to_element

    known = {v for v in vars(commands).values() if isinstance(v, str) and v.startswith("\\")}
    known |= {k for k in commands.CONVERSION_MAP if isinstance(k, str)}
    tags: set[str] = set()
    names: set[str] = set()
    extra = ["x_1^2", "\\sqrt[3]{x}", "\\frac{1}{2}", "\\fcolorbox{red}{blue}{x}"]
    for command in sorted(known):
        for latex in (command, f"x{command}{{a}}{{b}}", f"\\begin{{{command[1:]}}}a&b\\end{{x}}"):
            extra.append(latex)
    for latex in extra:
        try:
            tree = convert_to_element(latex)
        except Exception:
            continue
        for node in tree.iter():
            tags.add(node.tag)
            names.update(node.attrib)
    return tags, names


def test_the_allowlist_is_what_latex2mathml_emits() -> None:
    tags, names = _emitted()
    assert tags == _math.MATHML_TAGS
    dropped = {"href", "style", "class", "border-color", "xmlns"}
    assert dropped <= names, "the commands that set them must still be tried"
    assert names - dropped <= _math.MATHML_ATTRIBUTES
