// A retime to a smaller step or a slower speed (issue 21): the frames a view holds were
// typed at the old pace, so the kernel lists a frame's new delays as an array and the view
// cuts the frame's HTML into that many pieces (widget.js `splitFrame`, `splitHtml`). The
// pieces must join to the frame, show about as much text each, and leave the HTML after
// each piece as well-formed as after the whole frame.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FramePlayer,
  applyOps,
  decodeFrames,
  scanTag,
  splitFrame,
  splitHtml,
} from "../../src/streamchat/static/widget.js";

/** Characters `html` shows: a grapheme cluster or a reference is one, a tag none. */
function shown(html) {
  const text = html.replace(/<[^>]*>/g, "").replace(/&#?[a-zA-Z0-9]+;/g, "&");
  return Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text))
    .length;
}

/** The elements `html` leaves open, as a stack of names (closings of outer ones pop
 * nothing here: they are the context's). */
function openAfter(html) {
  const stack = [];
  let closedOuter = 0;
  for (let at = 0; at < html.length; at += 1) {
    if (html[at] !== "<") continue;
    const tag = scanTag(html, at);
    if (!tag) continue;
    if (tag.closing) {
      if (stack.length) stack.pop();
      else closedOuter += 1;
    } else if (!tag.selfClosing && !["br", "hr", "img", "input"].includes(tag.name)) {
      stack.push(tag.name);
    }
    at = tag.end - 1;
  }
  return { stack, closedOuter };
}

const CASES = {
  prose: "quick brown fox jumps over the lazy dog",
  code: '<span class="k">await</span> client<span class="o">.</span>get(url, timeout=<span class="mi">1</span>)',
  references: "a &amp; b &lt; c &#x1F600; d &quot;e&quot;",
  emoji: "flags 🇫🇷🇩🇪 family 👨‍👩‍👧 e\u0301 done",
  closing: 'r</span>\n    <span class="k">return</span> response',
  nested: "one <strong>two <em>three four</em> five</strong> six <code>x &lt; y</code>",
  breaks: "line one<br>line two<br>line three",
};

for (const [name, html] of Object.entries(CASES)) {
  test(`split ${name}: the pieces join to the frame, each cut leaves its elements as the whole does`, () => {
    for (const count of [1, 2, 3, 5, 8, 40]) {
      const pieces = splitHtml(html, count);
      assert.equal(pieces.length, count);
      assert.equal(pieces.join(""), html);
      const whole = openAfter(html);
      let sofar = "";
      for (const piece of pieces) {
        sofar += piece;
        assert.deepEqual(openAfter(sofar), whole, `cut after ${JSON.stringify(sofar)}`);
        // Never inside a tag or a reference: the next piece starts outside both.
        assert.ok(!/<[^>]*$/.test(sofar), sofar);
        assert.ok(!/&#?[a-zA-Z0-9]*$/.test(sofar), sofar);
      }
      // Grapheme clusters stay whole: the characters shown add up.
      assert.equal(pieces.reduce((sum, piece) => sum + shown(piece), 0), shown(html));
    }
  });
}

test("plain text splits into pieces of equal length", () => {
  assert.deepEqual(splitHtml("abcdefghij", 5), ["ab", "cd", "ef", "gh", "ij"]);
  assert.deepEqual(splitHtml("abc", 1), ["abc"]);
  // More pieces than characters: some are empty, and the text comes on time.
  const pieces = splitHtml("ab", 4);
  assert.equal(pieces.join(""), "ab");
  assert.equal(pieces[3].length > 0, true, "the last piece is never empty");
});

test("a highlighted token shows whole; the text between tokens splits", () => {
  const pieces = splitHtml(CASES.code, 6).filter(Boolean);
  assert.ok(pieces.length >= 5, pieces);
  for (const piece of pieces) assert.ok(shown(piece) <= 7, piece);
  assert.ok(pieces.some((piece) => piece.startsWith('<span class="k">await</span>')));
});

test("the first piece with text drops what the frame dropped; a piece with none is no op", () => {
  const op = { op: "extend", drop: 7, keep: 13, html: CASES.closing };
  const frames = splitFrame([op], 4);
  assert.equal(frames.length, 4);
  const withText = frames.filter((ops) => ops.length);
  assert.equal(withText[0][0].drop, 7);
  for (const ops of withText.slice(1)) assert.equal(ops[0].drop, 0);
  // Played one after the other they give what the whole frame gives.
  const before = { frozen: "", tail: '<pre><code><span class="n">erro</span></code></pre>' };
  let state = before;
  for (const ops of frames) state = applyOps(state, ops).state;
  assert.deepEqual(state, applyOps(before, [op]).state);
});

test("a frame that is not one extend plays whole in the last piece's place", () => {
  const ops = [{ op: "commit", size: 3 }, { op: "extend", drop: 0, keep: 4, html: "x" }];
  assert.deepEqual(splitFrame(ops, 3), [[], [], ops]);
  assert.deepEqual(splitFrame(ops, 1), [ops]);
});

test("a retime that lists a frame's delays splits it into as many frames", () => {
  assert.deepEqual(decodeFrames([7, "t", 10, [20, 30, 40], 50]).retime, [10, [20, 30, 40], 50]);
  const player = new FramePlayer();
  const extend = (html) => ({ op: "extend", drop: 0, keep: 4, html });
  player.push("body", [
    { delay: 0, ops: [extend("ab")] },
    { delay: 200, ops: [extend("cdefgh")] },
    { delay: 400, ops: [extend("ijklmn")] },
  ], 0);
  assert.deepEqual(player.due(10).map((f) => f.ops[0].html), ["ab"]);
  // Step 2 at a slower speed: both held frames split in three.
  player.retime([[100, 200, 300], [400, 500, 600]], 20);
  assert.equal(player.size, 6);
  const played = [];
  for (const now of [119, 120, 220, 320, 420, 520, 620]) {
    played.push(player.due(now).map((f) => f.ops[0].html).join("|"));
  }
  assert.deepEqual(played, ["", "cd", "ef", "gh", "ij", "kl", "mn"]);
  // A later retime sees the pieces as frames of their own.
  player.push("body", [{ delay: 0, ops: [extend("op")] }], 700);
  player.retime([5], 700);
  assert.equal(player.next, 705);
});
