// streamchat front end (anywidget ESM).
//
// The kernel sends the answer as small HTML patches (`append` freezes finished
// blocks, `commit` freezes the start of the live part as it is shown, `tail`
// replaces the unfinished last block, `extend` replaces `drop` characters just
// before its last `keep` ones with the new HTML, so the closing tags are not
// re-sent, `reset` replaces everything),
// never the whole answer per update; this view applies them to two containers, a
// frozen one that only grows and a tail that is rewritten. Conversation structure
// (turns, statuses) comes from the synced `turns` trait, which is re-sent only when a
// turn starts and leaves out the answers' HTML: finished answers' HTML lives in the
// `finished` trait (by turn id), which the kernel fills in place and never re-sends (the
// views built it from the patches; the `ended` message lets them check it and add it
// to their model's `finished`, in place too, so it is saved with the widget state and
// never uploaded), and `ended` carries the turn's new status and stats, which each view
// writes into its model's `turns` in place: a turn end never re-sends the conversation.
// A view displayed again or after a reload rebuilds from these traits and asks the
// kernel (`hello`) for a snapshot of an answer still being typed.
//
// The protocol (messages, patch ops, status words, turns, stats, tool calls) is declared
// in streamchat/_messages.py; the block below is generated from it by
// `python tests/js/make_protocol.py` (`make protocol`), and tests/test_protocol.py fails
// while the two differ.
// --- protocol: generated from streamchat/_messages.py; do not edit by hand ---
/**
 * An answer turn's status: typed until it ends, then how it ended.
 * @typedef {"streaming" | "done" | "error" | "stopped"} TurnStatus
 */
export const TURN_STATUS = Object.freeze({
  STREAMING: "streaming",
  DONE: "done",
  ERROR: "error",
  STOPPED: "stopped",
});
/**
 * The chat's `status` trait: "idle" before the first answer, "waiting" from a prompt to the
 * answer's first token, then the live answer's status (`TurnStatus`).
 * @typedef {"idle" | "waiting" | "streaming" | "done" | "error" | "stopped"} ChatStatus
 */
export const CHAT_STATUS = Object.freeze({
  IDLE: "idle",
  WAITING: "waiting",
  STREAMING: "streaming",
  DONE: "done",
  ERROR: "error",
  STOPPED: "stopped",
});
/**
 * Who a turn is from.
 * @typedef {"user" | "assistant"} Role
 */
export const ROLE = Object.freeze({ USER: "user", ASSISTANT: "assistant" });
/**
 * The two HTML areas of an answer, each patched on its own.
 * @typedef {"body" | "reasoning"} Part
 */
export const PART = Object.freeze({ BODY: "body", REASONING: "reasoning" });
/**
 * A race's pace: "true" shows each lane's text as it arrives (compare latency), "equal" types every
 * lane at the Speed slider's pace (compare content).
 * @typedef {"true" | "equal"} RacePace
 */
export const RACE_PACE = Object.freeze({ TRUE: "true", EQUAL: "equal" });
/**
 * The chat statuses while an answer is live: Stop works, Retry and `finished` wait.
 */
export const LIVE_STATUSES = Object.freeze(["waiting", "streaming"]);
/**
 * The patch ops by name.
 */
export const OP = Object.freeze({
  APPEND: "append",
  TAIL: "tail",
  EXTEND: "extend",
  COMMIT: "commit",
  RESET: "reset",
});
/**
 * Each op's code on the wire: its name and arguments.
 */
export const OP_CODES = Object.freeze({
  a: ["append", ["html"]],
  t: ["tail", ["html"]],
  e: ["extend", ["drop", "keep", "html"]],
  c: ["commit", ["size"]],
  r: ["reset", ["html"]],
});
/**
 * Each part's code on the wire.
 */
export const PART_CODES = Object.freeze({ b: "body", r: "reasoning" });
/**
 * A frames message's three forms by their code in its second place, where a patch has its part
 * code: the next frames, a stop, a retime (`FramesMessage`).
 */
export const FRAME_KINDS = Object.freeze({ frames: "f", stop: "s", retime: "t" });
/**
 * Milliseconds between two frames of a frames message that gives no delay for the second (the
 * kernel's frames are `_frames.PERIOD` apart while text types).
 */
export const FRAME_MS = 27.77777777777778;
/**
 * The kinds of message the kernel sends.
 */
export const KERNEL_MESSAGE = Object.freeze({
  PATCH: "patch",
  FRAMES: "frames",
  TOOLS: "tools",
  ENDED: "ended",
  FINISHED: "finished",
  SNAPSHOT: "snapshot",
  STAGE: "stage",
  LANES: "lanes",
});
/**
 * The kinds of message a view sends.
 */
export const BROWSER_MESSAGE = Object.freeze({
  SEND: "send",
  STOP: "stop",
  RETRY: "retry",
  HELLO: "hello",
  RESEND: "resend",
  INSTANT: "instant",
});
/**
 * A patch op (`render.Patch`); what each does: tests/patch_cases.json.
 * @typedef {
 *   {op: "append", html: string} |
 *   {op: "tail", html: string} |
 *   {op: "extend", drop: number, keep: number, html: string} |
 *   {op: "commit", size: number} |
 *   {op: "reset", html: string}
 * } PatchOp
 * @typedef {Array} PatchWire a PatchMessage as sent: [turn, part code, op...], each op
 *   its code and its arguments (`OP_CODES`, `PART_CODES`)
 */
/**
 * A tool call so far: `arguments` is the JSON text as it arrived (maybe unfinished), `after` the
 * characters of answer text received before the call began (where it shows: above the text when 0).
 * @typedef {object} ToolCall
 * @property {string} name
 * @property {string} arguments
 * @property {number} after
 */
/**
 * An answer's figures, each present only once measured (or reported): `chars` of answer text
 * received, `ttft` (s to the first token), the network's pace `chars_per_second` and the
 * typewriter's `typed_per_second`, `duration` (s), `reasoning_seconds` (how long the model
 * thought), the provider's token counts, and its `finish_reason`.
 * @typedef {object} Stats
 * @property {number} [chars]
 * @property {number} [ttft]
 * @property {number} [chars_per_second]
 * @property {number} [typed_per_second]
 * @property {number} [duration]
 * @property {number} [reasoning_seconds]
 * @property {number} [input_tokens]
 * @property {number} [output_tokens]
 * @property {number} [reasoning_tokens]
 * @property {string} [finish_reason]
 */
/**
 * What an answer turn's end changes: its status, the error (for "error") or note (for "stopped",
 * when not stopped by Stop) it shows, its figures and tool calls. The `ended` message carries
 * these; the views write them into the turn in place.
 * @typedef {object} TurnEnd
 * @property {TurnStatus} status
 * @property {string | null} error
 * @property {string | null} note
 * @property {Stats} stats
 * @property {ToolCall[]} tool_calls
 */
/**
 * A question, as the person typed it (shown as text, never as HTML).
 * @typedef {object} UserTurn
 * @property {number} id
 * @property {"user"} role
 * @property {string} text
 */
/**
 * An answer turn as the `turns` trait syncs it: without its HTML, which lives in `finished`
 * (re-sending it with every new turn would grow with the conversation).
 * @typedef {object} SyncedAnswerTurn
 * @property {TurnStatus} status
 * @property {string | null} error
 * @property {string | null} note
 * @property {Stats} stats
 * @property {ToolCall[]} tool_calls
 * @property {number} id
 * @property {"assistant"} role
 */
/**
 * A finished answer's HTML (body and reasoning) and its Markdown `source` (what its Copy button
 * copies): the `finished` trait's entry under the turn's id (as a string, a JSON key).
 * @typedef {object} FinishedAnswer
 * @property {string} html
 * @property {string} reasoning_html
 * @property {string} source
 */
/**
 * An answer turn as the kernel keeps it: synced fields and finished HTML together.
 * @typedef {object} AnswerTurn
 * @property {TurnStatus} status
 * @property {string | null} error
 * @property {string | null} note
 * @property {Stats} stats
 * @property {ToolCall[]} tool_calls
 * @property {number} id
 * @property {"assistant"} role
 * @property {string} html
 * @property {string} reasoning_html
 * @property {string} source
 */
/**
 * The chat's synced traits (ipywidgets adds its own): the conversation's structure and the pace
 * controls. They change at turn boundaries, a slider move or a prompt list's change; the answers
 * themselves travel as messages.
 * @typedef {object} SyncedState
 * @property {ChatStatus} status
 * @property {number} speed
 * @property {number} step
 * @property {string[]} prompts
 * @property {string} disclaimer
 * @property {SyncedTurn[]} turns
 * @property {Object<string, FinishedAnswer>} finished
 */
/**
 * One lane of a race as the `lanes` trait syncs it: a chat of its own (its `status` and `turns`, as
 * a chat's traits), with the `label` and `model` it is shown under. Its answers' HTML is in the
 * race's `finished`, by turn id (ids are unique in the kernel, so every message about a turn
 * reaches the one lane that holds it).
 * @typedef {object} RaceLane
 * @property {string} label
 * @property {string} model
 * @property {ChatStatus} status
 * @property {SyncedTurn[]} turns
 */
/**
 * A race's synced traits: one prompt box for every lane, one pace for all; `kind` tells widget.js
 * to draw a race, not a chat. A browser message about a turn goes to the lane that holds it; "send"
 * goes to every lane, "stop" without a turn stops all.
 * @typedef {object} RaceState
 * @property {"race"} kind
 * @property {ChatStatus} status
 * @property {RacePace} pace
 * @property {number} speed
 * @property {number} step
 * @property {string} disclaimer
 * @property {RaceLane[]} lanes
 * @property {Object<string, FinishedAnswer>} finished
 */
/**
 * Ask a prompt (from the prompt box or a preset button).
 * @typedef {object} SendMessage
 * @property {"send"} type
 * @property {string} prompt
 */
/**
 * Stop the answer `turn` (the one the person saw typing); null (None): whichever is live.
 * @typedef {object} StopMessage
 * @property {"stop"} type
 * @property {number | null} turn
 */
/**
 * Ask again for the stopped or failed answer `turn` (only the last answer).
 * @typedef {object} RetryMessage
 * @property {"retry"} type
 * @property {number} turn
 */
/**
 * A view that joined while an answer was typed asks for a snapshot of it.
 * @typedef {object} HelloMessage
 * @property {"hello"} type
 */
/**
 * A view that could not check a finished answer's HTML (see `EndedMessage`), or holds none for it,
 * asks for the kernel's (a `FinishedMessage`).
 * @typedef {object} ResendMessage
 * @property {"resend"} type
 * @property {number} turn
 */
/**
 * Show the rest of the answer `turn` at once (the Instant button, key I on stage): its typewriter
 * drops to speed 0 and its pauses; null (None): whichever is live.
 * @typedef {object} InstantMessage
 * @property {"instant"} type
 * @property {number | null} turn
 */
/**
 * Changes to a part's HTML (`render.Patch`: append, tail, extend, commit, reset; their meaning,
 * shared by both suites: tests/patch_cases.json), as `decode_patch` reads them; they travel in the
 * compact form `patch` makes (`OPS`).
 * @typedef {object} PatchMessage
 * @property {"patch"} type
 * @property {number} turn
 * @property {Part} part
 * @property {PatchOp[]} ops
 */
/**
 * One frame of a typed answer's body: its patch ops, played `delay` ms after the message that
 * carries it arrives.
 * @typedef {object} Frame
 * @property {number} delay
 * @property {PatchOp[]} ops
 */
/**
 * The body's next frames while the answer types at a pace, each a delay (ms after the message
 * arrives) and its patch ops: a view plays each on the first animation frame at or after its time,
 * never before the frame before it. The kernel sends them `_frames.LEAD` ahead at most, a few per
 * message. `stop`: the answer was stopped; every view drops the frames it holds and keeps what it
 * shows (no frames come with it). `retime`: the speed or step changed; the frames a view holds play
 * at these delays (ms after this message arrives) instead, the last of them at the last delay (a
 * view that played some meanwhile matches them from the end); a list of delays in place of one: a
 * smaller step or a slower speed, the view splits that frame into as many pieces, each cut where
 * the text shown stays well-formed. Only the body is typed at a pace: reasoning travels as patches.
 * Wire form, [turn, "f", keep, item...], each item one of: a number, the delay of the next frame
 * (without one a frame comes `FRAME_MS` after the frame before it: frames are a `_frames.PERIOD`
 * apart while text types); a string, a frame that is one "extend" dropping nothing and keeping
 * `keep` (what a frame of typed text usually is: its framing would cost more than its text); an
 * array starting with a number, a frame that is one "extend": [keep, html] (dropping nothing) or
 * [drop, keep, html]; any other array, a frame's ops as in a patch. An extend sets `keep` for the
 * frames after it. [turn, "s"]: a stop. [turn, "t", delay or [delay...]...]: a retime.
 * @typedef {object} FramesMessage
 * @property {"frames"} type
 * @property {number} turn
 * @property {"body"} part
 * @property {Frame[]} frames
 * @property {boolean} stop
 * @property {Array<number | number[]> | null} retime
 */
/**
 * The live answer's tool calls so far.
 * @typedef {object} ToolsMessage
 * @property {"tools"} type
 * @property {number} turn
 * @property {ToolCall[]} tool_calls
 */
/**
 * An answer ended. Every view that applied its patches already holds its final HTML, so the HTML is
 * not sent again: the view checks it against the sizes (UTF-16 code units) and keeps it, with the
 * Markdown `source`, in the model's `finished` under the turn's id (saved with the notebook's
 * widget state). `fields` are the turn's new values in `turns`: the kernel changes its `turns` in
 * place at a turn end, without re-sending the list, and each view does the same with its model's.
 * @typedef {object} EndedMessage
 * @property {"ended"} type
 * @property {number} turn
 * @property {string} source
 * @property {number} html_size
 * @property {number} reasoning_size
 * @property {TurnEnd} fields
 */
/**
 * A finished answer's HTML as the kernel keeps it, for a view that asked ("resend"); every view
 * that holds no checked copy keeps it in the model's `finished`.
 * @typedef {object} FinishedMessage
 * @property {"finished"} type
 * @property {number} turn
 * @property {string} html
 * @property {string} reasoning_html
 * @property {string} source
 */
/**
 * The whole live answer, for a view that said "hello"; `*_tail` says which end of the HTML the next
 * patch replaces.
 * @typedef {object} SnapshotMessage
 * @property {"snapshot"} type
 * @property {number} turn
 * @property {string} body
 * @property {string} body_tail
 * @property {string} reasoning
 * @property {string} reasoning_tail
 * @property {ToolCall[]} tool_calls
 */
/**
 * A race's lanes' messages of one loop tick, in the order sent, in one comm message: every lane's
 * patch of a frame reaches the page together (the lanes change on the same animation frame), and
 * four lanes cost one IOPub message a frame, not four. Each is a message above (a patch in its
 * compact form); its turn names its lane.
 * @typedef {object} LanesMessage
 * @property {"lanes"} type
 * @property {Array<*>} messages
 */
/**
 * `chat.stage()`: every view goes on stage (`on`), or leaves it. A view without a person's click
 * cannot enter the browser's fullscreen, so it fills the window.
 * @typedef {object} StageMessage
 * @property {"stage"} type
 * @property {boolean} on
 */
/**
 * A turn as the `turns` trait syncs it.
 * @typedef {UserTurn | SyncedAnswerTurn} SyncedTurn
 */
/**
 * Every message a view sends: the registry `parse_browser_message` reads.
 * @typedef {SendMessage | StopMessage | RetryMessage | HelloMessage | ResendMessage | InstantMessage} BrowserMessage
 */
/**
 * Every message the kernel sends (a patch in its compact wire form).
 * @typedef {PatchMessage | FramesMessage | ToolsMessage | EndedMessage | FinishedMessage | SnapshotMessage | StageMessage | LanesMessage} KernelMessage
 */
// --- end of protocol ---
//
// Everything above `render` is pure (no DOM globals) so `node --test` can import it.

/** Apply patch ops to a `{frozen, tail}` state; also say what the DOM must do. */
export function applyOps(state, ops) {
  let { frozen, tail } = state;
  let appended = "";
  let reset = false;
  let tailChanged = false;
  for (const { op, html, drop = 0, keep = 0, size = 0 } of ops) {
    if (op === OP.COMMIT) {
      // The first `size` code units of the live part join the frozen part as they are.
      const head = tail.slice(0, size);
      frozen += head;
      appended += head;
      tail = tail.slice(size);
      tailChanged = tailChanged || size > 0;
    } else if (op === OP.APPEND) {
      frozen += html;
      appended += html;
    } else if (op === OP.TAIL) {
      tailChanged = tailChanged || tail !== html;
      tail = html;
    } else if (op === OP.EXTEND) {
      // Replace the `drop` code units before the last `keep` ones (String.length units).
      const cut = Math.max(0, tail.length - keep);
      const next = tail.slice(0, Math.max(0, cut - drop)) + html + tail.slice(cut);
      tailChanged = tailChanged || tail !== next;
      tail = next;
    } else if (op === OP.RESET) {
      frozen = html;
      tail = "";
      appended = "";
      reset = true;
      tailChanged = true;
    } else {
      throw new Error(`unknown patch op: ${op}`);
    }
  }
  return { state: { frozen, tail }, appended, reset, tailChanged };
}

/**
 * A patch message from its wire form, one flat JSON array (key names and nesting would
 * cost more than the new text at 30-36 messages a second): [turn, part, op...], part
 * "b" or "r", each op a code and its arguments: "a", html | "t", html |
 * "e", drop, keep, html | "c", size | "r", html.
 */
export function decodePatch(message) {
  const [turn, part] = message;
  const ops = [];
  for (let index = 2; index < message.length; ) {
    const [op, next] = decodeOp(message, index);
    ops.push(op);
    index = next;
  }
  return { type: KERNEL_MESSAGE.PATCH, turn, part: PART_CODES[part] ?? part, ops };
}

/** One op and its arguments from a wire array at `index`; returns [op, next index]. */
function decodeOp(message, index) {
  const code = message[index];
  if (!Object.hasOwn(OP_CODES, code)) throw new Error(`unknown patch op: ${code}`);
  const [op, fields] = OP_CODES[code];
  const decoded = { op };
  fields.forEach((field, offset) => {
    decoded[field] = message[index + 1 + offset];
  });
  return [decoded, index + 1 + fields.length];
}

/**
 * A frames message from its wire form: [turn, "f", keep, item...], each item a number
 * (the next frame's delay; without one a frame comes FRAME_MS after the one before), a
 * string (a frame that is one "extend" dropping nothing and keeping `keep`: a frame of
 * typed text), an array starting with a number (one extend: [keep, html] or [drop,
 * keep, html]) or any other array (a frame's ops as in a patch); an extend sets `keep`
 * for the frames after it. [turn, "s"]: the answer was stopped. [turn, "t", delay...]:
 * the speed or step changed, play the frames held at these delays. Frames are the body's.
 * @returns {FramesMessage}
 */
export function decodeFrames(message) {
  const [turn, kind] = message;
  let keep = message[2];
  const frames = [];
  let delay = null;
  for (let index = 3; kind === FRAME_KINDS.frames && index < message.length; index += 1) {
    const item = message[index];
    if (typeof item === "number") {
      delay = item;
      continue;
    }
    if (delay === null) {
      if (!frames.length) throw new Error("a frame without its delay");
      delay = frames[frames.length - 1].delay + FRAME_MS;
    }
    let ops;
    if (typeof item === "string") {
      ops = [{ op: OP.EXTEND, drop: 0, keep, html: item }];
    } else if (typeof item[0] === "number") {
      const [drop, size, html] = item.length === 3 ? item : [0, ...item];
      ops = [{ op: OP.EXTEND, drop, keep: size, html }];
    } else {
      ops = [];
      for (let at = 0; at < item.length; ) {
        const [op, next] = decodeOp(item, at);
        ops.push(op);
        at = next;
      }
    }
    for (const op of ops) if (op.op === OP.EXTEND) keep = op.keep;
    frames.push({ delay, ops });
    delay = null;
  }
  const retime = kind === FRAME_KINDS.retime ? message.slice(2) : null;
  const stop = kind === FRAME_KINDS.stop;
  return { type: KERNEL_MESSAGE.FRAMES, turn, part: PART.BODY, frames, stop, retime };
}

/** Any kernel message from what the comm delivered (arrays are the compact forms). */
export function decodeMessage(received) {
  if (!Array.isArray(received)) return received;
  const frames = Object.values(FRAME_KINDS).includes(received[1]);
  return frames ? decodeFrames(received) : decodePatch(received);
}

/**
 * Plays a typed answer's frames on time (pure: the caller passes its clock, in ms).
 * The kernel renders frames about 0.1 s ahead and sends a few per message, each with
 * its delay after the message; `push` gives each its play time on this view's clock
 * (its arrival plus the delay), never before the frame before it, so frames play in
 * order and a late message only delays its own frames. `due(now)` hands over, at an
 * animation frame, every frame whose time has come (usually one: the kernel's frames
 * are 28 ms apart, a display's 17 ms or less); `drop` forgets the rest (Stop).
 */
export class FramePlayer {
  constructor() {
    /** @type {{at: number, part: string, ops: PatchOp[]}[]} */
    this.queue = [];
    this.last = -Infinity;
  }

  /** Queue `frames` of `part` that arrived at `arrival`. */
  push(part, frames, arrival) {
    for (const { delay, ops } of frames) {
      const at = Math.max(arrival + delay, this.last);
      this.last = at;
      this.queue.push({ at, part, ops });
    }
  }

  /** The speed or step changed: the frames held play at `delays` after `arrival`
   * instead. The kernel lists every frame it sent that was not due yet; frames played
   * meanwhile are missing here, so the lists are matched from their ends. A list of
   * delays in place of one splits that frame into as many pieces (`splitFrame`): a
   * smaller step or a slower speed shows from the next frame, not once the frames
   * typed at the old pace have played. */
  retime(delays, arrival) {
    const count = Math.min(this.queue.length, delays.length);
    const start = this.queue.length - count;
    const retimed = [];
    let last = -Infinity;
    this.queue.slice(start).forEach((frame, index) => {
      const delay = delays[delays.length - count + index];
      const times = Array.isArray(delay) ? delay : [delay];
      splitFrame(frame.ops, times.length).forEach((ops, piece) => {
        last = Math.max(arrival + times[piece], last);
        retimed.push({ at: last, part: frame.part, ops });
      });
    });
    this.queue.splice(start, count, ...retimed);
    if (count) this.last = last;
  }

  /** The frames due by `now`, in order, taken from the queue. */
  due(now) {
    let count = 0;
    while (count < this.queue.length && this.queue[count].at <= now) count += 1;
    return this.queue.splice(0, count);
  }

  /** Every frame held, in order (the answer ends), or only `part`'s (a patch of that
   * part must follow them); the others stay queued. */
  flush(part = null) {
    if (part === null) return this.queue.splice(0);
    const taken = this.queue.filter((frame) => frame.part === part);
    this.queue = this.queue.filter((frame) => frame.part !== part);
    return taken;
  }

  /** Forget every frame held; how many there were. */
  drop() {
    return this.queue.splice(0).length;
  }

  /** When the next frame is due (null: none held). */
  get next() {
    return this.queue.length ? this.queue[0].at : null;
  }

  get size() {
    return this.queue.length;
  }
}

/**
 * A frame's ops as `count` frames that show the same text a piece at a time (a retime to
 * a smaller step or a slower speed). Only a frame that is one "extend" splits: its HTML
 * is cut by `splitHtml`, the first piece drops what the extend dropped, and a piece
 * that got no text is a frame with no ops. Any other frame plays whole in the last
 * piece's place, so nothing shows sooner than it was to.
 * @param {PatchOp[]} ops
 * @returns {PatchOp[][]}
 */
export function splitFrame(ops, count) {
  if (count <= 1) return [ops];
  if (ops.length !== 1 || ops[0].op !== OP.EXTEND) {
    return [...Array.from({ length: count - 1 }, () => []), ops];
  }
  const { drop = 0, keep = 0 } = ops[0];
  let dropping = drop;
  return splitHtml(ops[0].html, count).map((html) => {
    if (!html) return [];
    const piece = [{ op: OP.EXTEND, drop: dropping, keep, html }];
    dropping = 0;
    return piece;
  });
}

/**
 * `html` cut into `count` pieces (some may be empty) that join to it, each showing about
 * as many characters (a grapheme cluster or a character reference is one; tags none).
 * A cut is never inside a tag, a character reference or a grapheme cluster, and only
 * where the elements open are those open at the end of `html`: the HTML after each piece
 * is as well-formed as after the whole, so the view's DOM stays the parse of its HTML.
 */
export function splitHtml(html, count) {
  const cuts = htmlCuts(html);
  const total = cuts[cuts.length - 1].shown;
  const pieces = [];
  let from = 0;
  let index = 0;
  for (let piece = 1; piece <= count; piece += 1) {
    // The cut whose characters before it are nearest this piece's share of the whole.
    const shown = (total * piece) / count;
    while (index + 1 < cuts.length && cuts[index + 1].shown <= shown) index += 1;
    const next = cuts[Math.min(index + 1, cuts.length - 1)];
    const cut = next.shown - shown < shown - cuts[index].shown ? next : cuts[index];
    const to = piece === count ? html.length : Math.max(from, cut.at);
    pieces.push(html.slice(from, to));
    from = to;
  }
  return pieces;
}

/** Grapheme clusters of `text` (one per code point where Intl has no segmenter). */
function graphemes(text) {
  if (typeof Intl.Segmenter !== "function") return Array.from(text);
  graphemes.segmenter ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
  return Array.from(graphemes.segmenter.segment(text), (part) => part.segment);
}

/** Where `html` may be cut: {at, shown}, `shown` the characters before `at`; its
 * start and its end are always among them. */
function htmlCuts(html) {
  const spots = [];
  let depth = 0;
  let shown = 0;
  const text = (start, end) => {
    let at = start;
    for (const grapheme of graphemes(html.slice(start, end))) {
      at += grapheme.length;
      shown += 1;
      spots.push({ at, depth, shown });
    }
  };
  spots.push({ at: 0, depth, shown });
  let runStart = 0;
  for (let at = 0; at < html.length; ) {
    const tag = html[at] === "<" ? scanTag(html, at) : null;
    const reference = html[at] === "&" ? /^&#?[a-zA-Z0-9]+;/.exec(html.slice(at, at + 34)) : null;
    if (!tag && !reference) {
      at += 1;
      continue;
    }
    text(runStart, at);
    if (tag) {
      if (tag.closing) depth -= 1;
      else if (!tag.selfClosing && !VOID.has(tag.name)) depth += 1; // (no end tag: opens nothing)
      at = tag.end;
    } else {
      at += reference[0].length;
      shown += 1;
    }
    spots.push({ at, depth, shown });
    runStart = at;
  }
  text(runStart, html.length);
  // A cut leaves the elements open that the whole leaves open: its depth is the end's,
  // and nothing after it closes an element opened before it.
  const end = spots[spots.length - 1].depth;
  const cuts = [];
  let lowest = Infinity;
  for (let index = spots.length - 1; index >= 0; index -= 1) {
    const spot = spots[index];
    lowest = Math.min(lowest, spot.depth);
    if ((spot.depth === end && lowest >= end) || index === 0) cuts.push(spot);
  }
  return cuts.reverse();
}

/** A snapshot's HTML as `{frozen, tail}`: its last `tail` characters are the live part. */
export function splitSnapshot(html, tail = "") {
  if (!tail || !html.endsWith(tail)) return { frozen: html, tail: "" };
  return { frozen: html.slice(0, html.length - tail.length), tail };
}

/** Enter sends; Shift+Enter is a newline; Enter that ends an IME composition does not send. */
export function shouldSend(event) {
  if (event.key !== "Enter" || event.shiftKey || event.altKey) return false;
  // keyCode 229 is what browsers report for keys handled by an IME (Safari sends
  // the composition-ending Enter after compositionend, with isComposing false).
  return !event.isComposing && event.keyCode !== 229;
}

// Keys with Ctrl or Meta that edit text in the prompt box (select all, copy, paste,
// cut, undo, redo, word moves): the box's, not the notebook's (Ctrl+Z would undo a
// cell deletion). Other Ctrl/Meta combinations (Ctrl+S, the command palette) stay the
// host's.
const EDITING_CHORDS = new Set([
  "a", "c", "v", "x", "z", "y", "Enter", "Backspace", "Delete",
  "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End",
]);

/**
 * Whether a key pressed inside the widget belongs to it, never to the host's
 * shortcuts: every key without Ctrl/Meta (letters are command-mode shortcuts in
 * Jupyter; Shift+Enter runs a cell), and the text-editing chords.
 */
export function ownsKey(event) {
  if (!event.ctrlKey && !event.metaKey) return true;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  // With Shift, letters are the host's (Ctrl+Shift+C: JupyterLab's command palette),
  // but for redo.
  if (key.length === 1 && event.shiftKey && key !== "z") return false;
  return EDITING_CHORDS.has(key);
}

// --- stage: the presenter's chat (issue 24) ---------------------------------------

/** The stage's type scale: A- and A+ move it by `step`, between `min` and `max`. */
export const STAGE_SCALE = Object.freeze({ min: 0.6, max: 2, step: 0.1, initial: 1 });

/** `scale` moved by `steps` A+ (negative: A-) presses, kept in bounds, to one decimal. */
export function stageScale(scale, steps = 0) {
  const { min, max, step, initial } = STAGE_SCALE;
  const current = Number.isFinite(scale) ? scale : initial;
  return Math.round(Math.min(max, Math.max(min, current + steps * step)) * 10) / 10;
}

/** How many deck prompts were asked already, in order: the deck goes on from there. */
export function deckStart(questions, prompts) {
  let next = 0;
  for (const question of questions) {
    if (next < prompts.length && question.trim() === prompts[next].trim()) next += 1;
  }
  return next;
}

/**
 * What a deck key does. `shown` is the index of the answer on stage, `answers` how many
 * there are, `next` the deck prompt to send next of `total`, `live` whether one types.
 * Forward shows the next answer again, or past the last one sends the next prompt;
 * back shows the answer before. Nothing happens while an answer types.
 * @returns {{ action: "show", index: number } | { action: "ask", index: number } | { action: "none" }}
 */
export function deckMove(direction, { shown, answers, next, total, live }) {
  if (live) return { action: "none" };
  if (direction < 0) {
    return shown > 0 ? { action: "show", index: shown - 1 } : { action: "none" };
  }
  if (shown < answers - 1) return { action: "show", index: shown + 1 };
  return next < total ? { action: "ask", index: next } : { action: "none" };
}

/** The deck's position, shown discreetly: "2 / 5" (prompts asked of the deck). */
export function deckLabel(next, total) {
  return total ? `${next} / ${total}` : "";
}

/**
 * The stage's command for a key, or null (the key is not the stage's). Presentation
 * clickers send Right/PageDown (next) and Left/PageUp (back); Space is next too.
 */
export function stageCommand(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return null;
  const commands = {
    ArrowRight: "next", PageDown: "next", " ": "next", ArrowDown: "next",
    ArrowLeft: "back", PageUp: "back", ArrowUp: "back",
    Escape: "escape", b: "blank", B: "blank", ".": "blank",
    i: "reveal", I: "reveal", "+": "bigger", "=": "bigger", "-": "smaller",
  };
  return commands[event.key] ?? null;
}

/** A range input's bounds for a trait value: the slider's span, stretched to hold it. */
export function sliderBounds(value, { min, max }) {
  return { min: Math.min(min, value), max: Math.max(max, value) };
}

/**
 * The footer line: "first token 0.42 s · received 1480 chars/s · typed 120 chars/s ·
 * 12 in / 345 out tokens". Received is the network's pace, typed the typewriter's
 * (the Speed slider's, or the network's when the typewriter waits for text).
 */
export function formatStats(stats) {
  if (!stats) return "";
  const parts = [];
  if (typeof stats.ttft === "number") parts.push(`first token ${stats.ttft.toFixed(2)} s`);
  for (const [key, label] of [["chars_per_second", "received"], ["typed_per_second", "typed"]]) {
    if (typeof stats[key] === "number" && stats[key] > 0) {
      parts.push(`${label} ${Math.round(stats[key])} chars/s`);
    }
  }
  const input = stats.input_tokens;
  const output = stats.output_tokens;
  if (input != null || output != null) {
    parts.push(`${input ?? "?"} in / ${output ?? "?"} out tokens`);
  }
  if (stats.reasoning_tokens != null) parts.push(`${stats.reasoning_tokens} reasoning tokens`);
  return parts.join(" · ");
}

/** "0.0 s" from milliseconds, for the waiting indicator. */
export function formatElapsed(ms) {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

/**
 * How long (ms) the DOM of a live part may wait between updates when its open block's
 * HTML is `size` characters. Each update lays out the whole open block again (a code
 * block is one inline formatting context, a table one table), so a large one is shown
 * less often, never more than 100 ms behind what came: the lag a reader does not see.
 */
export function showInterval(size) {
  return Math.min(100, Math.max(0, (size - 2000) / 100));
}

/** True when a scroller is at (or within `slack` px of) its bottom: keep following. */
export function nearBottom(scrollTop, clientHeight, scrollHeight, slack = 32) {
  return scrollHeight - (scrollTop + clientHeight) <= slack;
}

const TEXT_NODE = 3;
const ELEMENT_NODE = 1;
// A cursor cannot live inside these (void or replaced elements): it goes after them.
const OPAQUE = new Set([
  "BR", "HR", "IMG", "INPUT", "WBR", "SVG", "MATH", "VIDEO", "AUDIO", "IFRAME", "BUTTON",
]);
// A <span> is not a valid child of these: the cursor goes after the whole structure.
const STRUCTURAL = new Set([
  "TABLE", "THEAD", "TBODY", "TFOOT", "TR", "COLGROUP", "UL", "OL", "DL", "SELECT",
]);

function isBlank(node) {
  return node.nodeType === TEXT_NODE && !/\S/.test(node.nodeValue);
}

function lastMeaningful(parent) {
  const nodes = parent.childNodes;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (node.nodeType === ELEMENT_NODE || (node.nodeType === TEXT_NODE && !isBlank(node))) {
      return node;
    }
  }
  return null;
}

/**
 * Where the typing cursor goes: inside the deepest last element, right after the
 * last character, so it sits on the same line as the text (not on a new line after
 * a block). Works on anything shaped like DOM nodes (nodeType, nodeName,
 * childNodes, nodeValue). Returns `{parent, ref, split}`: insert before `ref`
 * (null = append to `parent`); when `split` is a number, first split the text node
 * `ref` at that offset (a code block's trailing newline stays after the cursor).
 */
export function cursorSpot(root) {
  const path = [root];
  let parent = root;
  for (;;) {
    const last = lastMeaningful(parent);
    if (last === null) break;
    if (last.nodeType === TEXT_NODE) {
      const trailing = /\s*$/.exec(last.nodeValue)[0];
      if (trailing.includes("\n")) {
        return { parent, ref: last, split: last.nodeValue.length - trailing.length };
      }
      return { parent, ref: null, split: null };
    }
    if (OPAQUE.has(last.nodeName.toUpperCase())) return { parent, ref: null, split: null };
    parent = last;
    path.push(parent);
  }
  // An empty table section or list: climb to the first ancestor that may hold a span.
  let index = path.length - 1;
  while (index > 0 && STRUCTURAL.has(path[index].nodeName.toUpperCase())) index--;
  return { parent: path[index], ref: null, split: null };
}

/** Which turns changed since `previous` (by a cheap signature), for minimal DOM work. */
export function turnSignature(turn) {
  return JSON.stringify([
    turn.role,
    turn.status ?? "",
    turn.text ?? "",
    (turn.html ?? "").length,
    (turn.reasoning_html ?? "").length,
    turn.id ?? null,
    turn.error ?? "",
    turn.note ?? "",
    turn.tool_calls ?? [],
    turn.stats ?? {},
  ]);
}

/** A compact one-line summary of a tool call: `name(arguments)`, arguments shortened. */
export function toolLabel(call, limit = 120) {
  const args = String(call.arguments ?? "");
  const short = args.length > limit ? `${args.slice(0, limit - 1)}…` : args;
  return `${call.name ?? "tool"}(${short})`;
}

// --- what the bubble shows ------------------------------------------------------

/** Tool calls made before any text go above it, the others below: the order they came. */
export function toolsByPlace(calls) {
  const list = calls ?? [];
  return {
    before: list.filter((call) => !(call.after > 0)),
    after: list.filter((call) => call.after > 0),
  };
}

/** The reasoning's fold label: how long the model thought, once it has. */
export function reasoningLabel(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0) return "Reasoning";
  if (seconds < 1) return "Thought for less than a second";
  return `Thought for ${Math.round(seconds)} s`;
}

/** What an answer's Copy button copies: its Markdown source, with the disclaimer. */
export function answerClipboard(source, disclaimer) {
  const text = String(source ?? "").trimEnd();
  return disclaimer ? `${text}\n\n— ${disclaimer}\n` : `${text}\n`;
}

/** An error message's lines: what happened, the fix, then the technical detail. */
export function errorParts(message) {
  const [what = "", fix = "", ...detail] = String(message ?? "").split("\n");
  return { what, fix, detail: detail.join("\n") };
}

/** The language of a highlighted code block, from its `language-X` class. */
export function codeLanguage(className) {
  const found = /(?:^|\s)language-([\w+#.-]+)/.exec(className ?? "");
  return found && found[1] !== "text" ? found[1] : "";
}

// Kernel statuses after which the comm a view talks through is gone: a new kernel
// process ("starting", "restarting", "autorestarting") holds none of the old comms,
// a "terminating" or "dead" one answers nothing.
const KERNEL_GONE = new Set(["starting", "restarting", "autorestarting", "terminating", "dead"]);

/**
 * Call `onLost` (once) as soon as the host says the kernel behind a view's model is
 * gone, not at the next send. JupyterLab, Notebook 7 and Voila hand anywidget their
 * ipywidgets manager: its `kernel` is the kernel connection (a Lumino object whose
 * `statusChanged` says restarting or dead, and `disposed` that it was shut down) and,
 * in a notebook, its `context.sessionContext` says when the notebook changes kernel.
 * Hosts without these (marimo) give nothing to watch: a failed send says it then.
 * Returns the cleanup.
 */
export function watchKernel(manager, onLost) {
  const kernel = manager?.kernel;
  if (!kernel?.statusChanged?.connect) return () => {};
  let lost = false;
  const lose = () => {
    if (lost) return;
    lost = true;
    onLost();
  };
  // A kernel restarted by another client (the server's REST API) says "starting" only
  // on IOPub, and a message published before the server's socket reconnected is lost;
  // every message of the new process carries its new session id, so the first one
  // seen after the restart tells.
  let session;
  const onIopub = (_sender, message) => {
    const header = message?.header;
    if (!header?.session || KERNEL_GONE.has(message.content?.execution_state)) return;
    session ??= header.session;
    if (header.session !== session) lose();
  };
  const watched = [
    [kernel.statusChanged, (_sender, status) => KERNEL_GONE.has(status) && lose()],
    [kernel.iopubMessage, onIopub],
    [kernel.disposed, lose],
    [
      manager.context?.sessionContext?.kernelChanged,
      (_sender, change) => change?.newValue !== kernel && lose(),
    ],
  ].filter(([signal]) => signal?.connect);
  for (const [signal, slot] of watched) signal.connect(slot);
  if (kernel.isDisposed || kernel.status === "dead") lose();
  return () => {
    for (const [signal, slot] of watched) signal.disconnect(slot);
  };
}

// --- patches applied in place ---------------------------------------------------
//
// A part's HTML (frozen + tail) is one string; the kernel sends it as a serialization
// of a parsed tree (double-quoted attributes, every element closed but void ones), so a
// small tag scanner can say which characters each DOM node came from. `LiveHtml` keeps
// that map (each node's length in the string, its start and end tags' lengths, its
// children), turns a batch of ops into one change of the string, [a, b) replaced by new
// text, and applies it where it belongs: new characters in a text node become a
// `replaceData`, anything else re-parses only the children of the deepest element that
// holds the change. What cannot change (finished lines of a code block, rows of a table,
// list items) is never touched, and a commit moves no node. Anything the map cannot
// follow re-parses the smallest enclosing element, and is counted (`stats.fallbacks`).
//
// The contract (tests/js/inplace.test.mjs holds every patch case and real renderer
// stream to it): after every patch, the part's DOM, with the view's own nodes left out
// (cursor, code bars: `decoration`) and its own wrappers unwrapped (`LiveHtml.group`:
// finished top-level blocks grouped so the browser can skip them off screen), equals
// the whole HTML parsed at once.

const VOID = new Set([
  "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
  "track", "wbr",
]);
// The HTML parser drops a newline right after these start tags (HTML spec, "in body":
// "pre", "listing"; "textarea").
const LEADING_LF = new Set(["pre", "listing", "textarea"]);
const XHTML = "http://www.w3.org/1999/xhtml";
const NAMED = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
/** Nodes the view adds (cursor, code bars): never part of the mapped HTML. */
const DECORATION = new WeakSet();
/** The view's own wrappers around finished top-level blocks (`LiveHtml.group`): the map
 * sees through them, to the blocks they hold. */
const WRAPPER = new WeakSet();
/** Finished top-level blocks per wrapper. */
export const GROUP_SIZE = 16;
export const GROUP_CLASS = "streamchat-group";
/** A finished answer, left out of rendering while off screen (`Settler`). */
const SETTLED_CLASS = "streamchat-settled";

/** Mark `node` as the view's own (the map skips it). */
export function decoration(node) {
  DECORATION.add(node);
  return node;
}

/** Text as the parser makes it from serialized character data (serializers write only
 * "&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;" and numeric references); null when it holds
 * a reference this decoder does not know (the caller re-parses instead). */
export function decodeText(raw) {
  const text = raw.includes("\r") ? raw.replace(/\r\n?/g, "\n") : raw;
  if (!text.includes("&")) return text;
  let known = true;
  const out = text.replace(/&([#a-zA-Z0-9]*;?)/g, (all, ref) => {
    const body = ref.slice(0, -1);
    if (!ref.endsWith(";")) {
      known = false;
    } else if (body[0] === "#") {
      const hex = body[1] === "x" || body[1] === "X";
      const code = hex ? parseInt(body.slice(2), 16) : Number(body.slice(1));
      if (!Number.isInteger(code)) known = false;
      else if (!code || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return "\ufffd";
      else return String.fromCodePoint(code);
    } else if (Object.hasOwn(NAMED, body)) {
      return NAMED[body];
    } else {
      known = false;
    }
    return all;
  });
  return known ? out : null;
}

/** The tag starting at `html[at]` ("<"): its end (after ">"), lowercased name, and
 * whether it closes or self-closes; null when no tag starts there. Attribute values
 * may hold ">" (serializers escape only "&" and the quote), so quotes are followed. */
export function scanTag(html, at) {
  let i = at + 1;
  const closing = html[i] === "/";
  if (closing) i++;
  const nameStart = i;
  while (i < html.length && !/[\s/>]/.test(html[i])) i++;
  if (i === nameStart) return null;
  const name = html.slice(nameStart, i).toLowerCase();
  for (;;) {
    while (i < html.length && /\s/.test(html[i])) i++;
    if (i >= html.length) return null;
    if (html[i] === ">") return { end: i + 1, name, closing, selfClosing: false };
    if (html[i] === "/" && html[i + 1] === ">") return { end: i + 2, name, closing, selfClosing: true };
    if (html[i] === "/") {
      i++;
      continue;
    }
    while (i < html.length && !/[\s=>]/.test(html[i]) && !(html[i] === "/" && html[i + 1] === ">")) i++;
    while (i < html.length && /\s/.test(html[i])) i++;
    if (html[i] !== "=") continue;
    i++;
    while (i < html.length && /\s/.test(html[i])) i++;
    const quote = html[i];
    if (quote === '"' || quote === "'") {
      const close = html.indexOf(quote, i + 1);
      if (close < 0) return null;
      i = close + 1;
    } else {
      while (i < html.length && !/[\s>]/.test(html[i])) i++;
    }
  }
}

/** `node`'s children as the HTML has them: without the view's decorations, and with
 * the blocks in the view's wrappers in their place. */
function mappedChildren(node, out = []) {
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (WRAPPER.has(child)) mappedChildren(child, out);
    else if (!DECORATION.has(child)) out.push(child);
  }
  return out;
}

/** `root` with the view's wrappers unwrapped (a copy): what the patch contract compares
 * with a parse of the whole HTML. */
export function unwrapped(root) {
  const copy = root.cloneNode(false);
  for (let child = root.firstChild; child; child = child.nextSibling) {
    if (WRAPPER.has(child)) {
      for (let inner = child.firstChild; inner; inner = inner.nextSibling) {
        copy.appendChild(inner.cloneNode(true));
      }
    } else {
      copy.appendChild(child.cloneNode(true));
    }
  }
  return copy;
}

/**
 * Pair DOM `nodes` (siblings, in order) with the HTML from `html[at]`: their map
 * entries and where their HTML ends, or null when the DOM is not what the HTML says
 * (then the caller re-parses a larger piece). `parent` is the entries' parent.
 */
function mapNodes(html, at, nodes, parent) {
  const entries = [];
  let i = at;
  for (const node of nodes) {
    if (node.nodeType === TEXT_NODE) {
      let stop = html.indexOf("<", i);
      if (stop < 0) stop = html.length;
      if (stop === i || decodeText(html.slice(i, stop)) !== node.data) return null;
      entries.push({ node, len: stop - i, parent, kids: null });
      i = stop;
      continue;
    }
    if (node.nodeType !== ELEMENT_NODE || html[i] !== "<") return null;
    const tag = scanTag(html, i);
    const name = node.localName.toLowerCase();
    if (!tag || tag.closing || tag.name !== name) return null;
    const entry = { node, len: 0, open: tag.end - i, close: 0, parent, kids: [], lf: false };
    const html5 = node.namespaceURI === XHTML;
    if ((html5 && VOID.has(name)) || (!html5 && tag.selfClosing)) {
      entry.kids = [];
      entry.len = entry.open;
      entries.push(entry);
      i = tag.end;
      continue;
    }
    let inner = tag.end;
    if (html5 && LEADING_LF.has(name) && html[inner] === "\n") {
      entry.open += 1; // the parser dropped it: it belongs to the start tag here
      entry.lf = true;
      inner += 1;
    }
    const kids = mapNodes(html, inner, mappedChildren(node), entry);
    if (!kids) return null;
    const endTag = html[kids.end] === "<" ? scanTag(html, kids.end) : null;
    if (!endTag || !endTag.closing || endTag.name !== name) return null;
    entry.kids = kids.entries;
    entry.close = endTag.end - kids.end;
    entry.len = endTag.end - i;
    entries.push(entry);
    i = endTag.end;
  }
  return { entries, end: i };
}

/** True when every tag in `html` is closed in it, in order (a quick scan, no parse). */
function balanced(html) {
  const open = [];
  for (let i = html.indexOf("<"); i >= 0; i = html.indexOf("<", i)) {
    const tag = scanTag(html, i);
    if (!tag) return false;
    if (tag.closing) {
      if (open.pop() !== tag.name) return false;
    } else if (!tag.selfClosing && !VOID.has(tag.name)) {
      open.push(tag.name);
    }
    i = tag.end;
  }
  return open.length === 0;
}

function commonPrefix(a, b, limit) {
  let n = 0;
  while (n < limit && a.charCodeAt(n) === b.charCodeAt(n)) n++;
  return n;
}

/** The net change a batch of ops makes to `frozen + tail`: [lo, hiOld) of the old
 * string becomes [lo, hiNew) of the new one; `frozen` is the new frozen length. Only a
 * reset touches what was frozen, so the work is on the rest (the frozen part of a
 * 100 KB answer is not copied or compared per update). */
export function netChange(oldFull, frozenLength, ops) {
  const base = ops.some(({ op }) => op === OP.RESET) ? 0 : Math.min(frozenLength, oldFull.length);
  const oldRest = oldFull.slice(base);
  let full = oldRest;
  let frozen = frozenLength - base;
  let lo = Infinity;
  let hiOld = 0;
  let hiNew = 0;
  let reset = false;
  const splice = (a, b, html) => {
    full = full.slice(0, a) + html + full.slice(b);
    if (lo === Infinity) {
      lo = a;
      hiOld = b;
      hiNew = a + html.length;
      return;
    }
    const end = Math.max(hiNew, b);
    hiOld += end - hiNew;
    lo = Math.min(lo, a);
    hiNew = end + html.length - (b - a);
  };
  for (const { op, html = "", drop = 0, keep = 0, size = 0 } of ops) {
    const tailLength = full.length - frozen;
    if (op === OP.COMMIT) {
      frozen += Math.max(0, Math.min(size, tailLength));
    } else if (op === OP.APPEND) {
      splice(frozen, frozen, html);
      frozen += html.length;
    } else if (op === OP.TAIL) {
      splice(frozen, full.length, html);
    } else if (op === OP.EXTEND) {
      const cut = Math.max(0, tailLength - keep);
      splice(frozen + Math.max(0, cut - drop), frozen + cut, html);
    } else if (op === OP.RESET) {
      full = html;
      frozen = html.length;
      reset = true;
      lo = Infinity;
    } else {
      throw new Error(`unknown patch op: ${op}`);
    }
  }
  const whole = base ? oldFull.slice(0, base) + full : full;
  if (lo === Infinity) return { full: whole, frozen: frozen + base, reset, lo: 0, hiOld: 0, hiNew: 0 };
  // Trim what the change left as it was (a tail op re-sends the whole open block).
  const prefix = commonPrefix(
    oldRest.slice(lo, hiOld), full.slice(lo, hiNew), Math.min(hiOld, hiNew) - lo,
  );
  lo += prefix;
  let suffix = 0;
  const limit = Math.min(hiOld, hiNew) - lo;
  while (suffix < limit && oldRest.charCodeAt(hiOld - 1 - suffix) === full.charCodeAt(hiNew - 1 - suffix)) {
    suffix++;
  }
  return {
    full: whole, frozen: frozen + base, reset,
    lo: lo + base, hiOld: hiOld - suffix + base, hiNew: hiNew - suffix + base,
  };
}

/** `change` without the end its old and new text share. */
function trimEnd(change) {
  const { old, full, lo } = change;
  let { hiOld, hiNew } = change;
  while (hiOld > lo && hiNew > lo && old.charCodeAt(hiOld - 1) === full.charCodeAt(hiNew - 1)) {
    hiOld--;
    hiNew--;
  }
  return { ...change, hiOld, hiNew };
}

/**
 * A change as one or two steps: when the new text holds the old (a short run of closing
 * tags) whole, it is two insertions around it. [append a finished table, extend the
 * tail to the paragraph after it] replaces "</td></tr></tbody></table" with the last
 * cell's text, those tags and the paragraph; as insertions, the text goes into the cell
 * and the paragraph after the table, and the table is not parsed again.
 */
export function splitChange(old, change) {
  const { full, lo, hiOld, hiNew } = change;
  const was = old.slice(lo, hiOld);
  const now = full.slice(lo, hiNew);
  const at = was && was.length <= 512 && now.length > was.length ? now.lastIndexOf(was) : -1;
  if (at < 0) return [{ old, full, lo, hiOld, hiNew }];
  const after = now.slice(at + was.length);
  const middle = old.slice(0, hiOld) + after + old.slice(hiOld);
  const steps = [];
  if (after) steps.push({ old, full: middle, lo: hiOld, hiOld, hiNew: hiOld + after.length });
  if (at) steps.push({ old: middle, full, lo, hiOld: lo, hiNew: lo + at });
  return steps;
}

/** The applier: `root`'s children are the HTML `html`; `apply` moves both on. */
export class LiveHtml {
  /** @param {Element} root @param {(node: Node) => void} [onInsert] */
  constructor(root, onInsert = () => {}) {
    this.root = root;
    this.doc = root.ownerDocument;
    this.onInsert = onInsert;
    this.html = "";
    this.map = null; // built on first use: a finished answer never needs one
    /** The index in `map.kids` of the first top-level block not in a wrapper. */
    this.loose = 0;
    this.groupSize = GROUP_SIZE;
    this.stats = {
      updates: 0, textEdits: 0, reparses: 0, climbs: 0, fallbacks: 0, wholes: 0, parsedChars: 0,
    };
  }

  /** Show `html` as a whole (a finished answer, a snapshot, a reset). */
  set(html) {
    this.root.replaceChildren();
    this.insertParsed(this.root, html, null);
    this.html = html;
    this.map = null;
    this.loose = 0;
  }

  /**
   * Put finished top-level blocks in wrappers of the view's own (`groupSize` blocks
   * each; every finished block but the last when `all`, at the answer's end), where the
   * browser can leave them out of layout and paint while off screen (widget.css,
   * `content-visibility: auto`): an update then costs the browser about the same under
   * 300 finished blocks as under 3. `frozen` is the frozen part's length the DOM shows;
   * the last block is never wrapped (the cursor and the patches live there). Each
   * wrapper takes the measured size of its blocks (`contain-intrinsic-size`, for when
   * it is skipped before the browser remembers one) and the outer margins of its first
   * and last block (margins do not collapse through a contained box; widget.css zeroes
   * the inner ones), so nothing moves. Call it while the layout is clean (before the
   * frame's DOM changes): it reads sizes. True when it wrapped anything.
   */
  group(frozen, all = false) {
    const map = this.map;
    if (!map || !this.root.isConnected) return false; // (a view not shown has no sizes)
    const kids = map.kids;
    let loose = Math.min(this.loose, kids.length);
    while (loose < kids.length && kids[loose].node.parentNode !== this.root) loose++;
    while (loose > 0 && kids[loose - 1].node.parentNode === this.root) loose--;
    let lastElement = kids.length - 1;
    while (lastElement >= loose && !kids[lastElement].kids) lastElement--;
    let start = map.len;
    for (let k = kids.length - 1; k >= loose; k--) start -= kids[k].len;
    const ranges = [];
    for (;;) {
      let pos = start;
      let elements = 0;
      let end = -1;
      for (let k = loose; k < lastElement && elements < this.groupSize; k++) {
        pos += kids[k].len;
        if (pos > frozen) break;
        if (kids[k].kids) {
          elements++;
          end = k;
        }
      }
      if (!elements || (elements < this.groupSize && !all)) break;
      ranges.push([loose, end]);
      for (let k = loose; k <= end; k++) start += kids[k].len;
      loose = end + 1;
    }
    this.loose = loose;
    if (!ranges.length) return false;
    // Every size first, then the moves: a read after a move would force a layout.
    const sized = ranges.map(([first, last]) => this.measure(kids[first].node, kids[last].node));
    for (const range of sized) this.wrap(range);
    return true;
  }

  /** The DOM range from `first` (with the view's nodes just before it: a code bar) to
   * `last`, with its size and outer margins (in em of the part's font, so a change of
   * type size on stage keeps them). */
  measure(first, last) {
    let start = first;
    while (start.previousSibling && DECORATION.has(start.previousSibling)) start = start.previousSibling;
    let top = start;
    while (top.nodeType !== ELEMENT_NODE) top = top.nextSibling;
    const view = this.doc.defaultView;
    const em = parseFloat(view.getComputedStyle(this.root).fontSize) || 16;
    const margin = (node, side) =>
      node.style ? `${(parseFloat(view.getComputedStyle(node)[side]) || 0) / em}em` : "0";
    const upper = top.getBoundingClientRect();
    const lower = last.getBoundingClientRect();
    return {
      start,
      last,
      width: Math.max(upper.width, lower.width),
      height: lower.bottom - upper.top,
      marginTop: margin(top, "marginTop"),
      marginBottom: margin(last, "marginBottom"),
    };
  }

  wrap({ start, last, width, height, marginTop, marginBottom }) {
    const wrapper = this.doc.createElement("div");
    wrapper.className = GROUP_CLASS;
    WRAPPER.add(wrapper);
    wrapper.style.marginTop = marginTop;
    wrapper.style.marginBottom = marginBottom;
    if (height > 0) {
      wrapper.style.setProperty(
        "contain-intrinsic-size", `auto ${Math.round(width)}px auto ${Math.round(height)}px`,
      );
    }
    this.root.insertBefore(wrapper, start);
    for (let node = start; ; ) {
      const next = node.nextSibling;
      wrapper.appendChild(node);
      if (node === last) break;
      node = next;
    }
  }

  /** Apply a batch of ops (with `frozenLength` the frozen part's length before it). */
  apply(ops, frozenLength) {
    const change = netChange(this.html, frozenLength, ops);
    this.stats.updates++;
    if (change.reset) {
      this.stats.wholes++;
      this.set(change.full);
      return change;
    }
    if (change.hiOld === change.lo && change.hiNew === change.lo) return change;
    const old = this.html;
    this.html = change.full;
    if (!this.map) this.map = this.build(old);
    if (!this.map || !this.change(old, change)) {
      this.stats.wholes++;
      this.set(change.full);
    }
    return change;
  }

  /** Apply `change` as `splitChange` says, or whole where a step's text is not HTML
   * on its own (a failed step leaves the DOM as it was). */
  change(old, change) {
    const block = this.splitAtBlock(old, change);
    if (block) {
      if (!this.splice(old, block[0])) return this.splice(old, change);
      const [, rest] = block;
      if (!rest || this.splice(rest.old, rest)) return true;
      const { full } = change;
      return this.splice(rest.old, { full, lo: rest.at, hiOld: rest.old.length, hiNew: full.length });
    }
    const steps = splitChange(old, change);
    if (steps.length === 1 && steps[0].hiOld === change.hiOld) return this.splice(old, change);
    if (!this.splice(old, steps[0])) return this.splice(old, change);
    if (steps.length === 1 || this.splice(steps[1].old, steps[1])) return true;
    const { full, lo, hiNew } = change;
    return this.splice(steps[1].old, { full, lo, hiOld: steps[0].hiNew, hiNew });
  }

  /**
   * A change that runs past the end of the top-level block it starts in (the last row
   * of a table, then the paragraph after it) as two: the block's inside up to its end
   * tag, then what follows it. Null when the change stays inside one block.
   */
  splitAtBlock(old, change) {
    const { full, lo, hiOld } = change;
    let end = this.map.len;
    let kid = null;
    for (let k = this.map.kids.length - 1; k >= 0; k--) {
      const start = end - this.map.kids[k].len;
      if (start < lo) {
        kid = { entry: this.map.kids[k], start, end };
        break;
      }
      end = start;
    }
    if (!kid || !kid.entry.kids || !kid.entry.close || hiOld <= kid.end - kid.entry.close) return null;
    // Where the block ends in the new HTML: its start tag is unchanged (before `lo`).
    let depth = 0;
    let at = kid.start;
    for (;;) {
      at = full.indexOf("<", at);
      if (at < 0) return null;
      const tag = scanTag(full, at);
      if (!tag) return null;
      if (tag.closing) depth--;
      else if (!tag.selfClosing && !VOID.has(tag.name)) depth++;
      at = tag.end;
      if (depth === 0) break;
    }
    const close = kid.entry.close;
    if (at - close < lo || full.slice(at - close, at) !== old.slice(kid.end - close, kid.end)) return null;
    const middle = full.slice(0, at) + old.slice(kid.end);
    if (middle === full) return null; // nothing new after the block
    const inside = trimEnd({ old, full: middle, lo, hiOld: kid.end - close, hiNew: at - close });
    // After the block: what differs between the old rest and the new rest.
    const was = old.slice(kid.end);
    const now = full.slice(at);
    const prefix = commonPrefix(was, now, Math.min(was.length, now.length));
    let suffix = 0;
    while (suffix < Math.min(was.length, now.length) - prefix &&
        was.charCodeAt(was.length - 1 - suffix) === now.charCodeAt(now.length - 1 - suffix)) {
      suffix++;
    }
    const rest = {
      old: middle, full, lo: at + prefix, hiOld: at + was.length - suffix,
      hiNew: at + now.length - suffix, at,
    };
    return [inside, rest];
  }

  build(html) {
    const entry = { node: this.root, len: html.length, open: 0, close: 0, parent: null, kids: [], lf: false };
    const kids = mapNodes(html, 0, mappedChildren(this.root), entry);
    if (!kids || kids.end !== html.length) return null;
    entry.kids = kids.entries;
    return entry;
  }

  /** Where in the tree [a, b) is: the path of entries with their starts. */
  locate(a, b) {
    const path = [{ entry: this.map, start: 0 }];
    for (;;) {
      const { entry, start } = path[path.length - 1];
      let pos = start + entry.len - entry.close;
      let inside = null;
      for (let k = entry.kids.length - 1; k >= 0; k--) {
        const kid = entry.kids[k];
        pos -= kid.len;
        if (pos > a) continue;
        const opensBefore = pos + (kid.open ?? 0) <= a;
        const closesAfter = b <= pos + kid.len - (kid.close ?? 0);
        if (kid.kids && kid.len > kid.open && opensBefore && closesAfter &&
            kid.node.namespaceURI === XHTML) {
          inside = { entry: kid, start: pos };
        }
        break;
      }
      if (!inside) return path;
      path.push(inside);
    }
  }

  /** The tag that `pos` is strictly inside, as [start, end), or null. */
  tagAround(pos) {
    let entry = this.map;
    let start = 0;
    for (;;) {
      let kidStart = start + entry.len - entry.close;
      let next = null;
      for (let k = entry.kids.length - 1; k >= 0; k--) {
        kidStart -= entry.kids[k].len;
        if (kidStart < pos) {
          next = entry.kids[k];
          break;
        }
      }
      if (!next || !next.kids || kidStart + next.len <= pos) return null;
      if (pos < kidStart + next.open) return [kidStart, kidStart + next.open];
      const endTag = kidStart + next.len - next.close;
      if (pos > endTag) return [endTag, kidStart + next.len];
      entry = next;
      start = kidStart;
    }
  }

  splice(old, change) {
    const full = change.full;
    let { lo: a, hiOld: b } = change;
    const delta = change.hiNew - change.hiOld;
    // A pure insertion (or deletion) that starts inside a tag slides to the tag's start
    // or end when the text allows: "li>b</li>\n<" inserted before "/ul>" is "<li>b</li>\n"
    // inserted before "</ul>", which belongs inside the list, not around it.
    const tag = a === b || change.hiNew === a ? this.tagAround(a) : null;
    if (tag) {
      const piece = full.slice(a, Math.max(change.hiNew, a)) || old.slice(a, b);
      const [tagStart, tagEnd] = tag;
      if (a - tagStart <= piece.length && piece.endsWith(old.slice(tagStart, a))) {
        b -= a - tagStart;
        a = tagStart;
      } else if (tagEnd - a <= piece.length && piece.startsWith(old.slice(a, tagEnd))) {
        b += tagEnd - a;
        a = tagEnd;
      }
    }
    const path = this.locate(a, b);
    if (this.editText(old, full, path, a, b, delta)) return true;
    for (let depth = path.length - 1; depth >= 0; depth--) {
      const { entry, start } = path[depth];
      const done = this.reparse(full, entry, start, a, b, delta);
      if (done === true) return true;
      // The new HTML closes (or opens) an element around this one: the parent's turn.
      if (done === "mismatch") this.stats.fallbacks++;
      else this.stats.climbs++;
      a = Math.min(a, start);
      b = Math.max(b, start + entry.len);
    }
    return false;
  }

  /** The change inside one text node: edit its data in place. */
  editText(old, full, path, a, b, delta) {
    const { entry, start } = path[path.length - 1];
    let pos = start + entry.len - entry.close;
    let text = null;
    let textStart = 0;
    for (let k = entry.kids.length - 1; k >= 0; k--) {
      const kid = entry.kids[k];
      pos -= kid.len;
      if (!kid.kids && pos <= a && b <= pos + kid.len) {
        text = kid;
        textStart = pos;
        break;
      }
      if (pos + kid.len < a) break;
    }
    if (!text) return false;
    const textEnd = textStart + text.len;
    // Whole character references only: widen to any "&...;" cut by the change.
    const amp = old.lastIndexOf("&", a - 1);
    if (amp >= textStart && amp >= a - 12 && !old.slice(amp, a).includes(";")) a = amp;
    const ampB = old.lastIndexOf("&", b - 1);
    if (ampB >= a && ampB >= b - 12 && !old.slice(ampB, b).includes(";")) {
      const semi = old.indexOf(";", b);
      if (semi < 0 || semi >= textEnd) return false;
      b = semi + 1;
    }
    const inserted = full.slice(a, b + delta);
    if (inserted.includes("<")) return false;
    // A newline just after <pre> would be dropped by a parse: let `reparse` decide.
    if (a === textStart && LEADING_LF.has(entry.node.localName) && entry.kids[0] === text && !entry.lf) {
      return false;
    }
    const after = decodeText(old.slice(b, textEnd));
    const removed = decodeText(old.slice(a, b));
    const added = decodeText(inserted);
    if (after === null || removed === null || added === null) return false;
    const node = text.node;
    const offset = node.length - after.length - removed.length;
    if (offset < 0) return false;
    if (!removed && offset === node.length) node.appendData(added);
    else node.replaceData(offset, removed.length, added);
    text.len += delta;
    for (let up = text.parent; up; up = up.parent) up.len += delta;
    if (!text.len) this.dropEmpty(text);
    this.stats.textEdits++;
    return true;
  }

  dropEmpty(text) {
    const siblings = text.parent.kids;
    siblings.splice(siblings.indexOf(text), 1);
    text.node.remove();
  }

  /** Re-parse the children of `entry` that [a, b) touches; "unbalanced" when the new
   * HTML is not a sequence of whole elements there, "mismatch" when the parser made
   * something else of it (then the caller tries the parent). */
  reparse(full, entry, start, a, b, delta) {
    // The children [first, last] that [a, b) touches (for an insertion, the one strictly
    // around it), or none and the place to insert at.
    let pos = start + entry.len - entry.close;
    let first = -1;
    let last = -1;
    let insertAt = entry.kids.length;
    let regionStart = a;
    let regionEnd = b;
    for (let k = entry.kids.length - 1; k >= 0; k--) {
      const kidEnd = pos;
      pos -= entry.kids[k].len;
      const overlaps = a === b ? pos < a && a < kidEnd : pos < b && kidEnd > a;
      if (overlaps) {
        if (last < 0) last = k;
        first = k;
        regionStart = Math.min(regionStart, pos);
        regionEnd = Math.max(regionEnd, kidEnd);
      } else if (kidEnd <= a) {
        if (last < 0) insertAt = k + 1;
        break;
      } else if (last < 0) {
        insertAt = k;
      }
    }
    if (last < 0) {
      first = insertAt;
      last = insertAt - 1;
    }
    const contentStart = start + entry.open;
    let html = full.slice(regionStart, regionEnd + delta);
    let lf = false;
    if (regionStart === contentStart && !entry.lf && html[0] === "\n" &&
        LEADING_LF.has(entry.node.localName) && entry !== this.map) {
      lf = true;
      html = html.slice(1);
    }
    if (!balanced(html)) return "unbalanced";
    const template = this.doc.createElement("template");
    template.innerHTML = html;
    this.stats.parsedChars += html.length;
    const nodes = [...template.content.childNodes];
    const mapped = mapNodes(html, 0, nodes, entry);
    if (!mapped || mapped.end !== html.length) return "mismatch";
    if (lf) {
      entry.open += 1;
      entry.lf = true;
    }
    const oldKids = entry.kids.slice(first, last + 1);
    for (const kid of oldKids) kid.node.remove();
    // (At the top, the next block may be in one of the view's wrappers.)
    const ref = entry.kids[last + 1]?.node ?? null;
    (ref ? ref.parentNode : entry.node).insertBefore(template.content, ref);
    entry.kids.splice(first, oldKids.length, ...mapped.entries);
    for (let up = entry; up; up = up.parent) up.len += delta;
    // A parse of the whole would have made one text node of text that now touches.
    const count = mapped.entries.length;
    this.merge(entry, first + count - 1);
    if (count) this.merge(entry, first - 1);
    for (const added of mapped.entries) if (added.kids) this.onInsert(added.node);
    this.stats.reparses++;
    return true;
  }

  /** Join the text node at `index` with a text node right after it (a parse of the
   * whole would have made one). */
  merge(entry, index) {
    const first = entry.kids[index];
    const second = entry.kids[index + 1];
    if (!first || !second || first.kids || second.kids) return;
    first.node.appendData(second.node.data);
    second.node.remove();
    first.len += second.len;
    entry.kids.splice(index + 1, 1);
  }

  insertParsed(parent, html, ref) {
    const template = this.doc.createElement("template");
    template.innerHTML = html;
    this.stats.parsedChars += html.length;
    const added = [...template.content.childNodes];
    parent.insertBefore(template.content, ref);
    for (const node of added) if (node.nodeType === ELEMENT_NODE) this.onInsert(node);
  }
}

// ---------------------------------------------------------------------------
// DOM

const LIVE = new Set(LIVE_STATUSES);

function h(doc, tag, className, attrs = {}) {
  const node = doc.createElement(tag);
  if (className) node.className = className;
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function copyText(doc, text) {
  if (globalThis.navigator?.clipboard?.writeText && globalThis.isSecureContext !== false) {
    return globalThis.navigator.clipboard.writeText(text);
  }
  // Fallback for insecure origins (a notebook served over plain http on a LAN).
  const area = h(doc, "textarea", "streamchat-offscreen");
  area.value = text;
  doc.body.appendChild(area);
  area.select();
  try {
    doc.execCommand("copy");
  } finally {
    area.remove();
  }
  return Promise.resolve();
}

/** Give every code block in `node` (or `node` itself) a bar with its language and a
 * copy button, once: the bar goes just before the <pre> (highlighted blocks come in a
 * div.streamchat-code, whose positioned box it sits in), marked as the view's own, so
 * the map of the HTML skips it. `later` is setTimeout with cleanup: the "Copied" label
 * must not outlive the view. */
function decorateCode(doc, node, later) {
  if (node.nodeType !== ELEMENT_NODE) return;
  const blocks = node.localName === "pre" ? [node] : node.querySelectorAll("pre");
  for (const pre of blocks) {
    const before = pre.previousSibling;
    if (before && DECORATION.has(before)) continue;
    // The bar sits above the code, never over its first line.
    const bar = decoration(h(doc, "div", "streamchat-code-bar"));
    const language = h(doc, "span", "streamchat-code-language");
    language.textContent = codeLanguage(pre.parentElement?.className);
    const button = h(doc, "button", "streamchat-copy", { type: "button", title: "Copy code" });
    button.textContent = "Copy";
    button.addEventListener("click", () => {
      // The block's <pre> as it is now (a streamed block's may have been re-parsed).
      let code = bar.nextSibling;
      while (code && code.localName !== "pre") code = code.nextSibling;
      const source = code?.querySelector("code") ?? code;
      copyWithFeedback(doc, button, source?.textContent ?? "", later);
    });
    bar.append(language, button);
    pre.parentNode.insertBefore(bar, pre);
  }
}

/** Listeners, model handlers and timers one view owns; `dispose` undoes them all. */
class Scope {
  constructor() {
    this.cleanups = [];
  }

  listen(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.cleanups.push(() => target.removeEventListener(type, handler, options));
  }

  onModel(model, name, handler) {
    model.on(name, handler);
    this.cleanups.push(() => model.off(name, handler));
  }

  later(callback, ms) {
    const id = setTimeout(callback, ms);
    this.cleanups.push(() => clearTimeout(id));
  }

  add(cleanup) {
    this.cleanups.push(cleanup);
  }

  dispose() {
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

// --- a part: one `body` or `reasoning` area ------------------------------------

/**
 * One area of an answer, its body or its reasoning: the frozen HTML, which only
 * grows, then the live tail that patches rewrite, and the typing cursor. Both live in
 * one container (`LiveHtml` applies the patches in place), so a commit moves nothing;
 * `state` keeps where the frozen part ends. The answer decides when the DOM catches up
 * (`show`). `node.streamchat` is this object, for tests and benchmarks (`live.stats`).
 */
class Part {
  constructor(doc, className, decorate = () => {}) {
    this.doc = doc;
    this.node = h(doc, "div", className);
    this.live = new LiveHtml(this.node, decorate);
    this.state = { frozen: "", tail: "" };
    /** Ops taken but not yet shown, and the frozen length the DOM shows. */
    this.pending = [];
    this.shownFrozen = 0;
    this.cursor = null;
    this.node.streamchat = this;
  }

  /** The HTML the patches so far make (the DOM may trail it until `show`). */
  get html() {
    return this.state.frozen + this.state.tail;
  }

  get empty() {
    return !this.state.frozen && !this.state.tail;
  }

  /** Show `state` ({frozen, tail}) as a whole: a finished answer, a snapshot. */
  set(state) {
    this.removeCursor();
    this.live.set(state.frozen + state.tail);
    this.state = state;
    this.pending = [];
    this.shownFrozen = state.frozen.length;
  }

  /** Take patch ops: the HTML moves on now, the DOM at the next `show`. True when a
   * block finished or everything was replaced (worth showing at once). */
  apply(ops) {
    const { state, appended, reset } = applyOps(this.state, ops);
    this.state = state;
    this.pending.push(...ops);
    return Boolean(appended || reset);
  }

  /** Apply the ops taken since the last `show` to the DOM, in place; true if any. */
  show() {
    if (!this.pending.length) return false;
    this.live.group(this.shownFrozen); // before any change: the layout is still clean
    this.removeCursor();
    this.live.apply(this.pending, this.shownFrozen);
    this.pending = [];
    this.shownFrozen = this.state.frozen.length;
    return true;
  }

  /** The answer ended: every finished block but the last into the view's wrappers. */
  seal() {
    this.live.group(this.live.html.length, true);
  }

  /** The typing cursor right after the last character; constant work per update. */
  placeCursor() {
    this.removeCursor();
    const cursor = decoration(h(this.doc, "span", "streamchat-cursor", { "aria-hidden": "true" }));
    const spot = cursorSpot(this.node);
    let ref = spot.ref;
    let split = null;
    if (typeof spot.split === "number") {
      // Keep a code block's trailing newline after the cursor; `removeCursor` joins
      // the text again, so the map of the HTML stays true.
      split = ref.splitText(spot.split);
      decoration(split);
      ref = split;
    }
    spot.parent.insertBefore(cursor, ref);
    this.cursor = { node: cursor, split };
  }

  removeCursor() {
    if (!this.cursor) return;
    const { node, split } = this.cursor;
    this.cursor = null;
    node.remove();
    if (split) {
      const head = split.previousSibling;
      if (head?.nodeType === TEXT_NODE) head.appendData(split.data);
      split.remove();
    }
  }
}

// --- an answer: one assistant turn ---------------------------------------------

/** A copy button's label says "Copied" for a moment, or that copying failed. */
function copyWithFeedback(doc, button, text, later) {
  copyText(doc, text).then(
    () => {
      button.textContent = "Copied";
      later(() => {
        button.textContent = "Copy";
      }, 1200);
    },
    () => {
      button.textContent = "Copy failed";
    },
  );
}

/**
 * Finished answers leave rendering while off screen (widget.css `.streamchat-settled`,
 * `content-visibility: auto`), as their finished blocks do (`LiveHtml.group`): each
 * update of a conversation's 30th answer then costs the browser about what one of its
 * first did. An answer settles once laid out, taking its laid-out height as its size
 * for when it is skipped before the browser remembers one (an answer shown whole, from
 * saved state, then scrolled away), so nothing moves. A ResizeObserver reads the height
 * the layout already computed (no forced layout) and waits for a view that is not in
 * the page yet, or hidden (a turn off stage), to be laid out. A live answer is never
 * settled: it is where the patches go.
 */
class Settler {
  /** @param {Document} doc */
  constructor(doc) {
    const view = doc.defaultView;
    this.observer = view?.ResizeObserver
      ? new view.ResizeObserver((entries) => this.measured(entries))
      : null;
  }

  /** @param {HTMLElement} node a finished answer */
  settle(node) {
    if (!node.classList.contains(SETTLED_CLASS)) this.observer?.observe(node);
  }

  /**
   * Measure settled answers again (their type size changed: the stage was left).
   * @param {Iterable<HTMLElement>} nodes
   */
  resettle(nodes) {
    for (const node of nodes) {
      if (!node.classList.contains(SETTLED_CLASS)) continue;
      this.unsettle(node);
      this.settle(node);
    }
  }

  /** @param {HTMLElement} node an answer going live again (a retry) */
  unsettle(node) {
    this.observer?.unobserve(node);
    node.classList.remove(SETTLED_CLASS);
    node.style.removeProperty("contain-intrinsic-block-size");
  }

  /** @param {ResizeObserverEntry[]} entries */
  measured(entries) {
    for (const { target, contentBoxSize, contentRect } of entries) {
      const height = contentBoxSize?.[0]?.blockSize ?? contentRect.height;
      if (!(height > 0)) continue; // not laid out yet
      this.observer?.unobserve(target);
      const node = /** @type {HTMLElement} */ (target);
      node.style.setProperty("contain-intrinsic-block-size", `auto ${height}px`);
      node.classList.add(SETTLED_CLASS);
    }
  }

  dispose() {
    this.observer?.disconnect();
    this.observer = null; // a seal frame after this settles nothing
  }
}

/**
 * One assistant turn: the reasoning fold, tool calls, the body, the error or note,
 * Retry and Copy. `host` gives what the answer needs from its conversation:
 * `model`, `later` (a timer undone with the view), `retry(id)`, and `settle(node)` /
 * `unsettle(node)` (`Settler`).
 */
class Answer {
  constructor(doc, host, turn) {
    this.doc = doc;
    this.host = host;
    this.id = turn.id;
    this.source = "";
    this.thoughtFor = null;
    this.live = false;
    this.awaitingSnapshot = false;
    this.stopped = false;
    this.timer = null;
    this.started = Date.now();
    this.reasoningToggled = false;
    this.reasoningAuto = undefined;
    /** The DOM catches up with the patches at an animation frame (`showSoon`). */
    this.frame = 0;
    this.wait = 0;
    this.shownAt = 0;
    this.sealFrame = 0;
    /** A typed answer's frames, played on animation frames (`play`). */
    this.player = new FramePlayer();
    this.playFrame = 0;
    this.build();
    this.fill(turn);
  }

  build() {
    const doc = this.doc;
    this.node = h(doc, "div", "streamchat-turn streamchat-assistant");
    const bubble = h(doc, "div", "streamchat-bubble");
    this.reasoning = h(doc, "details", "streamchat-reasoning");
    this.summary = h(doc, "summary", "streamchat-reasoning-summary");
    this.summary.textContent = "Reasoning";
    this.thought = new Part(doc, "streamchat-reasoning-body");
    this.reasoning.append(this.summary, this.thought.node);
    this.tools = h(doc, "ul", "streamchat-tools");
    this.thinking = h(doc, "div", "streamchat-thinking", { role: "status" });
    this.body = new Part(doc, "streamchat-body", (node) => decorateCode(doc, node, this.host.later));
    this.toolsAfter = h(doc, "ul", "streamchat-tools streamchat-tools-after");
    this.error = h(doc, "div", "streamchat-error", { role: "alert" });
    this.errorText = h(doc, "span", "streamchat-error-text");
    this.retry = h(doc, "button", "streamchat-retry", { type: "button" });
    this.retry.textContent = "Retry";
    this.retry.addEventListener("click", () => this.host.retry(this.id));
    this.error.append(this.errorText, this.retry);
    this.footer = h(doc, "div", "streamchat-footer");
    this.stats = h(doc, "span", "streamchat-stats");
    this.disclaimer = h(doc, "span", "streamchat-disclaimer");
    this.copyAnswer = h(doc, "button", "streamchat-copy-answer", {
      type: "button",
      title: "Copy the answer as Markdown",
    });
    this.copyAnswer.textContent = "Copy";
    this.copyAnswer.addEventListener("click", () => {
      const text = answerClipboard(this.source, this.host.model.get("disclaimer"));
      copyWithFeedback(doc, this.copyAnswer, text, this.host.later);
    });
    this.footer.append(this.stats, this.disclaimer, this.copyAnswer);
    bubble.append(
      this.reasoning, this.tools, this.thinking, this.body.node, this.toolsAfter, this.error,
      this.footer,
    );
    this.node.appendChild(bubble);
    this.reasoning.addEventListener("toggle", () => {
      if (this.live && this.reasoningAuto !== this.reasoning.open) this.reasoningToggled = true;
    });
  }

  /** Show a turn from the `turns` trait (a finished turn, or the start of a live one). */
  fill(turn) {
    this.id = turn.id;
    const live = turn.status === TURN_STATUS.STREAMING && !this.stopped;
    const wasLive = this.live;
    this.live = live;
    this.node.dataset.status = this.stopped ? TURN_STATUS.STOPPED : turn.status;
    if (live) {
      this.host.unsettle(this.node);
      this.node.setAttribute("aria-busy", "true");
    } else {
      this.node.removeAttribute("aria-busy");
      this.showFinal(turn, wasLive);
    }
    this.source = turn.source ?? "";
    if (typeof turn.stats?.reasoning_seconds === "number") {
      this.thoughtFor = turn.stats.reasoning_seconds;
    }
    this.setTools(turn.tool_calls);
    this.setReasoningVisibility();
    this.updateThinking();
    const { ERROR, STOPPED, DONE } = TURN_STATUS;
    const failed = turn.status === ERROR || turn.status === STOPPED || this.stopped;
    this.error.hidden = !failed || live;
    this.setError(
      turn.status === ERROR ? turn.error || "The answer failed." : turn.note || "Stopped.",
    );
    this.copyAnswer.hidden = live || !this.source;
    this.footer.hidden = live;
    this.stats.textContent = formatStats(turn.stats);
    const disclaimer = this.host.model.get("disclaimer");
    this.disclaimer.textContent = disclaimer;
    this.disclaimer.hidden = !disclaimer || turn.status !== DONE;
  }

  /** A finished turn's HTML. A view that applied every patch already shows it: its DOM
   * (and any selection the person made) is left alone. A locally stopped view keeps
   * what it showed when Stop was clicked. */
  showFinal(turn, wasLive) {
    this.flushFrames();
    this.showNow();
    if (!this.stopped && (this.body.html !== (turn.html ?? "") || !wasLive)) {
      this.body.set({ frozen: turn.html ?? "", tail: "" });
    }
    if (this.thought.html !== (turn.reasoning_html ?? "")) {
      this.thought.set({ frozen: turn.reasoning_html ?? "", tail: "" });
    }
    this.body.removeCursor();
    if (wasLive) this.sealSoon();
    else this.host.settle(this.node);
  }

  /** At the next frame (the layout is clean then), the finished blocks the answer
   * typed go into the view's wrappers. */
  sealSoon() {
    if (this.sealFrame) return;
    this.sealFrame = this.doc.defaultView.requestAnimationFrame(() => {
      this.sealFrame = 0;
      this.body.seal();
      this.thought.seal();
      if (!this.live) this.host.settle(this.node);
    });
  }

  /** Apply a kernel message addressed to this turn; true when the DOM changed. */
  receive(message) {
    if (message.type === KERNEL_MESSAGE.PATCH) return this.applyPatch(message.part, message.ops);
    if (message.type === KERNEL_MESSAGE.FRAMES) return this.applyFrames(message);
    if (message.type === KERNEL_MESSAGE.SNAPSHOT) return this.applySnapshot(message);
    if (message.type === KERNEL_MESSAGE.TOOLS && this.live && !this.stopped) {
      this.setTools(message.tool_calls);
    }
    return false;
  }

  applyPatch(partName, ops) {
    if (!this.live || this.stopped || this.awaitingSnapshot) return false;
    const urgent = this.flushFrames(partName); // a patch follows the frames sent before it
    const part = partName === PART.BODY ? this.body : this.thought;
    this.showSoon(part.apply(ops) || urgent);
    return false; // the DOM changes (and the log scrolls) when it is shown
  }

  /** Queue a typed answer's frames to play on time; a stop drops them in every view.
   * @param {FramesMessage} message */
  applyFrames(message) {
    if (message.stop) {
      this.dropFrames();
      if (this.live && !this.stopped) this.stopHere();
      return false;
    }
    if (message.retime) {
      this.player.retime(message.retime, this.doc.defaultView.performance.now());
      return false;
    }
    if (!this.live || this.stopped || this.awaitingSnapshot) return false;
    this.player.push(message.part, message.frames, this.doc.defaultView.performance.now());
    this.playSoon();
    return false;
  }

  playSoon() {
    if (this.playFrame || !this.player.size) return;
    this.playFrame = this.doc.defaultView.requestAnimationFrame((now) => this.play(now));
  }

  /** At an animation frame: apply the frames due and show them, as one update. */
  play(now) {
    this.playFrame = 0;
    const frames = this.player.due(now);
    if (frames.length) {
      let urgent = false;
      for (const { part, ops } of frames) urgent = this.partNamed(part).apply(ops) || urgent;
      const size = Math.max(this.body.state.tail.length, this.thought.state.tail.length);
      if (urgent || (!this.wait && Date.now() - this.shownAt >= showInterval(size))) this.showNow(true);
      else this.showSoon(false);
    }
    this.playSoon();
  }

  partNamed(name) {
    return name === PART.REASONING ? this.thought : this.body;
  }

  /** Apply every frame held (of `part` only, if given) at once: a patch or the
   * answer's end follows them. True when a block finished; the DOM catches up at the
   * next `showNow`. */
  flushFrames(only = null) {
    let urgent = false;
    for (const { part, ops } of this.player.flush(only)) {
      urgent = this.partNamed(part).apply(ops) || urgent;
    }
    return urgent;
  }

  dropFrames() {
    this.player.drop();
    if (this.playFrame) this.doc.defaultView.cancelAnimationFrame(this.playFrame);
    this.playFrame = 0;
  }

  /** Show the ops taken at the next frame, or, while the open block is large, once
   * `showInterval` passed since the last time; a finished block shows at once. */
  showSoon(urgent) {
    if (this.frame || (this.wait && !urgent)) return;
    clearTimeout(this.wait);
    this.wait = 0;
    const win = this.doc.defaultView;
    const interval = showInterval(Math.max(this.body.state.tail.length, this.thought.state.tail.length));
    const delay = urgent ? 0 : this.shownAt + interval - Date.now();
    const frame = () => {
      this.wait = 0;
      this.frame = win.requestAnimationFrame(() => this.showNow(true));
    };
    if (delay > 0) this.wait = setTimeout(frame, delay);
    else frame();
  }

  /** Bring the DOM up to date with every op taken; `inFrame` at an animation frame,
   * where the log scrolls to the new end in the same frame (not one frame later, with
   * the new text below the view for a frame). */
  showNow(inFrame = false) {
    if (this.frame) this.doc.defaultView.cancelAnimationFrame(this.frame);
    clearTimeout(this.wait);
    this.frame = 0;
    this.wait = 0;
    this.shownAt = Date.now();
    const changed = this.body.show();
    this.thought.show();
    if (!this.live || this.stopped) return;
    if (changed || !this.body.cursor) this.body.placeCursor();
    this.setReasoningVisibility();
    this.updateThinking();
    this.host.scrollToEnd(inFrame);
  }

  /** @param {SnapshotMessage} message */
  applySnapshot(message) {
    if (!this.live || this.stopped) return false;
    this.dropFrames(); // the snapshot holds them
    this.awaitingSnapshot = false;
    this.body.set(splitSnapshot(message.body, message.body_tail));
    this.thought.set(splitSnapshot(message.reasoning, message.reasoning_tail));
    this.setTools(message.tool_calls);
    this.body.placeCursor();
    this.setReasoningVisibility();
    this.updateThinking();
    return true;
  }

  /** Stop showing the live answer at once (what the person sees stops now). */
  stopHere() {
    this.dropFrames(); // frames not played yet never show
    this.showNow(); // what came before the click
    this.stopped = true;
    this.live = false;
    this.body.removeCursor();
    this.stopTimer();
    this.thinking.hidden = true;
    this.node.dataset.status = TURN_STATUS.STOPPED;
    this.node.removeAttribute("aria-busy");
    this.setError("Stopped.");
    this.error.hidden = false;
  }

  setTools(calls) {
    const item = (call) => {
      const node = h(this.doc, "li", "streamchat-tool");
      const code = h(this.doc, "code", "streamchat-tool-call");
      code.textContent = toolLabel(call);
      node.appendChild(code);
      return node;
    };
    const { before, after } = toolsByPlace(calls);
    this.tools.replaceChildren(...before.map(item));
    this.tools.hidden = !before.length;
    this.toolsAfter.replaceChildren(...after.map(item));
    this.toolsAfter.hidden = !after.length;
  }

  updateThinking() {
    const show = this.live && !this.stopped && this.body.empty && this.thought.empty;
    this.thinking.hidden = !show;
    if (show && this.timer === null) {
      const tick = () => {
        this.thinking.textContent = `Thinking… ${formatElapsed(Date.now() - this.started)}`;
      };
      tick();
      this.timer = setInterval(tick, 100);
    } else if (!show) {
      this.stopTimer();
    }
  }

  stopTimer() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  setReasoningVisibility() {
    const has = !this.thought.empty;
    this.reasoning.hidden = !has;
    if (!has) return;
    if (this.reasoningToggled) {
      if (!this.live) this.summary.textContent = reasoningLabel(this.thoughtFor);
      return;
    }
    // Open while the model is only thinking; fold once the answer itself starts.
    const answering = !this.body.empty || !this.live;
    if (answering && this.live && this.thoughtFor === null) {
      this.thoughtFor = (Date.now() - this.started) / 1000;
    }
    this.summary.textContent = reasoningLabel(answering ? this.thoughtFor : null);
    this.reasoningAuto = !answering;
    this.reasoning.open = !answering;
  }

  /** Plain words in bold, then the fix, then the technical detail in small print. */
  setError(message) {
    const { what, fix, detail } = errorParts(message);
    const strong = h(this.doc, "strong", "streamchat-error-what");
    strong.textContent = what;
    const parts = [strong];
    for (const [text, name] of [[fix, "streamchat-error-fix"], [detail, "streamchat-error-detail"]]) {
      if (!text) continue;
      const line = h(this.doc, "span", name);
      line.textContent = text;
      parts.push(line);
    }
    this.errorText.replaceChildren(...parts);
  }

  dispose() {
    this.stopTimer();
    this.dropFrames();
    if (this.frame) this.doc.defaultView.cancelAnimationFrame(this.frame);
    if (this.sealFrame) this.doc.defaultView.cancelAnimationFrame(this.sealFrame);
    clearTimeout(this.wait);
    this.host.unsettle(this.node);
    this.node.remove();
  }
}

// --- stage: the presenter's chat (issue 24) ---------------------------------------

const SCALE_KEY = "streamchat-stage-scale";

/** The scale the presenter set this session (sessionStorage: it stays across views and
 * reloads of the page, not into the next session). */
function storedScale(win) {
  try {
    return stageScale(Number.parseFloat(win.sessionStorage.getItem(SCALE_KEY) ?? ""));
  } catch {
    return STAGE_SCALE.initial; // storage blocked (a sandboxed frame)
  }
}

function storeScale(win, scale) {
  try {
    win.sessionStorage.setItem(SCALE_KEY, String(scale));
  } catch {
    // the scale then lasts as long as this view
  }
}

/**
 * The chat on stage: it fills the screen (the Fullscreen API after a click, the whole
 * window otherwise) in large type, one question and answer at a time, the controls
 * out of the way. The preset prompts are a deck: `command` runs what a key asks.
 */
class Stage {
  constructor(conversation) {
    this.chat = conversation;
    this.doc = conversation.doc;
    this.win = this.doc.defaultView;
    this.on = false;
    this.shown = null; // index of the answer shown; null: the newest
    this.next = 0; // the deck prompt Right sends
    this.scale = storedScale(this.win);
    this.build();
  }

  build() {
    const doc = this.doc;
    this.button = h(doc, "button", "streamchat-stage-button", {
      type: "button", title: "Show this chat to a room: full screen, large type, a prompt deck",
    });
    this.button.textContent = "Stage";
    this.bar = h(doc, "div", "streamchat-stage-bar", { role: "toolbar", "aria-label": "Stage" });
    const button = (label, title, onClick) => {
      const node = h(doc, "button", "streamchat-stage-control", { type: "button", title });
      node.textContent = label;
      this.chat.scope.listen(node, "click", () => {
        onClick();
        this.chat.root.focus({ preventScroll: true }); // the bar fades again; keys still work
      });
      return node;
    };
    this.position = h(doc, "span", "streamchat-deck-position", { title: "Deck prompts asked" });
    this.bar.append(
      this.position,
      button("A\u2212", "Smaller type (-)", () => this.zoom(-1)),
      button("A+", "Larger type (+)", () => this.zoom(1)),
      button("Instant", "Show the rest of the answer at once (I)", () => this.chat.instant()),
      button("\u2715", "Leave the stage (Escape)", () => this.leave()),
    );
    this.bar.hidden = true;
    this.chat.scope.listen(this.button, "click", () => this.enter(true));
    this.chat.scope.listen(this.doc, "fullscreenchange", () => {
      // Where the Escape key cannot be kept (no Keyboard Lock), the browser leaves
      // fullscreen on it without a key event: that Escape stops a live answer and the
      // stage stays, filling the window; otherwise it leaves.
      if (this.on && this.fullscreen && !this.isFullscreen()) {
        this.fullscreen = false;
        if (LIVE.has(this.chat.status())) this.chat.stopNow();
        else this.leave();
      }
    });
    this.chat.scope.add(() => this.on && this.leave());
  }

  /** Go on stage; `click` says a person's click asked, so the Fullscreen API may work. */
  enter(click = false) {
    const { root } = this.chat;
    if (!this.on) {
      this.on = true;
      this.shown = null;
      const questions = (this.chat.model.get("turns") ?? []).filter((t) => t.role === ROLE.USER);
      this.next = deckStart(questions.map((turn) => turn.text ?? ""), this.prompts());
      // Out of the host's boxes: a notebook's cell may hold position: fixed in (a
      // transform or containment makes it the containing block), so the chat waits on
      // the page's body, a placeholder keeping its place. In a shadow root (marimo) the
      // styles are the shadow's: the chat stays there.
      if (root.getRootNode() === this.doc && this.doc.body) {
        this.home = this.doc.createComment("streamchat on stage");
        root.before(this.home);
        this.doc.body.append(root);
      }
      root.classList.add("streamchat-on-stage");
      root.setAttribute("tabindex", "-1");
      this.bar.hidden = false;
      this.setScale(this.scale);
    }
    if (click && root.requestFullscreen && !this.isFullscreen()) {
      root.requestFullscreen().then(
        () => {
          this.fullscreen = true;
          // Escape is the stage's (stop, then leave), not the browser's exit (Chromium's
          // Keyboard Lock; holding Escape still exits). https://wicg.github.io/keyboard-lock/
          this.win.navigator.keyboard?.lock?.(["Escape"]).catch(() => {});
        },
        () => {}, // not allowed here (an iframe without allowfullscreen): the window it is
      );
    }
    root.focus({ preventScroll: true });
    this.refresh();
  }

  leave() {
    if (!this.on) return;
    this.on = false;
    const { root } = this.chat;
    root.classList.remove("streamchat-on-stage", "streamchat-stage-blank");
    root.style.removeProperty("--streamchat-stage-scale");
    this.bar.hidden = true;
    let exited;
    if (this.fullscreen && this.isFullscreen()) {
      this.win.navigator.keyboard?.unlock?.();
      exited = this.doc.exitFullscreen?.();
    }
    this.fullscreen = false;
    for (const node of root.querySelectorAll(".streamchat-stage-current")) {
      node.classList.remove("streamchat-stage-current");
    }
    if (this.home) {
      this.home.replaceWith(root);
      this.home = null;
    }
    // Answers shown on stage were laid out at its type size and width: their remembered
    // heights are the stage's, so they are measured again at the chat's, once the
    // window has left full screen.
    const resettle = () => this.chat.settler.resettle(root.querySelectorAll(`.${SETTLED_CLASS}`));
    Promise.resolve(exited).then(resettle, resettle);
    this.chat.scrollToEnd();
  }

  prompts() {
    return this.chat.model.get("prompts") ?? [];
  }

  /** Whether the chat is the fullscreen element; in a shadow root (marimo) the
   * document names the shadow's host, the shadow root the chat itself. */
  isFullscreen() {
    return this.chat.root.getRootNode().fullscreenElement === this.chat.root;
  }

  zoom(steps) {
    this.setScale(stageScale(this.scale, steps));
    storeScale(this.win, this.scale);
  }

  setScale(scale) {
    this.scale = scale;
    this.chat.root.style.setProperty("--streamchat-stage-scale", String(scale));
  }

  /** Run a stage key's command; true when the key was the stage's. */
  command(name) {
    const { chat } = this;
    const live = LIVE.has(chat.status());
    if (name === "escape") {
      if (live) chat.stopNow();
      else this.leave();
    } else if (name === "blank") {
      chat.root.classList.toggle("streamchat-stage-blank");
    } else if (name === "reveal") {
      chat.instant();
    } else if (name === "bigger" || name === "smaller") {
      this.zoom(name === "bigger" ? 1 : -1);
    } else if (name === "next" || name === "back") {
      const answers = chat.answers().length;
      const shown = this.shown ?? answers - 1;
      const move = deckMove(name === "next" ? 1 : -1, {
        shown, answers, next: this.next, total: this.prompts().length, live,
      });
      if (move.action === "show") {
        this.shown = move.index === answers - 1 ? null : move.index;
      } else if (move.action === "ask" && chat.sendPrompt(this.prompts()[move.index])) {
        this.next = move.index + 1;
        this.shown = null;
      }
    } else {
      return false;
    }
    this.refresh();
    return true;
  }

  /** Mark the exchange on stage (the shown answer and its question); the rest hides. */
  refresh() {
    if (!this.on) return;
    const { views, log } = this.chat;
    const answers = this.chat.answers();
    const answer = this.shown === null ? answers[answers.length - 1] : answers[this.shown];
    const index = views.indexOf(answer);
    const pending = log.querySelector(".streamchat-pending");
    views.forEach((view, at) => {
      const current = !pending && (at === index || (at === index - 1 && view instanceof Question));
      view.node.classList.toggle("streamchat-stage-current", current);
    });
    this.position.textContent = deckLabel(this.next, this.prompts().length);
    this.position.hidden = !this.prompts().length;
    if (this.shown === null) this.chat.scrollToEnd();
    else log.scrollTop = 0;
  }
}

// --- the conversation: turns, prompt box, controls --------------------------------

/** A question's bubble; never HTML: the prompt is the person's own text. */
class Question {
  constructor(doc, text, pending = false) {
    const pendingClass = pending ? " streamchat-pending" : "";
    this.node = h(doc, "div", `streamchat-turn streamchat-user${pendingClass}`);
    const bubble = h(doc, "div", "streamchat-bubble");
    bubble.textContent = text;
    this.node.appendChild(bubble);
  }

  dispose() {
    this.node.remove();
  }
}

// The pace controls live in the widget itself, bound to the `speed` and `step`
// traits, so every host that renders an anywidget (marimo too) has them.
const SLIDERS = {
  speed: { label: "Speed", unit: "chars/s", min: 0, max: 600, step: 5,
    title: "Characters per second (0 = as fast as they arrive)" },
  step: { label: "Step", unit: "at a time", min: 1, max: 20, step: 1,
    title: "Characters revealed at a time" },
};

/** A range input bound to the trait `name`, both ways. */
function slider(doc, model, scope, name) {
  const spec = SLIDERS[name];
  const label = h(doc, "label", `streamchat-slider streamchat-${name}`, { title: spec.title });
  const text = h(doc, "span", "streamchat-slider-label");
  text.textContent = spec.label;
  const range = h(doc, "input", "streamchat-range", { type: "range", step: String(spec.step) });
  const value = h(doc, "output", "streamchat-slider-value");
  const unit = h(doc, "span", "streamchat-slider-unit");
  unit.textContent = spec.unit;
  label.append(text, range, value, unit);
  const show = () => {
    const current = Number(model.get(name));
    const bounds = sliderBounds(current, spec);
    range.min = String(bounds.min);
    range.max = String(bounds.max);
    range.value = String(current);
    value.textContent = String(current);
  };
  scope.listen(range, "input", () => {
    value.textContent = range.value;
    model.set(name, Number(range.value));
    model.save_changes();
  });
  scope.onModel(model, `change:${name}`, show);
  show();
  return label;
}

/** The prompt box with Send and Stop. */
function promptForm(doc) {
  const form = h(doc, "div", "streamchat-form");
  const input = h(doc, "textarea", "streamchat-input", {
    rows: "2",
    placeholder: "Ask something… (Enter sends, Shift+Enter for a new line)",
    "aria-label": "Prompt",
  });
  const send = h(doc, "button", "streamchat-send", { type: "button" });
  send.textContent = "Send";
  const stop = h(doc, "button", "streamchat-stop", { type: "button" });
  stop.textContent = "Stop";
  const instant = h(doc, "button", "streamchat-instant", {
    type: "button", title: "Show the rest of the answer at once (I)",
  });
  instant.textContent = "Instant";
  form.append(input, send, stop, instant);
  return { form, input, send, stop, instant };
}

/** Enter and Shift+Enter in the prompt box: send, or a newline. */
function promptKey(event, input, submit) {
  if (event.key !== "Enter") return;
  if (shouldSend(event)) {
    event.preventDefault();
    submit();
  } else if (event.shiftKey && !event.isComposing) {
    // JupyterLab cancels line breaks typed anywhere inside a cell (its guard
    // against Shift+Enter running *and* typing), so insert the newline here.
    event.preventDefault();
    input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }
}

/**
 * The whole chat in one view: the list of turns (built from the `turns` trait and
 * kept up to date by the kernel's messages), the prompt box, the preset prompts, the
 * pace controls and the connection notice.
 */
class Conversation {
  constructor(model, el) {
    this.model = model;
    this.doc = el.ownerDocument;
    this.scope = new Scope();
    /** Per turn index: a Question or an Answer, with `sig` (turnSignature). */
    this.views = [];
    this.follow = true;
    /** Where our last scroll to the end left the log (null: none yet). */
    this.autoTop = null;
    this.scrollFrame = 0;
    this.localStop = false;
    this.disconnected = false;
    this.firstRender = true;
    /** Turns whose HTML this view asked the kernel for (`resend`), once each. */
    this.resent = new Set();
    this.answerHost = {
      model,
      later: (callback, ms) => this.scope.later(callback, ms),
      scrollToEnd: (now) => this.scrollToEnd(now),
      retry: (id) => this.tell({ type: BROWSER_MESSAGE.RETRY, turn: id }),
      settle: (node) => this.settler.settle(node),
      unsettle: (node) => this.settler.unsettle(node),
    };
    this.settler = new Settler(this.doc);
    this.scope.add(() => this.settler.dispose());
    this.build(el);
    this.wire();
    this.renderPrompts();
    this.renderTurns();
    this.firstRender = false;
  }

  build(el) {
    const doc = this.doc;
    this.root = h(doc, "div", "streamchat");
    this.log = h(doc, "div", "streamchat-log", { role: "log", "aria-live": "polite" });
    this.presets = h(doc, "div", "streamchat-prompts");
    const { form, input, send, stop, instant } = promptForm(doc);
    Object.assign(this, { input, send, stop, instantButton: instant });
    this.stage = new Stage(this);
    const controls = h(doc, "div", "streamchat-controls");
    controls.append(
      slider(doc, this.model, this.scope, "speed"),
      slider(doc, this.model, this.scope, "step"),
      this.stage.button,
    );
    this.notice = h(doc, "div", "streamchat-notice", { role: "alert" });
    this.notice.hidden = true;
    // "Jump to latest" floats over the log's bottom edge, out of the flow: showing it
    // moves nothing.
    const logBox = h(doc, "div", "streamchat-log-box");
    this.jump = h(doc, "button", "streamchat-jump", { type: "button", title: "Follow the newest text" });
    this.jump.textContent = "↓ Jump to latest";
    this.jump.hidden = true;
    logBox.append(this.log, this.jump);
    this.root.append(logBox, this.presets, this.notice, form, controls, this.stage.bar);
    el.appendChild(this.root);
  }

  wire() {
    const { scope, model } = this;
    scope.listen(this.log, "scroll", () => this.onScroll());
    scope.listen(this.jump, "click", () => {
      this.follow = true;
      this.jump.hidden = true;
      this.scrollNow();
    });
    scope.add(() => this.scrollFrame && this.doc.defaultView.cancelAnimationFrame(this.scrollFrame));
    // Keys pressed in the widget are the widget's, in every host. Listening on the
    // window at capture phase runs before any host listener (Notebook 7 and JupyterLab
    // handle shortcuts on the document at capture phase, so a listener on the widget
    // would come too late); stopping the event there keeps it from every host handler,
    // while the browser's default action (typing, moving a slider) still happens.
    // composedPath() sees into shadow roots (marimo renders the widget in one).
    // On stage the chat fills the screen: every key is its own, wherever the focus is.
    const onKey = (event) => {
      const path = event.composedPath();
      if (!(this.stage.on || path.includes(this.root)) || !ownsKey(event)) return;
      event.stopPropagation();
      if (path[0] === this.input) {
        if (event.type === "keydown") promptKey(event, this.input, () => this.submit());
        return;
      }
      const command = stageCommand(event);
      if (!command || (!this.stage.on && command !== "reveal")) return;
      event.preventDefault(); // Space must not click the focused button, nor arrows scroll
      if (event.type !== "keydown") return;
      if (this.stage.on) this.stage.command(command);
      else this.instant();
    };
    for (const type of ["keydown", "keypress", "keyup"]) {
      scope.listen(this.doc.defaultView, type, onKey, true);
    }
    scope.listen(this.send, "click", () => {
      this.submit();
      this.input.focus();
    });
    scope.listen(this.stop, "click", () => this.stopNow());
    scope.listen(this.instantButton, "click", () => this.instant());
    scope.onModel(model, "change:turns", () => this.renderTurns());
    scope.onModel(model, "change:status", () => {
      if (!LIVE.has(model.get("status"))) this.localStop = false;
      this.syncStatus();
      this.placeRetry();
    });
    // ipywidgets closes a model whose comm closed (the kernel went away); the host's
    // kernel connection says so sooner, on restart or shut-down.
    scope.onModel(model, "comm:close", () => this.showDisconnected());
    scope.add(watchKernel(model.widget_manager, () => this.showDisconnected()));
    scope.onModel(model, "change:prompts", () => this.renderPrompts());
    scope.onModel(model, "change:disclaimer", () => this.renderDisclaimer());
    scope.onModel(model, "msg:custom", (message) => this.onCustom(message));
  }

  status() {
    const now = this.model.get("status");
    return this.localStop && LIVE.has(now) ? CHAT_STATUS.STOPPED : now;
  }

  syncStatus() {
    const now = this.status();
    this.root.dataset.status = now;
    this.stop.disabled = !LIVE.has(now);
    this.instantButton.disabled = !LIVE.has(now);
  }

  /** The reader's scroll (or ours): follow while at the bottom, stay put above it. Our
   * own scroll to the end counts as at the bottom even if text grew since. */
  onScroll() {
    const { log } = this;
    const top = log.scrollTop;
    const ours = this.autoTop !== null && top >= this.autoTop - 1;
    this.follow = ours || nearBottom(top, log.clientHeight, log.scrollHeight);
    this.jump.hidden = this.follow;
  }

  /** Keep the newest text in view, once a frame at most: the scroll reads the layout
   * the frame computes anyway, instead of forcing one per message. `now`: the caller
   * changed the DOM at an animation frame, so the scroll goes into this frame (the
   * layout it reads is the one the frame would compute next). */
  scrollToEnd(now = false) {
    if (!this.follow) return;
    if (now) {
      if (this.scrollFrame) this.doc.defaultView.cancelAnimationFrame(this.scrollFrame);
      this.scrollFrame = 0;
      this.scrollNow();
      return;
    }
    if (this.scrollFrame) return;
    this.scrollFrame = this.doc.defaultView.requestAnimationFrame(() => {
      this.scrollFrame = 0;
      this.scrollNow();
    });
  }

  scrollNow() {
    if (!this.follow) return;
    const { log } = this;
    log.scrollTop = log.scrollHeight;
    this.autoTop = log.scrollTop;
  }

  answers() {
    return this.views.filter((view) => view instanceof Answer);
  }

  /** Finished answers' HTML by turn id: the model's `finished`, added to in place. A
   * `set` would upload the whole of it to the kernel at the next `save_changes` (a
   * slider); in place, it is still in the widget state the page saves. */
  finished() {
    const stored = this.model.get("finished");
    if (stored && typeof stored === "object") return stored;
    this.localFinished ??= {};
    return this.localFinished;
  }

  /** A turn with its answer's HTML, from the model's `finished`. */
  withHtml(turn) {
    const stored = turn.id != null ? this.finished()[turn.id] : undefined;
    if (!stored && turn.id != null && !LIVE.has(turn.status)) this.resend(turn.id);
    return stored ? { ...turn, ...stored } : turn;
  }

  /** Ask the kernel for a finished answer's HTML (this view holds no checked copy). */
  resend(id) {
    if (this.resent.has(id)) return;
    this.resent.add(id);
    this.tell({ type: BROWSER_MESSAGE.RESEND, turn: id });
  }

  /** Keep the HTML `answer` built from the patches in `finished`, if it is the
   * kernel's (same sizes); otherwise ask for the kernel's.
   * @param {EndedMessage} message */
  keepAnswer(answer, message) {
    const html = answer.body.html;
    const reasoning = answer.thought.html;
    const checked =
      answer.live &&
      !answer.stopped &&
      !answer.awaitingSnapshot &&
      html.length === message.html_size &&
      reasoning.length === message.reasoning_size;
    if (checked) {
      this.finished()[message.turn] = { html, reasoning_html: reasoning, source: message.source };
    } else {
      this.resend(message.turn);
    }
  }

  /** The ended turn's new fields (status, stats...) into the model's `turns`, in place:
   * the kernel does not re-send the list at a turn end (it grows with the conversation).
   * @param {EndedMessage} message */
  endTurn(message) {
    const turn = (this.model.get("turns") ?? []).find((each) => each.id === message.turn);
    if (!turn) return;
    Object.assign(turn, message.fields);
    this.renderTurns();
  }

  renderTurns() {
    const turns = this.model.get("turns") ?? [];
    for (const pending of this.log.querySelectorAll(".streamchat-pending")) pending.remove();
    while (this.views.length > turns.length) this.views.pop().dispose();
    let asked = false;
    turns.forEach((synced, index) => {
      const turn = synced.role === ROLE.ASSISTANT ? this.withHtml(synced) : synced;
      asked = this.renderTurn(index, turn) || asked;
    });
    if (asked) this.tell({ type: BROWSER_MESSAGE.HELLO });
    this.placeRetry();
    if (!LIVE.has(this.model.get("status"))) this.localStop = false;
    this.syncStatus();
    this.stage.refresh();
    this.scrollToEnd();
  }

  /** Bring the view at `index` up to date with `turn`; true when it needs a snapshot. */
  renderTurn(index, turn) {
    const sig = turnSignature(turn);
    let view = this.views[index];
    if (view && view.sig === sig) return false;
    const kind = turn.role === ROLE.USER ? Question : Answer;
    if (view && !(view instanceof kind)) {
      view.dispose();
      view = undefined;
    }
    let asked = false;
    if (turn.role === ROLE.USER) {
      const node = new Question(this.doc, turn.text ?? "");
      if (view) view.node.replaceWith(node.node);
      else this.log.appendChild(node.node);
      view = node;
    } else if (!view) {
      view = new Answer(this.doc, this.answerHost, turn);
      this.log.appendChild(view.node);
      // A turn already live when this view first saw it: its earlier patches went
      // to other views, so ask the kernel for the whole of it.
      if (view.live && this.firstRender) {
        view.awaitingSnapshot = true;
        asked = true;
      }
    } else {
      view.fill(turn);
    }
    view.sig = sig;
    this.views[index] = view;
    return asked;
  }

  /** @param {PatchWire | Array | Exclude<KernelMessage, PatchMessage | FramesMessage>} received */
  onCustom(received) {
    /** @type {KernelMessage} */
    const message = decodeMessage(received);
    if (message.type === KERNEL_MESSAGE.STAGE) {
      if (message.on) this.stage.enter();
      else this.stage.leave();
      return;
    }
    if (message.type === KERNEL_MESSAGE.FINISHED) {
      const { html, reasoning_html, source } = message;
      this.finished()[message.turn] = { html, reasoning_html, source };
      this.renderTurns();
      return;
    }
    const answer = this.answers().find((each) => each.id === message.turn);
    if (message.type === KERNEL_MESSAGE.ENDED) {
      answer?.flushFrames(); // the frames before the end, all of them
      if (answer) this.keepAnswer(answer, message);
      else this.resend(message.turn);
      this.endTurn(message);
    } else if (answer?.receive(message)) {
      this.scrollToEnd();
    }
  }

  /**
   * Send a message to the kernel; false (and the widget says why) when it is gone.
   * @param {BrowserMessage} message
   */
  tell(message) {
    if (this.disconnected) return false;
    try {
      this.model.send(message);
      return true;
    } catch {
      // A restarted or shut-down kernel: the comm is disposed and send throws.
      this.showDisconnected();
      return false;
    }
  }

  /** Send what the prompt box holds; clear it once it went to the kernel. */
  submit() {
    if (this.sendPrompt(this.input.value)) this.input.value = "";
  }

  /** Ask `text`; true when it went to the kernel (the caller may clear the box). */
  sendPrompt(text) {
    const prompt = text.trim();
    if (!prompt || this.disconnected) return false;
    const pending = new Question(this.doc, prompt, true);
    this.log.appendChild(pending.node);
    if (!this.tell({ type: BROWSER_MESSAGE.SEND, prompt })) {
      pending.dispose();
      return false;
    }
    this.localStop = false;
    this.follow = true;
    this.jump.hidden = true;
    this.scrollToEnd();
    return true;
  }

  showDisconnected() {
    if (this.disconnected) return;
    this.disconnected = true;
    this.root.dataset.connection = "lost";
    this.notice.textContent =
      "This chat has lost its kernel (restarted or shut down), so it cannot answer. " +
      "Run its cell again for a new chat; the conversation above stays as it was.";
    this.notice.hidden = false;
    this.stopLocally();
    for (const control of this.root.querySelectorAll("textarea, button, input")) {
      // Copying (a code block, an answer) needs no kernel.
      const copies = control.classList.contains("streamchat-copy") ||
        control.classList.contains("streamchat-copy-answer");
      if (!copies) control.disabled = true;
    }
    this.syncStatus();
  }

  /** Stop showing the live answer at once; returns the answer that was live. */
  stopLocally() {
    const live = this.answers().filter((answer) => answer.live);
    this.localStop = true;
    for (const answer of live) answer.stopHere();
    this.syncStatus();
    this.placeRetry();
    return live[0];
  }

  /** Show the rest of the live answer at once (the kernel drops its pace and pauses). */
  instant() {
    const live = this.answers().find((answer) => answer.live && !answer.stopped);
    if (live) this.tell({ type: BROWSER_MESSAGE.INSTANT, turn: live.id });
  }

  stopNow() {
    // The kernel may be busy (a blocking cell) and read this message late: stop
    // applying patches here at once, and name the turn, so a Stop read late never
    // stops a newer answer.
    const live = this.stopLocally();
    this.tell({ type: BROWSER_MESSAGE.STOP, turn: live?.id ?? null });
  }

  /** Retry only on the last answer, once nothing streams: retrying an older answer
   * would answer a question out of its place in the conversation. */
  placeRetry() {
    const last = this.views[this.views.length - 1];
    for (const answer of this.answers()) {
      answer.retry.hidden = answer !== last || LIVE.has(this.status()) || this.disconnected;
    }
  }

  renderPrompts() {
    const prompts = this.model.get("prompts") ?? [];
    this.presets.replaceChildren(
      ...prompts.map((prompt) => {
        const button = h(this.doc, "button", "streamchat-prompt", { type: "button" });
        button.textContent = prompt;
        button.addEventListener("click", () => this.sendPrompt(prompt));
        return button;
      }),
    );
    this.presets.hidden = prompts.length === 0;
  }

  renderDisclaimer() {
    for (const answer of this.answers()) answer.sig = undefined;
    this.renderTurns();
  }

  dispose() {
    for (const answer of this.answers()) answer.stopTimer();
    this.scope.dispose();
    this.root.remove();
  }
}

// --- race: one prompt box, one chat view per lane (issue 23) -------------------------

/** The lanes' columns at a width: 2-4 side by side, each at least `least` px wide
 * (a notebook beside JupyterLab's file browser at 1280 px holds four), fewer when
 * narrow; never a row of three over one (four lanes go two by two). */
export function raceColumns(width, lanes, least = 200) {
  const fit = Math.max(1, Math.floor(width / least));
  const columns = Math.max(1, Math.min(lanes, 4, fit));
  return lanes === 4 && columns === 3 ? 2 : columns;
}

/** The turn a kernel message is about (a patch's first element, or its `turn`). */
export function turnOf(message) {
  if (Array.isArray(message)) return message[0];
  return message && typeof message === "object" ? message.turn : undefined;
}

/** A lane's figures line: "first token 0.12 s · 4012 chars/s · 1003 tokens/s · 812
 * tokens · typed 4000 chars/s · 3.10 s · stop", from its last answer's stats. */
export function raceFigures(stats) {
  if (!stats) return "";
  const parts = [];
  if (typeof stats.ttft === "number") parts.push(`first token ${stats.ttft.toFixed(2)} s`);
  const speed = stats.chars_per_second;
  if (typeof speed === "number" && speed > 0) parts.push(`${Math.round(speed)} chars/s`);
  const tokens = stats.output_tokens;
  if (typeof tokens === "number" && typeof speed === "number" && speed > 0 && stats.chars > 0) {
    parts.push(`${Math.round((tokens * speed) / stats.chars)} tokens/s`);
  }
  if (typeof tokens === "number") parts.push(`${tokens} tokens`);
  const typed = stats.typed_per_second;
  if (typeof typed === "number" && typed > 0) parts.push(`typed ${Math.round(typed)} chars/s`);
  if (typeof stats.duration === "number") parts.push(`${stats.duration.toFixed(2)} s`);
  if (stats.finish_reason) parts.push(String(stats.finish_reason));
  return parts.join(" · ");
}

/**
 * One lane seen as a chat's model: its `turns` and `status` from the race's `lanes`,
 * everything else (pace, disclaimer, finished answers, sending) the race's. A chat
 * view (`Conversation`) draws it unchanged; it hears only the messages about its own
 * turns (turn ids are unique in the kernel).
 */
export class LaneModel {
  constructor(race, index) {
    this.race = race;
    this.index = index;
    /** Handlers of "msg:custom", called by the race view with this lane's messages. */
    this.custom = new Set();
    this.wrapped = new Map();
  }

  lane() {
    return (this.race.get("lanes") ?? [])[this.index] ?? {};
  }

  owns(message) {
    const turn = turnOf(message);
    return turn == null || (this.lane().turns ?? []).some((each) => each.id === turn);
  }

  get(name) {
    if (name === "turns") return this.lane().turns ?? [];
    if (name === "status") return this.lane().status ?? CHAT_STATUS.IDLE;
    if (name === "prompts") return [];
    return this.race.get(name);
  }

  set(name, value) {
    this.race.set(name, value);
  }

  save_changes() {
    this.race.save_changes();
  }

  send(message) {
    this.race.send(message);
  }

  get widget_manager() {
    return this.race.widget_manager;
  }

  static source(name) {
    return name === "change:turns" || name === "change:status" ? "change:lanes" : name;
  }

  on(name, handler) {
    if (name === "msg:custom") {
      this.custom.add(handler);
      return;
    }
    const wrapped = () => handler();
    this.wrapped.set(handler, wrapped);
    this.race.on(LaneModel.source(name), wrapped);
  }

  off(name, handler) {
    if (name === "msg:custom") {
      this.custom.delete(handler);
      return;
    }
    this.race.off(LaneModel.source(name), this.wrapped.get(handler));
    this.wrapped.delete(handler);
  }

  deliver(message) {
    if (!this.owns(message)) return;
    for (const handler of this.custom) handler(message);
  }
}

const PACES = [
  { pace: RACE_PACE.TRUE, label: "True speed", title: "Each lane shows its text as it arrives: compare latency" },
  { pace: RACE_PACE.EQUAL, label: "Equal speed", title: "Every lane typed at the Speed slider's pace: compare content" },
];

/** A race: the lanes side by side, one prompt box, Send and Stop, the pace controls. */
class RaceView {
  constructor(model, el) {
    this.model = model;
    this.doc = el.ownerDocument;
    this.scope = new Scope();
    this.root = h(this.doc, "div", "streamchat streamchat-race");
    this.grid = h(this.doc, "div", "streamchat-race-lanes");
    this.lanes = (model.get("lanes") ?? []).map((_, index) => this.buildLane(index));
    const { form, input, send, stop } = promptForm(this.doc);
    input.placeholder = "Ask every lane… (Enter sends, Shift+Enter for a new line)";
    Object.assign(this, { input, send, stop });
    const controls = h(this.doc, "div", "streamchat-controls");
    this.paces = PACES.map(({ pace, label, title }) => {
      const button = h(this.doc, "button", "streamchat-race-pace", { type: "button", title });
      button.textContent = label;
      button.dataset.pace = pace;
      this.scope.listen(button, "click", () => {
        model.set("pace", pace);
        model.save_changes();
      });
      return button;
    });
    const paceGroup = h(this.doc, "div", "streamchat-race-paces", { role: "group", "aria-label": "Pace" });
    paceGroup.append(...this.paces);
    controls.append(
      paceGroup,
      slider(this.doc, model, this.scope, "speed"),
      slider(this.doc, model, this.scope, "step"),
    );
    this.root.append(this.grid, form, controls);
    el.appendChild(this.root);
    this.wire();
    this.sync();
  }

  buildLane(index) {
    const proxy = new LaneModel(this.model, index);
    const node = h(this.doc, "div", "streamchat-race-lane");
    const head = h(this.doc, "div", "streamchat-race-label");
    const name = h(this.doc, "span", "streamchat-race-name");
    const model = h(this.doc, "span", "streamchat-race-model");
    head.append(name, model);
    const body = h(this.doc, "div", "streamchat-race-chat");
    const figures = h(this.doc, "div", "streamchat-race-figures", { "aria-live": "polite" });
    node.append(head, body, figures);
    this.grid.appendChild(node);
    const chat = new Conversation(proxy, body);
    return { proxy, node, name, model, figures, chat };
  }

  wire() {
    const { scope, model } = this;
    scope.onModel(model, "change:lanes", () => this.sync());
    scope.onModel(model, "change:status", () => this.sync());
    scope.onModel(model, "change:pace", () => this.sync());
    scope.onModel(model, "msg:custom", (message) => this.onCustom(message));
    scope.listen(this.send, "click", () => {
      this.submit();
      this.input.focus();
    });
    scope.listen(this.stop, "click", () => this.stopAll());
    const onKey = (event) => {
      const path = event.composedPath();
      if (path[0] !== this.input || !ownsKey(event)) return;
      event.stopPropagation();
      if (event.type === "keydown") promptKey(event, this.input, () => this.submit());
    };
    for (const type of ["keydown", "keypress", "keyup"]) {
      scope.listen(this.doc.defaultView, type, onKey, true);
    }
    const view = this.doc.defaultView;
    if (view.ResizeObserver) {
      const observer = new view.ResizeObserver(() => this.layout());
      observer.observe(this.root);
      scope.add(() => observer.disconnect());
    }
    this.layout();
  }

  layout() {
    const width = this.root.clientWidth || this.doc.defaultView.innerWidth;
    const columns = raceColumns(width, this.lanes.length);
    this.grid.style.setProperty("--streamchat-race-columns", String(columns));
  }

  /** @param {PatchWire | Exclude<KernelMessage, PatchMessage>} received */
  onCustom(received) {
    const messages = received?.type === KERNEL_MESSAGE.LANES ? received.messages : [received];
    for (const message of messages) {
      for (const lane of this.lanes) lane.proxy.deliver(message);
    }
  }

  sync() {
    const lanes = this.model.get("lanes") ?? [];
    const status = this.model.get("status");
    this.root.dataset.status = status;
    this.stop.disabled = !LIVE.has(status);
    const pace = this.model.get("pace");
    this.root.dataset.pace = pace;
    for (const button of this.paces) {
      button.setAttribute("aria-pressed", String(button.dataset.pace === pace));
    }
    this.lanes.forEach((lane, index) => {
      const synced = lanes[index] ?? {};
      lane.name.textContent = synced.label ?? "";
      lane.model.textContent = synced.model && synced.model !== synced.label ? synced.model : "";
      lane.node.dataset.status = synced.status ?? CHAT_STATUS.IDLE;
      const answers = (synced.turns ?? []).filter((turn) => turn.role === ROLE.ASSISTANT);
      const last = answers[answers.length - 1];
      lane.figures.textContent = last && !LIVE.has(last.status) ? raceFigures(last.stats) : "";
    });
  }

  submit() {
    const prompt = this.input.value.trim();
    if (!prompt) return;
    try {
      this.model.send({ type: BROWSER_MESSAGE.SEND, prompt });
    } catch {
      for (const lane of this.lanes) lane.chat.showDisconnected();
      return;
    }
    this.input.value = "";
    for (const { chat } of this.lanes) {
      chat.log.appendChild(new Question(this.doc, prompt, true).node);
      chat.localStop = false;
      chat.follow = true;
      chat.scrollToEnd();
    }
  }

  stopAll() {
    for (const { chat } of this.lanes) chat.stopLocally();
    try {
      this.model.send({ type: BROWSER_MESSAGE.STOP, turn: null });
    } catch {
      for (const lane of this.lanes) lane.chat.showDisconnected();
    }
  }

  dispose() {
    for (const { chat } of this.lanes) chat.dispose();
    this.scope.dispose();
    this.root.remove();
  }
}

function render({ model, el }) {
  const view = model.get("kind") === "race" ? new RaceView(model, el) : new Conversation(model, el);
  return () => view.dispose();
}

export default { render };
