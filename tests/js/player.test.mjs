// The frame player (widget.js `FramePlayer`) and the frames message's wire form
// (`decodeFrames`): a typed answer's frames come a few per message, each with its delay
// after the message, and play on animation frames, in order, never before their time.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FramePlayer,
  applyOps,
  decodeFrames,
  decodeMessage,
} from "../../src/streamchat/static/widget.js";

const extend = (html) => ({ op: "extend", drop: 0, keep: 4, html });
const frame = (delay, html) => ({ delay, ops: [extend(html)] });

test("a frames message decodes to frames, each a delay and its ops", () => {
  const wire = [
    7, "f", 4, 0, ["t", "<p>H</p>"], 28, ["e", 0, 4, "el", "c", 3], "lo", [2, 6, "x"], [5, "y"],
    "z",
  ];
  assert.deepEqual(decodeFrames(wire), {
    type: "frames",
    turn: 7,
    part: "body",
    stop: false,
    retime: null,
    frames: [
      { delay: 0, ops: [{ op: "tail", html: "<p>H</p>" }] },
      { delay: 28, ops: [extend("el"), { op: "commit", size: 3 }] },
      { delay: 28 + 1000 / 36, ops: [extend("lo")] },
      { delay: 28 + 1000 / 36 * 2, ops: [{ op: "extend", drop: 2, keep: 6, html: "x" }] },
      { delay: 28 + 1000 / 36 * 3, ops: [{ op: "extend", drop: 0, keep: 5, html: "y" }] },
      { delay: 28 + 1000 / 36 * 4, ops: [{ op: "extend", drop: 0, keep: 5, html: "z" }] },
    ],
  });
  assert.deepEqual(decodeFrames([7, "s"]), {
    type: "frames", turn: 7, part: "body", frames: [], stop: true, retime: null,
  });
  assert.throws(() => decodeFrames([7, "f", 4, "x", 0]), /without its delay/);
  assert.throws(() => decodeFrames([7, "f", 4, 0, ["z", "x"]]), /unknown patch op/);
});

test("decodeMessage tells frames, stops and patches apart, and passes objects on", () => {
  assert.equal(decodeMessage([1, "f", 0, 0, ["a", "x"]]).type, "frames");
  assert.equal(decodeMessage([1, "s"]).stop, true);
  assert.deepEqual(decodeMessage([1, "r", "r", "<p>x</p>"]), {
    type: "patch", turn: 1, part: "reasoning", ops: [{ op: "reset", html: "<p>x</p>" }],
  });
  const ended = { type: "ended", turn: 1 };
  assert.equal(decodeMessage(ended), ended);
});

test("each frame plays at the first animation frame at or after its time", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(28, "b"), frame(56, "c")], 1000);
  assert.equal(player.size, 3);
  assert.equal(player.next, 1000);
  assert.deepEqual(player.due(999).map((f) => f.ops[0].html), []);
  assert.deepEqual(player.due(1000.5).map((f) => f.ops[0].html), ["a"]);
  assert.deepEqual(player.due(1016.7).map((f) => f.ops[0].html), []); // too soon for "b"
  assert.deepEqual(player.due(1033.3).map((f) => f.ops[0].html), ["b"]);
  assert.deepEqual(player.due(1050).map((f) => f.ops[0].html), []);
  assert.deepEqual(player.due(1066.7).map((f) => f.ops[0].html), ["c"]);
  assert.equal(player.next, null);
  assert.equal(player.size, 0);
});

test("at 60 Hz, frames 28 ms apart land on distinct animation frames: 36 updates a second", () => {
  const player = new FramePlayer();
  const perMessage = 4; // the kernel's BATCH: 4 frames, 1/36 s apart, 9 messages a second
  for (let message = 0; message < 9; message += 1) {
    const sent = message * perMessage * (1000 / 36);
    const frames = [];
    for (let k = 0; k < perMessage; k += 1) frames.push(frame(Math.round(k * (1000 / 36)), `${message}.${k}`));
    player.push("body", frames, sent + 2); // arrives 2 ms after it was sent
  }
  let updates = 0;
  let played = 0;
  for (let tick = 0; tick * (1000 / 60) < 1000 + 100; tick += 1) {
    const due = player.due(tick * (1000 / 60));
    if (due.length) updates += 1;
    played += due.length;
    assert.ok(due.length <= 1, "two frames collapsed into one animation frame");
  }
  assert.equal(played, 36);
  assert.equal(updates, 36);
});

test("a late message never plays a frame before the one before it", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(100, "b")], 0);
  // The next message left the kernel 28 ms after the first but arrived 10 ms after it
  // (clock skew between messages is not the kernel's clock): its first frame has delay 0.
  player.push("body", [frame(0, "c"), frame(28, "d")], 10);
  const order = [];
  for (let now = 0; now <= 200; now += 16) order.push(...player.due(now).map((f) => f.ops[0].html));
  assert.deepEqual(order, ["a", "b", "c", "d"]);
});

test("frames whose time passed (a hidden tab, a busy page) all play at the next frame, in order", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "<p>a"), frame(28, "b"), frame(56, "c")], 0);
  const due = player.due(500);
  assert.deepEqual(due.map((f) => f.ops[0].html), ["<p>a", "b", "c"]);
  // applied in order they make the same HTML as one patch of all of them
  let state = { frozen: "", tail: "</p>" };
  for (const { ops } of due) state = applyOps(state, ops).state;
  assert.equal(state.frozen + state.tail, "<p>abc</p>");
});

test("a stop drops every frame held: nothing plays after it", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(28, "b"), frame(56, "c"), frame(83, "d")], 0);
  assert.equal(player.due(30).length, 2);
  assert.equal(player.drop(), 2);
  assert.equal(player.next, null);
  for (let now = 30; now < 1000; now += 16) assert.deepEqual(player.due(now), []);
});

test("flush hands over every frame held, in order, for a patch or the answer's end to follow", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(28, "b")], 0);
  player.push("reasoning", [frame(0, "r")], 5);
  assert.deepEqual(
    player.flush().map((f) => [f.part, f.ops[0].html]),
    [["body", "a"], ["body", "b"], ["reasoning", "r"]],
  );
  assert.equal(player.size, 0);
});

test("a patch of one part flushes only that part's frames; the other's play on time", () => {
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(28, "b")], 0);
  player.push("reasoning", [frame(0, "r")], 5);
  assert.deepEqual(player.flush("reasoning").map((f) => f.ops[0].html), ["r"]);
  assert.deepEqual(player.due(0).map((f) => f.ops[0].html), ["a"]);
  assert.deepEqual(player.due(30).map((f) => f.ops[0].html), ["b"]);
});

test("a retime plays the frames held at the new delays, matched from the end", () => {
  assert.deepEqual(decodeFrames([7, "t", 10, 20, 30]).retime, [10, 20, 30]);
  const player = new FramePlayer();
  player.push("body", [frame(0, "a"), frame(100, "b"), frame(200, "c"), frame(300, "d")], 0);
  assert.deepEqual(player.due(50).map((f) => f.ops[0].html), ["a"]);
  // The kernel retimed b, c, d and one more it listed before "a" was played here.
  player.retime([0, 5, 10, 15], 60);
  assert.deepEqual(player.due(66).map((f) => f.ops[0].html), ["b"]); // 65
  assert.deepEqual(player.due(70).map((f) => f.ops[0].html), ["c"]);
  assert.deepEqual(player.due(75).map((f) => f.ops[0].html), ["d"]);
  // Frames after a retime never play before the retimed ones.
  player.push("body", [frame(0, "e")], 70);
  assert.equal(player.next, 75);
});
