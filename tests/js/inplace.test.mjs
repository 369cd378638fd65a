// Patches applied in place (widget.js `LiveHtml`): after every batch the DOM, with the
// view's own wrappers of finished blocks unwrapped, must equal the DOM of the whole HTML
// parsed at once, and the work must stay near the change.
// jsdom (parse5, a spec-compliant HTML parser) is a test-only dependency: tests/js/package.json.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { JSDOM } from "jsdom";

import {
  GROUP_CLASS,
  LiveHtml,
  applyOps,
  decodeText,
  netChange,
  scanTag,
  showInterval,
  splitChange,
  unwrapped,
} from "../../src/streamchat/static/widget.js";

const { window } = new JSDOM("<!doctype html><body></body>");
const { document } = window;
const cases = JSON.parse(readFileSync(new URL("../patch_cases.json", import.meta.url))).cases;
const streams = JSON.parse(
  readFileSync(new URL("./fixtures/rendered_streams.json", import.meta.url)),
).streams;

/** A node as comparable data: text nodes one by one (two adjacent ones differ from one). */
function shape(node) {
  if (node.nodeType === 3) return ["#text", node.data];
  if (node.nodeType === 8) return ["#comment", node.data];
  const attributes = [...node.attributes].map((a) => `${a.namespaceURI ?? ""}:${a.name}=${a.value}`).sort();
  return [node.namespaceURI, node.localName, attributes, [...node.childNodes].map(shape)];
}

function parsedWhole(html) {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div;
}

/** The map's lengths, from the applier's own map or one built afresh. */
function lengths(entry) {
  if (!entry) return null;
  return [entry.len, entry.open ?? 0, entry.close ?? 0, entry.kids?.map(lengths) ?? null];
}

function check(live, html, label) {
  assert.equal(live.html, html, `${label}: the applier's HTML`);
  assert.deepEqual(shape(unwrapped(live.root)), shape(parsedWhole(html)), `${label}: the DOM`);
  if (live.map) assert.deepEqual(lengths(live.map), lengths(live.build(html)), `${label}: the map`);
  // Wrappers hold only blocks that were finished when they were made, and only at the top.
  for (const wrapper of live.root.querySelectorAll(`.${GROUP_CLASS}`)) {
    assert.equal(wrapper.parentNode, live.root, `${label}: a wrapper at the top`);
    assert.ok(wrapper.firstChild, `${label}: an empty wrapper`);
  }
}

/** As `Part.show` does it: finished blocks into wrappers (every 2, so short streams make
 * some), then the batch; at the end, everything but the last block (`seal`). */
function run(start, batches, label, checked = true, groupSize = 2) {
  const root = document.body.appendChild(document.createElement("div"));
  const live = new LiveHtml(root);
  live.groupSize = groupSize;
  let state = start;
  live.set(state.frozen + state.tail);
  check(live, state.frozen + state.tail, `${label} start`);
  batches.forEach((ops, index) => {
    const next = applyOps(state, ops).state;
    live.group(state.frozen.length);
    live.apply(ops, state.frozen.length);
    state = next;
    if (checked) check(live, state.frozen + state.tail, `${label} batch ${index}`);
  });
  live.group(live.html.length, true);
  check(live, state.frozen + state.tail, `${label} sealed`);
  return live;
}

test("every patch case, op by op and as one batch, leaves the DOM a whole parse makes", () => {
  for (const { name, start, ops } of cases) {
    run(start, ops.map((op) => [op]), `${name} (op by op)`);
    run(start, [ops], `${name} (one batch)`);
  }
});

test("real renderer streams: the DOM equals a whole parse after every batch", () => {
  assert.ok(streams.length >= 15);
  for (const { name, batches } of streams) {
    const live = run({ frozen: "", tail: "" }, batches, name);
    const resets = batches.flat().filter((op) => op.op === "reset").length;
    // Never the whole part again, but for a reset; each re-parse fell back at most once.
    assert.equal(live.stats.wholes, resets, `${name}: whole re-parses ${JSON.stringify(live.stats)}`);
    // The view shows a large open block every 100 ms: several batches as one change.
    const grouped = [];
    for (let i = 0; i < batches.length; i += 4) grouped.push(batches.slice(i, i + 4).flat());
    const together = run({ frozen: "", tail: "" }, grouped, `${name} (4 batches at a time)`);
    assert.equal(together.stats.wholes, resets, `${name}: ${JSON.stringify(together.stats)}`);
  }
});

test("finished blocks go into the view's wrappers; the open block and the last never", () => {
  for (const { name, batches } of streams.filter((s) => /^(mixed|prose)\//.test(s.name))) {
    const live = run({ frozen: "", tail: "" }, batches, name, false, 3);
    const wrappers = [...live.root.children].filter((node) => node.className === GROUP_CLASS);
    const blocks = live.map ? live.map.kids.filter((kid) => kid.kids).length : 0;
    if (blocks < 5) continue;
    assert.ok(wrappers.length >= 1, `${name}: ${blocks} blocks, no wrapper`);
    // Sealed: every block but the last is wrapped, 3 to a wrapper (the last one fewer).
    const loose = [...live.root.children].filter((node) => node.className !== GROUP_CLASS);
    assert.equal(loose.length, 1, `${name}: the last block alone outside`);
    for (const wrapper of wrappers.slice(0, -1)) assert.equal(wrapper.children.length, 3, name);
  }
  // While streaming, a wrapper is made once groupSize blocks are finished before the open one.
  const root = document.body.appendChild(document.createElement("div"));
  const live = new LiveHtml(root);
  live.groupSize = 2;
  live.set("");
  let state = { frozen: "", tail: "" };
  const step = (ops) => {
    live.group(state.frozen.length);
    live.apply(ops, state.frozen.length);
    state = applyOps(state, ops).state;
  };
  step([{ op: "tail", html: "<p>a</p>" }]);
  step([{ op: "commit", size: 8 }, { op: "tail", html: "\n<p>b</p>" }]);
  step([{ op: "commit", size: 9 }, { op: "tail", html: "\n<p>c</p>" }]);
  assert.equal(root.querySelectorAll(`.${GROUP_CLASS}`).length, 0, "two finished, one is the last");
  step([{ op: "commit", size: 9 }, { op: "tail", html: "\n<p>d</p>" }]);
  step([{ op: "extend", drop: 0, keep: 4, html: "e" }]);
  const [wrapper] = root.querySelectorAll(`.${GROUP_CLASS}`);
  assert.ok(wrapper, "a, b finished before c: wrapped");
  assert.equal(wrapper.textContent, "a\nb");
  assert.equal(root.lastChild.textContent, "de", "the open block is outside, and grew in place");
  assert.deepEqual(shape(unwrapped(root)), shape(parsedWhole(state.frozen + state.tail)));
});

test("in place, the work follows the new text, not the size of the open block", () => {
  for (const { name, batches } of streams.filter((s) => /^(code|table|prose)\//.test(s.name))) {
    const live = new LiveHtml(document.createElement("div"));
    let state = { frozen: "", tail: "" };
    let most = 0;
    for (const ops of batches) {
      const before = live.stats.parsedChars;
      live.apply(ops, state.frozen.length);
      state = applyOps(state, ops).state;
      most = Math.max(most, live.stats.parsedChars - before);
    }
    // No update parses the block again: not when it is appended finished either.
    assert.ok(most < 1000, `${name}: ${most} characters parsed in one update`);
    const { parsedChars, fallbacks, updates } = live.stats;
    // Parsed: the finished blocks once (appends) and small pieces, not a block per update.
    assert.ok(parsedChars < 2 * live.html.length, `${name}: parsed ${parsedChars} of ${live.html.length}`);
    assert.equal(fallbacks, 0, `${name}: ${fallbacks} fallbacks in ${updates} updates`);
  }
});

test("a batch is one change of the string: extend, tail, append and commit compose", () => {
  const old = "<p>a</p><pre><code>x\n</code></pre>";
  const ops = [
    { op: "extend", drop: 0, keep: 13, html: "y\n" },
    { op: "commit", size: 0 },
    { op: "extend", drop: 0, keep: 13, html: "z\n" },
  ];
  const change = netChange(old, 8, ops);
  assert.equal(change.full, "<p>a</p><pre><code>x\ny\nz\n</code></pre>");
  assert.deepEqual([change.lo, change.hiOld, change.hiNew], [21, 21, 25]);
  const tail = netChange("<p>abc</p>", 0, [{ op: "tail", html: "<p>abd</p>" }]);
  assert.deepEqual([tail.lo, tail.hiOld, tail.hiNew], [5, 6, 6]);
});

test("a code block grows by edits of its last line; finished lines stay the same nodes", () => {
  const root = document.createElement("div");
  const live = new LiveHtml(root);
  live.set('<pre><code><span class="k">def</span> f</code></pre>');
  const first = root.querySelector("span");
  live.apply([{ op: "extend", keep: 13, html: '():\n  <span class="k">return</span> 1\n' }], 0);
  live.apply([{ op: "extend", keep: 13, html: "x" }], 0);
  assert.equal(root.querySelector("span"), first);
  assert.equal(root.querySelector("code").textContent, "def f():\n  return 1\nx");
  assert.equal(live.stats.wholes, 0);
  assert.equal(live.stats.textEdits, 1); // "x" joined the last line's text
});

test("character references decode as the parser does; unknown ones say so", () => {
  assert.equal(decodeText("a &amp; b &lt;c&gt; &quot;&nbsp;&#128640;&#x41;"), 'a & b <c> "\u00a0🚀A');
  assert.equal(decodeText("x\r\ny"), "x\ny");
  assert.equal(decodeText("&copy;"), null);
  assert.equal(decodeText("&amp"), null);
});

test("the tag scanner follows quoted attribute values holding > and /", () => {
  const html = '<a href="x>y" title=\'a/b>\' data-x=1>t</a>';
  assert.deepEqual(scanTag(html, 0), { end: html.indexOf("t</a>"), name: "a", closing: false, selfClosing: false });
  assert.equal(scanTag(html, html.indexOf("</a>")).closing, true);
  assert.equal(scanTag("<br/>", 0).selfClosing, true);
  assert.equal(scanTag("<", 0), null);
});

test("a change that holds the old closing tags whole is two insertions around them", () => {
  const old = "<table><tbody><tr><td>1</td></tr></tbody></table>";
  const ops = [
    { op: "append", html: "<table><tbody><tr><td>12</td></tr></tbody></table>" },
    { op: "extend", drop: old.length - 1, keep: 1, html: "<p>T</p" },
  ];
  const change = netChange(old, 0, ops);
  const steps = splitChange(old, change);
  assert.equal(steps.length, 2);
  assert.equal(steps[0].full.slice(steps[0].lo, steps[0].hiNew), "><p>T</p");
  assert.equal(steps[1].full.slice(steps[1].lo, steps[1].hiNew), "2");
  const root = document.createElement("div");
  const live = new LiveHtml(root);
  live.set(old);
  const table = root.firstChild;
  const parsed = live.stats.parsedChars;
  live.apply(ops, 0);
  assert.equal(root.firstChild, table, "the table is the same node");
  assert.equal(live.stats.parsedChars - parsed, "<p>T</p>".length, "only the paragraph parsed");
  assert.equal(live.stats.textEdits, 1, "the 2 joined the cell's text");
  assert.equal(root.innerHTML, "<table><tbody><tr><td>12</td></tr></tbody></table><p>T</p>");
});

test("a large open block is shown less often, never more than 100 ms behind", () => {
  assert.equal(showInterval(500), 0);
  assert.equal(showInterval(2000), 0);
  assert.equal(showInterval(4000), 20);
  assert.equal(showInterval(40_000), 100);
});
