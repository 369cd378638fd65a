// Pure helpers of the front end, run with `node --test tests/js/`.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import widget, {
  applyOps,
  cursorSpot,
  decodePatch,
  formatElapsed,
  formatStats,
  ownsKey,
  sliderBounds,
  nearBottom,
  shouldSend,
  splitSnapshot,
  toolLabel,
  turnSignature,
} from "../../src/streamchat/static/widget.js";

const empty = { frozen: "", tail: "" };

test("append freezes HTML and leaves the tail alone", () => {
  const result = applyOps({ frozen: "<p>a</p>", tail: "<p>b" }, [{ op: "append", html: "<p>c</p>" }]);
  assert.deepEqual(result.state, { frozen: "<p>a</p><p>c</p>", tail: "<p>b" });
  assert.equal(result.appended, "<p>c</p>");
  assert.equal(result.reset, false);
  assert.equal(result.tailChanged, false);
});

test("tail replaces the live part; the last tail of a batch wins", () => {
  const ops = [
    { op: "tail", html: "<p>H" },
    { op: "append", html: "<h2>T</h2>" },
    { op: "tail", html: "<p>He</p>" },
  ];
  const result = applyOps(empty, ops);
  assert.deepEqual(result.state, { frozen: "<h2>T</h2>", tail: "<p>He</p>" });
  assert.equal(result.tailChanged, true);
  assert.equal(result.appended, "<h2>T</h2>");
});

test("an unchanged tail is not reported as a change", () => {
  const result = applyOps({ frozen: "", tail: "<p>x</p>" }, [{ op: "tail", html: "<p>x</p>" }]);
  assert.equal(result.tailChanged, false);
});

test("reset replaces everything and forgets earlier appends of the batch", () => {
  const ops = [
    { op: "append", html: "<p>old</p>" },
    { op: "reset", html: "<p>new</p>" },
    { op: "append", html: "<p>more</p>" },
  ];
  const result = applyOps({ frozen: "<p>x</p>", tail: "<p>y" }, ops);
  assert.deepEqual(result.state, { frozen: "<p>new</p><p>more</p>", tail: "" });
  assert.equal(result.reset, true);
  assert.equal(result.appended, "<p>more</p>");
});

test("extend replaces the code units before the kept closing tags", () => {
  const result = applyOps({ frozen: "<p>a</p>", tail: "<p>Hel</p>" }, [
    { op: "extend", drop: 0, keep: 4, html: "lo" },
  ]);
  assert.deepEqual(result.state, { frozen: "<p>a</p>", tail: "<p>Hello</p>" });
  assert.equal(result.tailChanged, true);
  assert.equal(result.appended, "");
  const cut = applyOps({ frozen: "", tail: "<p>Help</p>" }, [{ op: "extend", drop: 1, keep: 4, html: "lo" }]);
  assert.equal(cut.state.tail, "<p>Hello</p>");
});

test("extend counts UTF-16 code units, so an emoji is two", () => {
  const result = applyOps({ frozen: "", tail: "<p>🚀</p>" }, [{ op: "extend", drop: 2, keep: 4, html: "ok" }]);
  assert.equal(result.state.tail, "<p>ok</p>");
});

test("extends apply in order after a tail; keep defaults to 0; no-op is no change", () => {
  const ops = [
    { op: "tail", html: "<pre>a\n</pre>" },
    { op: "extend", drop: 0, keep: 6, html: "b\n" },
    { op: "extend", drop: 6, html: "c\n</pre>" },
  ];
  assert.equal(applyOps(empty, ops).state.tail, "<pre>a\nb\nc\n</pre>");
  const same = applyOps({ frozen: "", tail: "<p>x</p>" }, [{ op: "extend", drop: 0, keep: 4, html: "" }]);
  assert.equal(same.tailChanged, false);
});

test("a patch message decodes from its compact wire form", () => {
  assert.deepEqual(decodePatch([3, "b", "c", 8, "a", "<p>x</p>", "e", 1, 4, "y"]), {
    type: "patch",
    turn: 3,
    part: "body",
    ops: [
      { op: "commit", size: 8 },
      { op: "append", html: "<p>x</p>" },
      { op: "extend", drop: 1, keep: 4, html: "y" },
    ],
  });
  const reasoning = decodePatch([1, "r", "t", "<p>a", "r", "<p>b</p>"]);
  assert.equal(reasoning.part, "reasoning");
  assert.deepEqual(reasoning.ops.map((op) => op.op), ["tail", "reset"]);
  assert.throws(() => decodePatch([1, "b", "z", ""]), /unknown patch op/);
});

test("an unknown op is an error, not silently ignored", () => {
  assert.throws(() => applyOps(empty, [{ op: "replace", html: "" }]), /unknown patch op/);
});

test("Enter sends; Shift+Enter, Alt+Enter and IME composition do not", () => {
  assert.equal(shouldSend({ key: "Enter" }), true);
  assert.equal(shouldSend({ key: "Enter", ctrlKey: true }), true);
  assert.equal(shouldSend({ key: "Enter", shiftKey: true }), false);
  assert.equal(shouldSend({ key: "Enter", altKey: true }), false);
  assert.equal(shouldSend({ key: "Enter", isComposing: true }), false);
  assert.equal(shouldSend({ key: "Enter", keyCode: 229 }), false);
  assert.equal(shouldSend({ key: "a" }), false);
});

test("stats read as one short line and skip what the provider did not report", () => {
  assert.equal(formatStats(null), "");
  assert.equal(formatStats({}), "");
  assert.equal(
    formatStats({ ttft: 0.4234, chars_per_second: 118.4, input_tokens: 12, output_tokens: 345 }),
    "first token 0.42 s · received 118 chars/s · 12 in / 345 out tokens",
  );
  assert.equal(
    formatStats({ chars_per_second: 1480, typed_per_second: 119.6 }),
    "received 1480 chars/s · typed 120 chars/s",
    "the network's pace and the typewriter's, told apart",
  );
  assert.equal(formatStats({ ttft: 1, output_tokens: 3 }), "first token 1.00 s · ? in / 3 out tokens");
  assert.equal(formatStats({ reasoning_tokens: 7 }), "7 reasoning tokens");
});

test("elapsed time has one decimal and never goes negative", () => {
  assert.equal(formatElapsed(0), "0.0 s");
  assert.equal(formatElapsed(2549), "2.5 s");
  assert.equal(formatElapsed(-30), "0.0 s");
});

test("following the end stops once the person scrolls up", () => {
  assert.equal(nearBottom(600, 400, 1000), true);
  assert.equal(nearBottom(580, 400, 1000), true);
  assert.equal(nearBottom(300, 400, 1000), false);
});

test("tool calls are shown as name(arguments), long arguments shortened", () => {
  assert.equal(toolLabel({ name: "get_weather", arguments: '{"city":"Paris"}' }), 'get_weather({"city":"Paris"})');
  const label = toolLabel({ name: null, arguments: "x".repeat(500) }, 10);
  assert.equal(label, `tool(${"x".repeat(9)}…)`);
});

test("a turn's signature changes with what is shown and not otherwise", () => {
  const turn = { role: "assistant", status: "streaming", html: "", stats: {} };
  assert.equal(turnSignature(turn), turnSignature({ ...turn }));
  assert.notEqual(turnSignature(turn), turnSignature({ ...turn, status: "done" }));
  assert.notEqual(turnSignature(turn), turnSignature({ ...turn, html: "<p>x</p>" }));
});

// A DOM-shaped tree without a DOM: enough for cursorSpot.
function el(name, ...children) {
  return { nodeType: 1, nodeName: name, childNodes: children };
}
function text(value) {
  return { nodeType: 3, nodeName: "#text", nodeValue: value, childNodes: [] };
}

test("the cursor goes inside the last paragraph, after its text", () => {
  const p = el("P", text("Hello "), el("EM", text("world")));
  const root = el("DIV", el("H2", text("T")), text("\n"), p, text("\n"));
  const spot = cursorSpot(root);
  assert.equal(spot.parent.nodeName, "EM");
  assert.equal(spot.ref, null);
});

test("the cursor goes into the last list item of a nested list", () => {
  const inner = el("LI", text("b"));
  const root = el("DIV", el("UL", text("\n"), el("LI", text("a"), el("UL", inner)), text("\n")));
  assert.equal(cursorSpot(root).parent, inner);
});

test("in a code block the cursor goes before the trailing newline", () => {
  const code = text("x = 1\ny = 2\n");
  const root = el("DIV", el("PRE", el("CODE", el("SPAN", text("x")), code)));
  const spot = cursorSpot(root);
  assert.equal(spot.parent.nodeName, "CODE");
  assert.equal(spot.ref, code);
  assert.equal(spot.split, "x = 1\ny = 2".length);
});

test("the cursor goes into the last table cell", () => {
  const cell = el("TD", text("✅"));
  const table = el("TABLE", el("THEAD", el("TR", el("TH", text("h")))), el("TBODY", el("TR", cell)));
  assert.equal(cursorSpot(el("DIV", table)).parent, cell);
});

test("an empty table section or list does not receive the cursor", () => {
  const root = el("DIV", el("TABLE", el("THEAD", el("TR", el("TH", text("h")))), el("TBODY")));
  assert.equal(cursorSpot(root).parent, root);
  const list = el("DIV", el("P", el("UL")));
  assert.equal(cursorSpot(list).parent.nodeName, "P");
});

test("after an image or a rule the cursor goes next to it, not inside", () => {
  const p = el("P", text("see "), el("IMG"));
  assert.equal(cursorSpot(el("DIV", p)).parent, p);
  const root = el("DIV", el("P", text("a")), el("HR"));
  assert.equal(cursorSpot(root).parent, root);
});

test("an empty answer gets the cursor at its root", () => {
  const root = el("DIV", text("  \n"));
  assert.deepEqual(cursorSpot(root), { parent: root, ref: null, split: null });
});

test("the module's default export is an anywidget with a render function", () => {
  assert.equal(typeof widget.render, "function");
});

test("a snapshot splits into frozen HTML and the live tail", () => {
  assert.deepEqual(splitSnapshot("<p>a</p><p>b", "<p>b"), { frozen: "<p>a</p>", tail: "<p>b" });
  assert.deepEqual(splitSnapshot("<p>a</p>", ""), { frozen: "<p>a</p>", tail: "" });
  assert.deepEqual(splitSnapshot("<p>a</p>"), { frozen: "<p>a</p>", tail: "" });
  // A tail that is not the end of the HTML is ignored rather than mis-split.
  assert.deepEqual(splitSnapshot("<p>a</p>", "<p>x"), { frozen: "<p>a</p>", tail: "" });
});

test("keys in the widget are its own, except the host's Ctrl/Meta shortcuts", () => {
  const key = (k, mods = {}) => ({ key: k, ctrlKey: false, metaKey: false, ...mods });
  for (const plain of ["a", "b", "d", "m", "x", "Enter", "Escape", "ArrowUp", " "]) {
    assert.ok(ownsKey(key(plain)), plain);
  }
  assert.ok(ownsKey(key("Enter", { shiftKey: true })), "Shift+Enter runs a cell elsewhere");
  assert.ok(ownsKey(key("Enter", { ctrlKey: true })));
  assert.ok(ownsKey(key("Z", { ctrlKey: true, shiftKey: true })), "redo edits the text");
  assert.ok(ownsKey(key("a", { metaKey: true })));
  assert.ok(!ownsKey(key("s", { ctrlKey: true })), "Ctrl+S still saves the notebook");
  assert.ok(!ownsKey(key("C", { ctrlKey: true, shiftKey: true })), "the command palette");
  assert.ok(ownsKey(key("ArrowLeft", { ctrlKey: true, shiftKey: true })), "select a word");
});

test("a slider's span stretches to hold a value set from Python", () => {
  assert.deepEqual(sliderBounds(120, { min: 0, max: 600 }), { min: 0, max: 600 });
  assert.deepEqual(sliderBounds(2000, { min: 0, max: 600 }), { min: 0, max: 2000 });
  assert.deepEqual(sliderBounds(1, { min: 1, max: 20 }), { min: 1, max: 20 });
});

// The patch semantics shared with the Python suite (tests/test_patch_cases.py).
const patchCases = JSON.parse(
  readFileSync(new URL("../patch_cases.json", import.meta.url), "utf-8"),
).cases;

for (const { name, start, ops, expect } of patchCases) {
  test(`patch case: ${name}`, () => {
    assert.deepEqual(applyOps(start, ops).state, expect);
  });
}
