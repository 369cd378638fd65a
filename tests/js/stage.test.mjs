// Issue 24: the stage's pure helpers (deck moves, type scale, keys).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  STAGE_SCALE,
  deckLabel,
  deckMove,
  deckStart,
  stageCommand,
  stageScale,
} from "../../src/streamchat/static/widget.js";

test("the scale moves a tenth a press and stays in bounds", () => {
  assert.equal(stageScale(Number.NaN), STAGE_SCALE.initial);
  assert.equal(stageScale(1, 1), 1.1);
  assert.equal(stageScale(1, -3), 0.7);
  assert.equal(stageScale(1.9, 5), STAGE_SCALE.max);
  assert.equal(stageScale(0.7, -5), STAGE_SCALE.min);
  let scale = 1;
  for (let i = 0; i < 7; i += 1) scale = stageScale(scale, 1);
  assert.equal(scale, 1.7); // no float drift after many presses
});

test("the deck goes on after the prompts already asked, in order", () => {
  const deck = ["One?", "Two?", "Three?"];
  assert.equal(deckStart([], deck), 0);
  assert.equal(deckStart(["One?", "something else", " Two? "], deck), 2);
  assert.equal(deckStart(["Two?"], deck), 0);
  assert.equal(deckStart(["One?", "Two?", "Three?", "One?"], deck), 3);
});

test("forward shows the next answer again, then asks the next prompt; back goes back", () => {
  const at = { shown: 2, answers: 3, next: 1, total: 3, live: false };
  assert.deepEqual(deckMove(1, at), { action: "ask", index: 1 });
  assert.deepEqual(deckMove(-1, at), { action: "show", index: 1 });
  assert.deepEqual(deckMove(1, { ...at, shown: 0 }), { action: "show", index: 1 });
  assert.deepEqual(deckMove(-1, { ...at, shown: 0 }), { action: "none" });
  assert.deepEqual(deckMove(1, { ...at, next: 3 }), { action: "none" });
  assert.deepEqual(deckMove(1, { ...at, live: true }), { action: "none" });
  assert.deepEqual(deckMove(1, { shown: -1, answers: 0, next: 0, total: 1, live: false }), {
    action: "ask",
    index: 0,
  });
  assert.equal(deckLabel(2, 5), "2 / 5");
  assert.equal(deckLabel(0, 0), "");
});

test("clicker keys and the stage's letters; chords stay the browser's", () => {
  const key = (k, extra = {}) => stageCommand({ key: k, ...extra });
  for (const k of ["ArrowRight", "PageDown", " "]) assert.equal(key(k), "next");
  for (const k of ["ArrowLeft", "PageUp"]) assert.equal(key(k), "back");
  assert.equal(key("Escape"), "escape");
  assert.equal(key("b"), "blank");
  assert.equal(key("I"), "reveal");
  assert.equal(key("+"), "bigger");
  assert.equal(key("-"), "smaller");
  assert.equal(key("x"), null);
  assert.equal(key("ArrowRight", { altKey: true }), null); // the browser's Back/Forward
  assert.equal(key("b", { ctrlKey: true }), null);
});
