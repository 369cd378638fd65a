"""What the bubble shows, measured in real JupyterLab: math, wide tables, long code lines,
and the small layout glitches while an answer types. Screenshots go to test-artifacts/.

The kernel's demo server answers each prompt below with a fixed text (its `answer_for`
replaced in the kernel), typed out by the widget's own typewriter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamchat

from .conftest import Jupyter
from .frontends import ANSWER_DONE, ask
from .test_widget_browser import answers_cell, choose_theme, open_and_run, shoot

pytestmark = pytest.mark.browser

MATH = r"""## Two classic formulas

For $ax^2 + bx + c = 0$ with $a \ne 0$ the roots are
$$
x = \frac{-b \pm \sqrt{b^2 - 4ac}}{2a}
$$
and for a right triangle \(a^2 + b^2 = c^2\), so
\[
c = \sqrt{a^2 + b^2}.
\]

- Euler: $e^{i\pi} + 1 = 0$
- A sum: $$\sum_{k=1}^{n} k = \frac{n(n+1)}{2}$$

| quantity | formula |
|---|---|
| circle area | $\pi r^2$ |
| mean | \(\bar{x} = \frac{1}{n}\sum_i x_i\) |

The course costs $5 a week, $20 a month, or $5-$10 per lesson.
"""

COLUMNS = [
    *("Transport", "Framing", "Latency", "Throughput", "Reconnect", "Buffering"),
    *("Compression", "Browser API", "Proxies", "Ordering", "Backpressure", "Notes"),
]
ROW = [
    *("HTTP/1.1", "text/event-stream", "38 ms", "1,200 msg/s", "Last-Event-ID", "none"),
    *("identity", "EventSource", "nginx", "in order", "TCP window", "works everywhere"),
]
TABLE = (
    "Here are the options side by side:\n\n"
    + "| "
    + " | ".join(COLUMNS)
    + " |\n|"
    + "---|" * 12
    + "\n"
    + ("| " + " | ".join(ROW) + " |\n") * 3
)
LONG_LINE = (
    "    result = client.chat.completions.create(model=model_name, messages=history,"
    " temperature=0.2, stream=True)"
)
CODE = f"""Here is the loop:

```python
def main(client, model_name, history):
{LONG_LINE}
    for chunk in result:
        print(chunk.choices[0].delta.content or "", end="")
```

Done.
"""
HEADING = "## A heading that must not move\n\n" + "This paragraph types slowly. " * 4
TYPED_TABLE = "| Name | Kind | Size |\n|------|------|------|\n| alpha | file | 12 KB |\n"

ANSWERS = {"math": MATH, "table": TABLE, "code": CODE, "heading": HEADING, "typed": TYPED_TABLE}


def answer(page: Any, prompt: str) -> None:
    """Ask, and wait until that answer (not the one before) is done."""
    count = page.locator(".streamchat-assistant").count()
    ask(page, prompt)
    page.wait_for_function(
        "n => { const a = document.querySelectorAll('.streamchat-assistant');"
        " return a.length > n && a[a.length - 1].dataset.status === 'done'; }",
        arg=count,
        timeout=ANSWER_DONE,
    )


def body(index: int) -> str:
    """A JavaScript expression: the body of the `index`th answer (math, table, code)."""
    return f"document.querySelectorAll('.streamchat-assistant .streamchat-body')[{index}]"


MATH_FACTS = f"""() => {{
  const body = {body(0)};
  const maths = [...body.querySelectorAll('math')];
  const text = body.innerText;
  return {{
    inline: maths.filter((m) => m.getAttribute('display') === 'inline').length,
    block: maths.filter((m) => m.getAttribute('display') === 'block').length,
    heights: maths.map((m) => m.getBoundingClientRect().height),
    fractions: body.querySelectorAll('mfrac').length,
    text,
  }};
}}"""

TABLE_FACTS = f"""() => {{
  const table = {body(1)}.querySelector('table');
  const line = parseFloat(getComputedStyle(table).lineHeight) || 20;
  const cells = [...table.querySelectorAll('th, td')];
  const bubble = table.closest('.streamchat-bubble').getBoundingClientRect();
  return {{
    scrollWidth: table.scrollWidth,
    clientWidth: table.clientWidth,
    bubbleRight: bubble.right,
    tableRight: table.getBoundingClientRect().right,
    tallest: Math.max(...cells.map((c) => {{
      const style = getComputedStyle(c);
      const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
      return c.getBoundingClientRect().height - padding;
    }})),
    line,
    narrowest: Math.min(...cells.map((c) => c.getBoundingClientRect().width)),
  }};
}}"""

CODE_FACTS = f"""() => {{
  const body = {body(2)};
  const pre = body.querySelector('pre');
  const code = pre.querySelector('code');
  const lines = code.textContent.replace(/\\n$/, '').split('\\n').length;
  const line = parseFloat(getComputedStyle(pre).lineHeight);
  const button = body.querySelector('.streamchat-copy').getBoundingClientRect();
  // The first line's text, as laid out.
  const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let node, first = null;
  while ((node = walker.nextNode())) {{
    const at = node.nodeValue.indexOf('\\n');
    if (!first) {{ range.setStart(node, 0); first = node; }}
    if (at >= 0) {{ range.setEnd(node, at); break; }}
  }}
  const text = range.getBoundingClientRect();
  const box = pre.getBoundingClientRect();
  return {{
    lines, line, height: code.getBoundingClientRect().height,
    scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth,
    whiteSpace: getComputedStyle(pre).whiteSpace,
    button: {{left: button.left, right: button.right, top: button.top, bottom: button.bottom}},
    firstLine: {{
      left: text.left, right: Math.min(text.right, box.right), top: text.top, bottom: text.bottom,
    }},
  }};
}}"""


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def check_math(page: Any) -> None:
    facts = page.evaluate(MATH_FACTS)
    assert facts["inline"] == 6 and facts["block"] == 3, facts
    assert facts["fractions"] >= 3
    assert all(height > 8 for height in facts["heights"]), "MathML laid out, not hidden"
    text = facts["text"]
    assert "$$" not in text and "\\(" not in text and "\\[" not in text and "\\frac" not in text
    assert "costs $5 a week, $20 a month, or $5-$10 per lesson." in text


def check_table(page: Any) -> None:
    facts = page.evaluate(TABLE_FACTS)
    # Words stay whole ("text/event-" "stream" at most): no cell text runs over two lines,
    # none is squeezed to a letter.
    assert facts["tallest"] <= 2.2 * facts["line"], facts
    assert facts["narrowest"] >= 40, facts
    # Wider than the bubble, so it scrolls inside it instead of overflowing.
    assert facts["scrollWidth"] > facts["clientWidth"] + 100, facts
    assert facts["tableRight"] <= facts["bubbleRight"] + 1, facts


def check_code(page: Any) -> None:
    facts = page.evaluate(CODE_FACTS)
    assert facts["lines"] == 4
    # One screen line per source line: the long line scrolls, it does not wrap.
    assert facts["height"] <= (facts["lines"] + 0.5) * facts["line"], facts
    assert facts["scrollWidth"] > facts["clientWidth"], facts
    assert facts["whiteSpace"] == "pre", facts
    page.locator(".streamchat-assistant .streamchat-code").last.hover()
    facts = page.evaluate(CODE_FACTS)
    assert not overlaps(facts["button"], facts["firstLine"]), facts


def test_math_tables_and_code_at_two_widths_and_dark(page: Any, lab: Jupyter) -> None:
    open_and_run(page, lab, "math.ipynb", [answers_cell(ANSWERS, speed=600)])
    for prompt, check in (("math", check_math), ("table", check_table), ("code", check_code)):
        answer(page, prompt)
        check(page)
    page.set_viewport_size({"width": 1280, "height": 2400})
    page.add_style_tag(content=".streamchat-log { max-height: none !important; }")
    shoot(page, "render-1280.png")
    page.set_viewport_size({"width": 700, "height": 2800})
    page.wait_for_function("() => document.querySelector('.streamchat').clientWidth < 700")
    check_math(page)
    check_table(page)
    check_code(page)
    shoot(page, "render-700.png")
    page.set_viewport_size({"width": 1280, "height": 2400})
    choose_theme(page, "JupyterLab Dark")
    page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    shoot(page, "render-dark.png")
    choose_theme(page, "JupyterLab Light")
    page.wait_for_selector('body[data-jp-theme-light="true"]', state="attached")
    page.console.check()


# Records, on every DOM change of the last answer, what a glitch would look like.
WATCH = r"""(selector) => {
  window.__frames = [];
  const log = document.querySelector('.streamchat-log');
  const observer = new MutationObserver(() => {
    const bodies = document.querySelectorAll('.streamchat-assistant .streamchat-body');
    const body = bodies[bodies.length - 1];
    if (!body) return;
    const rows = [...body.querySelectorAll('tbody tr')];
    // Text outside formulas (rendered or pending) and code: where raw LaTeX must not show.
    const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT);
    let prose = '', node;
    while ((node = walker.nextNode())) {
      if (!node.parentElement.closest('math, .streamchat-math-pending, pre, code')) {
        prose += node.nodeValue;
      }
    }
    const heading = body.querySelector('h2');
    const bubble = body.closest('.streamchat-bubble');
    window.__frames.push({
      emptyRows: rows.filter((row) => !row.textContent.trim()).length,
      rows: rows.length,
      headingTop: heading ? heading.getBoundingClientRect().top - bubble.getBoundingClientRect().top
        : null,
      // The heading's block is frozen once the part's frozen HTML holds it.
      frozen: Boolean(heading && body.streamchat.state.frozen.includes('</h2>')),
      rawLatex: /\$\$|\\[[(\]]|\\[a-z]+|\$[a-z]/.test(prose) ? prose : null,
      pending: body.querySelectorAll('.streamchat-math-pending').length,
      maths: body.querySelectorAll('math').length,
    });
  });
  observer.observe(log, {childList: true, subtree: true, characterData: true});
  window.__stopWatching = () => observer.disconnect();
}"""


def watch(page: Any, prompt: str) -> list[dict[str, Any]]:
    page.evaluate(WATCH, None)
    answer(page, prompt)
    return page.evaluate("() => { window.__stopWatching(); return window.__frames; }")


def test_a_table_and_formulas_typed_out(page: Any, lab: Jupyter) -> None:
    open_and_run(page, lab, "typed.ipynb", [answers_cell(ANSWERS, speed=80)])
    frames = watch(page, "typed")
    assert len(frames) > 10
    assert not [f for f in frames if f["emptyRows"]], "an empty body row while the table types"
    assert max(f["rows"] for f in frames) == 1
    shoot(page, "render-typed-table.png")
    page.evaluate(WATCH, None)
    ask(page, "math")
    page.wait_for_selector(".streamchat-math-pending")
    shoot(page, "render-math-typing.png")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.streamchat-assistant')].pop().dataset.status"
        " === 'done'",
        timeout=ANSWER_DONE,
    )
    frames = page.evaluate("() => { window.__stopWatching(); return window.__frames; }")
    raw = [f["rawLatex"] for f in frames if f["rawLatex"]]
    assert not raw, f"raw LaTeX showed while typing: {raw[:3]}"
    assert sum(1 for f in frames if f["pending"]) >= 5, "formulas show as pending source"
    assert frames[-1]["maths"] == 9 and frames[-1]["pending"] == 0
    page.console.check()


def test_the_heading_stays_put_while_the_first_block_types(page: Any, lab: Jupyter) -> None:
    open_and_run(page, lab, "heading.ipynb", [answers_cell(ANSWERS, speed=60)])
    frames = [f for f in watch(page, "heading") if f["headingTop"] is not None]
    assert any(f["frozen"] for f in frames) and any(not f["frozen"] for f in frames)
    tops = {round(f["headingTop"]) for f in frames}
    assert len(tops) == 1, f"the heading moved: {sorted(tops)}"
    shoot(page, "render-heading.png")
    page.console.check()


# Words added one at a time to a paragraph of a fixed width, the cursor after the last:
# for each length, the cursor's line and the last character's.
CURSOR_AT_LINE_END = """() => {
  const p = document.querySelector('p');
  const cursor = document.querySelector('.streamchat-cursor');
  const text = p.firstChild;
  const full = text.data;
  const seen = [];
  for (let end = 1; end <= full.length; end++) {
    text.data = full.slice(0, end);
    if (text.data.endsWith(' ')) continue;  // a space at a break is the line's, not shown
    const range = document.createRange();
    range.setStart(text, end - 1);
    range.setEnd(text, end);
    const last = range.getBoundingClientRect();
    const box = cursor.getBoundingClientRect();
    seen.push({end, sameLine: box.top < last.bottom && box.bottom > last.top,
               after: box.left >= last.right - 1});
  }
  return seen;
}"""


def test_the_cursor_stays_on_the_line_of_the_last_character(page: Any) -> None:
    # Typed text reaches a line's end at some length: the cursor must stay after the
    # last character, not wrap to a line of its own (it did, a frame in a few hundred).
    css = (Path(streamchat.__file__).parent / "static" / "widget.css").read_text()
    words = " ".join(f"word{n}" for n in range(60))
    page.set_content(
        f"<style>{css}</style><div class='streamchat' style='width: 313px'>"
        f"<div class='streamchat-body'><p>{words}<span class='streamchat-cursor'></span></p>"
        "</div></div>"
    )
    seen = page.evaluate(CURSOR_AT_LINE_END)
    assert len(seen) > 300
    wrapped = [spot["end"] for spot in seen if not (spot["sameLine"] and spot["after"])]
    assert not wrapped, f"the cursor left the last character's line at lengths {wrapped}"
