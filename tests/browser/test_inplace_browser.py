"""Patches applied in place, seen in a real JupyterLab: a long code block and a long table
type out without re-parsing what is finished, nothing jumps, the cursor stays at the end
of the text, and the reader keeps the scroll. Screenshots go to test-artifacts/.

The kernel's demo server answers each prompt below with a fixed text (its `answer_for`
replaced in the kernel), typed out by the widget's own typewriter.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from .conftest import Jupyter
from .frontends import ANSWER_DONE, LOAD, ask
from .test_widget_browser import CURSOR, answers_cell, open_and_run, run_cell, shoot

pytestmark = pytest.mark.browser

CODE = (
    "The module:\n\n```python\n"
    + "".join(
        f"def fetch_{n}(client, url: str) -> bytes:  # part {n} & <more>\n"
        f"    return client.get(url, timeout={n % 7 + 1}).content\n"
        for n in range(60)
    )
    + "```\n\nThat is all.\n"
)
TABLE = (
    "Latency by endpoint:\n\n| # | Endpoint | p50 | Notes |\n|---|---|--:|---|\n"
    + "".join(f"| {n} | `/v1/items/{n}` | {n % 90 + 10} ms | *ok* & fine |\n" for n in range(60))
    + "\nThat is all.\n"
)
ANSWERS = {"code": CODE, "table": TABLE}


# Samples, once a frame while the last answer types: where its first block of code or
# table sits, whether the first line/row is still the node it was, how many code bars.
WATCH = r"""(n) => {
  window.__samples = [];
  window.__watching = true;
  let first = null;
  const sample = () => {
    if (!window.__watching) return;
    // The answer asked now (the n-th), not the one before it.
    const answer = document.querySelectorAll('.streamchat-assistant')[n];
    const body = answer && answer.querySelector('.streamchat-body');
    const block = body && body.querySelector('.streamchat-code, table');
    if (block) {
      const lines = block.querySelectorAll('code > span, tbody > tr');
      const line = lines[0];
      if (lines.length >= 10 && !first) first = line;  // long finished by then
      const bubble = body.closest('.streamchat-bubble');
      window.__samples.push({
        top: block.getBoundingClientRect().top - bubble.getBoundingClientRect().top,
        sameFirst: !first || first === line,
        bars: body.querySelectorAll('.streamchat-code-bar').length,
        cursors: document.querySelectorAll('.streamchat-cursor').length,
      });
    }
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}"""

# The answer's DOM without the view's own nodes (its wrappers of finished blocks
# unwrapped), against a parse of its whole HTML.
SAME_AS_PARSED = """() => {
  const bodies = document.querySelectorAll('.streamchat-assistant .streamchat-body');
  const body = bodies[bodies.length - 1];
  const part = body.streamchat;
  const clone = body.cloneNode(true);
  for (const wrapper of clone.querySelectorAll(':scope > .streamchat-group')) {
    wrapper.replaceWith(...wrapper.childNodes);
  }
  const own = clone.querySelectorAll('.streamchat-code-bar, .streamchat-cursor');
  for (const node of own) node.remove();
  const parsed = document.createElement('div');
  parsed.className = body.className;
  parsed.innerHTML = part.html;
  return {same: clone.isEqualNode(parsed), stats: part.live.stats, size: part.html.length};
}"""


def type_out(page: Any, prompt: str, shot: str) -> list[dict[str, Any]]:
    """Ask; sample every frame and the cursor while it types; screenshots during and after."""
    count = page.locator(".streamchat-assistant").count()
    page.evaluate(WATCH, count)
    ask(page, prompt)
    page.wait_for_function(
        "n => { const a = document.querySelectorAll('.streamchat-assistant');"
        " const b = a.length > n && a[a.length - 1].querySelector('.streamchat-body');"
        " return b && b.querySelectorAll('code > span, tbody > tr').length > 40; }",
        arg=count,
        timeout=LOAD,
    )
    scroll = page.evaluate(
        "() => { const l = document.querySelector('.streamchat-log');"
        " return [l.scrollHeight - l.scrollTop - l.clientHeight,"
        " !document.querySelector('.streamchat-jump').hidden]; }"
    )
    assert scroll[0] <= 64 and not scroll[1], f"the log follows the typing answer: {scroll}"
    spots = [page.evaluate(CURSOR) for _ in range(5)]
    shoot(page, f"{shot}-typing.png")
    page.wait_for_function(
        "n => { const a = document.querySelectorAll('.streamchat-assistant');"
        " return a.length > n && a[a.length - 1].dataset.status === 'done'; }",
        arg=count,
        timeout=ANSWER_DONE,
    )
    shoot(page, f"{shot}-done.png")
    samples = page.evaluate("() => { window.__watching = false; return window.__samples; }")
    for spot in filter(None, spots):
        if spot["last"]:  # on the line of the last character, right after it
            assert spot["cursor"]["top"] < spot["last"]["bottom"], spot
            assert spot["cursor"]["bottom"] > spot["last"]["top"], spot
            assert spot["cursor"]["left"] >= spot["last"]["right"] - 1, spot
    return samples


def test_code_and_table_type_out_in_place(page: Any, lab: Jupyter) -> None:
    page.add_style_tag(content=".streamchat-log { max-height: none !important; }")
    open_and_run(page, lab, "inplace.ipynb", [answers_cell(ANSWERS, speed=900)])
    for prompt in ("code", "table"):
        samples = type_out(page, prompt, f"inplace-{prompt}")
        assert len(samples) > 20, "sampled every frame while it typed"
        tops = [sample["top"] for sample in samples]
        # Sub-pixel rounding of a growing table may differ by a pixel; a jump is more.
        assert max(tops) - min(tops) <= 1.5, f"the {prompt} block moved while typing: {tops}"
        rebuilt = [s for s in samples if not s["sameFirst"]]
        stats = page.evaluate(SAME_AS_PARSED)["stats"]
        assert not rebuilt, f"{prompt}: a finished line was rebuilt ({len(rebuilt)}) {stats}"
        bars = {s["bars"] for s in samples}
        assert bars == ({1} if prompt == "code" else {0}), f"code bars while typing: {bars}"
        assert all(s["cursors"] <= 1 for s in samples)
        result = page.evaluate(SAME_AS_PARSED)
        assert result["same"], "the DOM built in place differs from a parse of the whole"
        stats = result["stats"]
        assert stats["wholes"] == 0 and stats["fallbacks"] == 0, stats
        # Each update parsed about its new text: the whole answer about twice at most.
        assert stats["parsedChars"] < 2 * result["size"], stats
    assert page.locator(".streamchat-cursor").count() == 0
    page.console.check()


SCROLL = """() => {
  const log = document.querySelector('.streamchat-log');
  const jump = document.querySelector('.streamchat-jump');
  return {top: log.scrollTop, bottom: log.scrollHeight - log.scrollTop - log.clientHeight,
          jump: !jump.hidden};
}"""


def test_jump_to_latest_while_scrolled_up(page: Any, lab: Jupyter) -> None:
    open_and_run(page, lab, "jump.ipynb", [answers_cell(ANSWERS, speed=150)])
    ask(page, "table")
    page.wait_for_function(
        "() => { const l = document.querySelector('.streamchat-log');"
        " return l.scrollHeight > l.clientHeight + 200; }",
        timeout=LOAD,
    )
    assert page.evaluate(SCROLL)["bottom"] <= 32, "following the newest text"
    assert not page.evaluate(SCROLL)["jump"]
    page.locator(".streamchat-log").hover()
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"({SCROLL})().bottom > 100")
    held = page.evaluate(SCROLL)
    assert held["jump"], "scrolled up: 'Jump to latest' shows"
    page.wait_for_function(f"({SCROLL})().bottom > {held['bottom'] + 60}")  # rows arrive below
    assert page.evaluate(SCROLL)["top"] == held["top"], "scrolled up: the view stays put"
    shoot(page, "inplace-jump.png")
    page.locator(".streamchat-jump").click()
    page.wait_for_function(f"({SCROLL})().bottom <= 32 && !({SCROLL})().jump")
    page.wait_for_function(  # and it follows again as rows keep coming
        "() => { const l = document.querySelector('.streamchat-log');"
        " window.__h = window.__h || l.scrollHeight; return l.scrollHeight > window.__h + 60; }"
    )
    page.wait_for_function(f"({SCROLL})().bottom <= 32")
    page.locator(".streamchat-stop").click()
    page.console.check()


LONG = (
    "".join(
        f"## Part {n}\n\nParagraph {n}: the finished blocks above the open one go into the"
        f" view's wrappers, sixteen at a time, and nothing moves when they do ({n}).\n\n"
        + (f"```python\nprint({n})\nreturn {n}\n```\n\n" if n % 4 == 0 else "")
        + (f"- item {n}\n- item {n + 1}\n\n" if n % 5 == 0 else "")
        for n in range(40)
    )
    + "That is all.\n"
)

# Once a frame while the answer types: where its open (last) block sits in the bubble,
# and whether it is the same node as the frame before; the wrappers; the log's scroll.
WATCH_WRAPPERS = r"""() => {
  window.__samples = [];
  window.__watching = true;
  window.__skipped = 0;
  document.addEventListener('contentvisibilityautostatechange', (event) => {
    if (event.skipped) window.__skipped++;
  }, true);
  const sample = () => {
    if (!window.__watching) return;
    const bodies = document.querySelectorAll('.streamchat-assistant .streamchat-body');
    const body = bodies[bodies.length - 1];
    const last = body && body.lastElementChild;
    if (last && !last.classList.contains('streamchat-group')) {
      const bubble = body.closest('.streamchat-bubble');
      const log = document.querySelector('.streamchat-log');
      window.__samples.push({
        node: last,
        top: last.getBoundingClientRect().top - bubble.getBoundingClientRect().top,
        wrappers: body.querySelectorAll(':scope > .streamchat-group').length,
        bottom: log.scrollHeight - log.scrollTop - log.clientHeight,
        jump: !document.querySelector('.streamchat-jump').hidden,
        live: body.closest('.streamchat-assistant').getAttribute('aria-busy') === 'true',
      });
    }
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}"""

JUMPS = """() => {
  window.__watching = false;
  const samples = window.__samples.filter((s) => s.live);
  const jumps = [];
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1], samples[i]];
    if (a.node === b.node && Math.abs(a.top - b.top) > 1) jumps.push([a.top, b.top, b.wrappers]);
  }
  return {count: samples.length, jumps, wrappers: Math.max(...samples.map((s) => s.wrappers)),
          behind: Math.max(...samples.map((s) => s.bottom)),
          jump: samples.some((s) => s.jump), skipped: window.__skipped};
}"""


def test_finished_blocks_wrapped_without_a_jump(page: Any, lab: Jupyter) -> None:
    """A long answer: its finished blocks go into the view's wrappers as it types; the
    open block never moves when they do, the log follows the end, the wrappers above
    the view are skipped by the browser, and the whole is still the HTML parsed at once
    (selectable, copyable: the same nodes)."""
    open_and_run(page, lab, "wrappers.ipynb", [answers_cell({"long": LONG}, speed=1500)])
    page.evaluate(WATCH_WRAPPERS)
    ask(page, "long")
    page.wait_for_function(
        "() => { const a = document.querySelector('.streamchat-assistant');"
        " return a && a.querySelectorAll('.streamchat-group').length >= 2; }",
        timeout=LOAD,
    )
    shoot(page, "wrappers-typing.png")
    page.wait_for_function(
        "() => document.querySelector('.streamchat-assistant').dataset.status === 'done'",
        timeout=ANSWER_DONE,
    )
    seen = page.evaluate(JUMPS)
    assert seen["count"] > 20, seen
    assert seen["wrappers"] >= 4, f"finished blocks wrapped as they typed: {seen}"
    assert not seen["jumps"], f"the open block moved as blocks were wrapped: {seen['jumps']}"
    assert seen["behind"] <= 64 and not seen["jump"], f"the log followed the end: {seen}"
    assert seen["skipped"] >= 1, "wrappers out of view are left out of rendering"
    # At the end (next frame), every block but the last is wrapped; the DOM is the HTML.
    page.wait_for_function(
        "() => { const b = document.querySelector('.streamchat-body');"
        " return [...b.children].filter((n) => !n.matches('.streamchat-group')).length === 1; }"
    )
    result = page.evaluate(SAME_AS_PARSED)
    assert result["same"], "the DOM, wrappers unwrapped, differs from a parse of the whole"
    assert result["stats"]["wholes"] == 0 and result["stats"]["fallbacks"] == 0, result
    selected = page.evaluate(
        "() => { const b = document.querySelector('.streamchat-body');"
        " getSelection().selectAllChildren(b); return getSelection().toString(); }"
    )
    assert "Paragraph 0:" in selected and "Paragraph 39:" in selected
    # What a person copies is the answer: the code bars' labels are the view's, not text.
    assert "print(0)" in selected and "return 36" in selected
    assert "Copy" not in selected and "python" not in selected, selected[:400]
    shoot(page, "wrappers-done.png")
    page.console.check()


# Once a frame: how many answers are settled, and where the first answer's first block
# sits in the log's content (what would move if a size were wrong).
WATCH_SETTLED = r"""() => {
  window.__settled = [];
  window.__skippedTurns = 0;
  document.addEventListener('contentvisibilityautostatechange', (event) => {
    if (event.skipped && event.target.matches('.streamchat-assistant')) window.__skippedTurns++;
  }, true);
  const log = document.querySelector('.streamchat-log');
  const sample = () => {
    const first = log.querySelector('.streamchat-body > *');
    window.__settled.push({
      settled: log.querySelectorAll('.streamchat-settled').length,
      top: first ? first.getBoundingClientRect().top - log.getBoundingClientRect().top
        + log.scrollTop : null,
    });
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
}"""


def height_at_top(page: Any, index: int) -> float:
    """The `index`-th log scrolled to its top, once its first answer is rendered again:
    the log's whole height then."""
    log = page.locator(".streamchat-log").nth(index)
    log.evaluate("(l) => { l.scrollTop = 0; }")
    page.wait_for_function(
        "(i) => document.querySelectorAll('.streamchat-log')[i]"
        ".querySelector('.streamchat-body > *').checkVisibility({contentVisibilityAuto: true})",
        arg=index,
    )
    return float(log.evaluate("(l) => l.scrollHeight"))


def test_finished_answers_leave_rendering_without_a_jump(page: Any, lab: Jupyter) -> None:
    """Each finished answer settles (`content-visibility: auto`, its laid-out height as
    its size): settling moves nothing, one scrolled away is skipped, the log keeps its
    height when scrolled through, the whole conversation stays selectable, and a second
    view showing the answers whole settles them too."""
    cells = [answers_cell({"long": LONG, "code": CODE}, speed=3000), "chat"]
    open_and_run(page, lab, "settled.ipynb", cells)
    page.evaluate(WATCH_SETTLED)
    for n, prompt in enumerate(["long", "code", "long"], start=1):
        ask(page, prompt)
        page.wait_for_function(
            "(n) => document.querySelectorAll('.streamchat-log .streamchat-settled').length === n",
            arg=n,
            timeout=ANSWER_DONE,
        )
    samples = page.evaluate("() => window.__settled")
    moves = [
        (a, b)
        for a, b in itertools.pairwise(samples)
        if b["settled"] > a["settled"] and a["top"] != b["top"]
    ]
    assert not moves, f"settling an answer moved the log: {moves}"
    page.wait_for_function("() => window.__skippedTurns >= 1")  # an answer out of view is skipped
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('.streamchat-settled')]"
        ".map((n) => n.style.getPropertyValue('contain-intrinsic-block-size'))"
    )
    assert len(sizes) == 3 and all(s.startswith("auto ") and s.endswith("px") for s in sizes)
    # Scrolled to the top and back: the heights the skipped answers stand in for are theirs.
    log = page.locator(".streamchat-log").first
    height = log.evaluate("(l) => l.scrollHeight")
    assert abs(height_at_top(page, 0) - height) <= 1
    selected = log.evaluate(
        "(l) => { getSelection().selectAllChildren(l); return getSelection().toString(); }"
    )
    assert "Paragraph 0:" in selected and "def fetch_59" in selected and "That is all." in selected
    # A second view shows the finished answers whole: they settle once laid out.
    run_cell(page, 1)
    page.wait_for_function(
        "() => { const l = document.querySelectorAll('.streamchat-log');"
        " return l.length === 2 && l[1].querySelectorAll('.streamchat-settled').length === 3; }",
        timeout=LOAD,
    )
    # Its log follows the end, so its first answers settled unseen: their measured
    # heights stand in for them, and scrolling up through them moves nothing.
    second = page.locator(".streamchat-log").nth(1)
    first_height = log.evaluate("(l) => l.scrollHeight")
    assert abs(second.evaluate("(l) => l.scrollHeight") - first_height) <= 2
    assert abs(height_at_top(page, 1) - first_height) <= 2
    shoot(page, "settled-done.png")
    page.console.check()
