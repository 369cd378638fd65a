// The race's pure helpers and its lane model (`node --test tests/js/`).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  LaneModel,
  raceColumns,
  raceFigures,
  turnOf,
} from "../../src/streamchat/static/widget.js";

test("lanes sit 2-4 side by side, fewer when narrow, four never three over one", () => {
  assert.equal(raceColumns(1200, 4), 4);
  assert.equal(raceColumns(810, 4), 4);
  assert.equal(raceColumns(1200, 2), 2);
  assert.equal(raceColumns(1200, 6), 4, "wrapping beyond four");
  assert.equal(raceColumns(700, 4), 2, "three columns would leave one lane alone");
  assert.equal(raceColumns(450, 4), 2);
  assert.equal(raceColumns(650, 3), 3);
  assert.equal(raceColumns(199, 4), 1);
  assert.equal(raceColumns(0, 2), 1);
});

test("a message's turn: a patch's first element, or its turn field", () => {
  assert.equal(turnOf([7, "b", "a", "<p>x</p>"]), 7);
  assert.equal(turnOf({ type: "ended", turn: 9 }), 9);
  assert.equal(turnOf({ type: "other" }), undefined);
  assert.equal(turnOf(null), undefined);
});

test("a lane's figures: first token, speeds, tokens, duration, finish", () => {
  const line = raceFigures({
    ttft: 0.1234,
    chars_per_second: 4000,
    chars: 4000,
    output_tokens: 1000,
    typed_per_second: 240.4,
    duration: 1.2,
    finish_reason: "stop",
  });
  assert.equal(
    line,
    "first token 0.12 s · 4000 chars/s · 1000 tokens/s · 1000 tokens · typed 240 chars/s · 1.20 s · stop",
  );
  assert.equal(raceFigures({}), "");
  assert.equal(raceFigures(undefined), "");
  assert.equal(raceFigures({ ttft: 1, output_tokens: 3 }), "first token 1.00 s · 3 tokens");
});

/** A race model as anywidget gives one: get/set/on/off/send. */
function raceModel(state) {
  const handlers = new Map();
  const sent = [];
  return {
    sent,
    get: (name) => state[name],
    set: (name, value) => {
      state[name] = value;
    },
    save_changes: () => {},
    send: (message) => sent.push(message),
    on: (name, handler) => {
      if (!handlers.has(name)) handlers.set(name, new Set());
      handlers.get(name).add(handler);
    },
    off: (name, handler) => handlers.get(name)?.delete(handler),
    fire: (name) => {
      for (const handler of handlers.get(name) ?? []) handler();
    },
    count: (name) => handlers.get(name)?.size ?? 0,
  };
}

test("a lane model is a chat's model: its turns and status, the race's pace", () => {
  const race = raceModel({
    speed: 90,
    step: 2,
    disclaimer: "d",
    lanes: [
      { label: "a", status: "done", turns: [{ id: 1, role: "user" }] },
      { label: "b", status: "streaming", turns: [{ id: 2, role: "user" }, { id: 3, role: "assistant" }] },
    ],
  });
  const lane = new LaneModel(race, 1);
  assert.equal(lane.get("status"), "streaming");
  assert.deepEqual(lane.get("turns").map((t) => t.id), [2, 3]);
  assert.equal(lane.get("speed"), 90);
  assert.deepEqual(lane.get("prompts"), []);
  lane.send({ type: "stop", turn: 3 });
  assert.deepEqual(race.sent, [{ type: "stop", turn: 3 }]);
});

test("a lane hears the lanes' changes as its own, and only its turns' messages", () => {
  const race = raceModel({
    lanes: [
      { turns: [{ id: 1 }] },
      { turns: [{ id: 2 }] },
    ],
  });
  const first = new LaneModel(race, 0);
  let changes = 0;
  const onTurns = () => changes++;
  first.on("change:turns", onTurns);
  race.fire("change:lanes");
  assert.equal(changes, 1);
  first.off("change:turns", onTurns);
  assert.equal(race.count("change:lanes"), 0, "off undoes on");
  const heard = [];
  first.on("msg:custom", (message) => heard.push(message));
  first.deliver([1, "b", "a", "x"]);
  first.deliver([2, "b", "a", "y"]);
  first.deliver({ type: "ended", turn: 2 });
  first.deliver({ type: "ended", turn: 1 });
  assert.deepEqual(heard, [[1, "b", "a", "x"], { type: "ended", turn: 1 }]);
});
