// streamchat front end (anywidget ESM).
//
// The kernel sends the answer as small HTML patches (`append` freezes finished
// blocks, `commit` freezes the start of the live part as it is shown, `tail`
// replaces the unfinished last block, `extend` replaces `drop` characters just
// before its last `keep` ones with the new HTML, so the closing tags are not
// re-sent, `reset` replaces everything),
// never the whole answer per update; this view applies them to two containers, a
// frozen one that only grows and a tail that is rewritten. Conversation structure
// (turns, statuses) comes from the synced `turns` trait, which changes only at turn
// boundaries and leaves out the answers' HTML: a finished answer's HTML lives in its
// own `html_<turn id>` trait, which the kernel does not send at the turn end (the
// views built it from the patches; the `ended` message lets them check and keep it),
// so a turn boundary never re-sends the conversation. A view displayed again or after a reload rebuilds from these traits
// and asks the kernel (`hello`) for a snapshot of an answer still being typed.
//
// The messages, as declared in streamchat/_messages.py (turns addressed by id):
/**
 * @typedef {{op: "append" | "tail" | "reset", html: string} |
 *   {op: "extend", html: string, drop: number, keep: number} |
 *   {op: "commit", size: number}} PatchOp
 * @typedef {{type: "patch", turn: number, part: "body" | "reasoning", ops: PatchOp[]}} PatchMessage
 * @typedef {Array} PatchWire a PatchMessage as sent: [turn, "b" | "r", op...], each op a
 *   code and its arguments (see `decodePatch`)
 * @typedef {{name: string, arguments: string, after: number}} ToolCall `after`: characters
 *   of answer text received before the call's first fragment
 * @typedef {{type: "tools", turn: number, tool_calls: ToolCall[]}} ToolsMessage
 * @typedef {{type: "snapshot", turn: number, body: string, body_tail: string,
 *   reasoning: string, reasoning_tail: string, tool_calls: ToolCall[]}} SnapshotMessage
 * @typedef {{type: "ended", turn: number, source: string, html_size: number,
 *   reasoning_size: number}} EndedMessage an answer ended: the views that applied its
 *   patches keep the HTML they built as the model's `html_<turn>` (sizes in UTF-16 units)
 * @typedef {PatchMessage | ToolsMessage | SnapshotMessage | EndedMessage} KernelMessage
 * @typedef {{type: "send", prompt: string} | {type: "stop", turn: number | null} |
 *   {type: "retry", turn: number} | {type: "hello"} | {type: "resend", turn: number}}
 *   BrowserMessage
 */
//
// Everything above `render` is pure (no DOM globals) so `node --test` can import it.

/** Apply patch ops to a `{frozen, tail}` state; also say what the DOM must do. */
export function applyOps(state, ops) {
  let { frozen, tail } = state;
  let appended = "";
  let reset = false;
  let tailChanged = false;
  for (const { op, html, drop = 0, keep = 0, size = 0 } of ops) {
    if (op === "commit") {
      // The first `size` code units of the live part join the frozen part as they are.
      const head = tail.slice(0, size);
      frozen += head;
      appended += head;
      tail = tail.slice(size);
      tailChanged = tailChanged || size > 0;
    } else if (op === "append") {
      frozen += html;
      appended += html;
    } else if (op === "tail") {
      tailChanged = tailChanged || tail !== html;
      tail = html;
    } else if (op === "extend") {
      // Replace the `drop` code units before the last `keep` ones (String.length units).
      const cut = Math.max(0, tail.length - keep);
      const next = tail.slice(0, Math.max(0, cut - drop)) + html + tail.slice(cut);
      tailChanged = tailChanged || tail !== next;
      tail = next;
    } else if (op === "reset") {
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

const PARTS = { b: "body", r: "reasoning" };
/** Each op's code on the wire, with its name and the names of its arguments. */
const OPS = {
  a: ["append", ["html"]],
  t: ["tail", ["html"]],
  e: ["extend", ["drop", "keep", "html"]],
  c: ["commit", ["size"]],
  r: ["reset", ["html"]],
};

/**
 * A patch message from its wire form, one flat JSON array (key names and nesting would
 * cost more than the new text at 30-40 messages a second): [turn, part, op...], part
 * "b" or "r", each op a code and its arguments: "a", html | "t", html |
 * "e", drop, keep, html | "c", size | "r", html.
 */
export function decodePatch(message) {
  const [turn, part] = message;
  const ops = [];
  for (let index = 2; index < message.length; ) {
    const code = message[index];
    if (!Object.hasOwn(OPS, code)) throw new Error(`unknown patch op: ${code}`);
    const [op, fields] = OPS[code];
    const decoded = { op };
    fields.forEach((field, offset) => {
      decoded[field] = message[index + 1 + offset];
    });
    ops.push(decoded);
    index += 1 + fields.length;
  }
  return { type: "patch", turn, part: PARTS[part] ?? part, ops };
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

// ---------------------------------------------------------------------------
// DOM

const LIVE = new Set(["waiting", "streaming"]);

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

/** Give every code block under `container` a copy button (once). `later` is setTimeout
 * with cleanup: the "Copied" label must not outlive the view. */
function decorateCode(doc, container, later) {
  for (const pre of container.querySelectorAll("pre")) {
    // Highlighted blocks come wrapped in div.streamchat-code from the renderer; wrap
    // the others the same way so the button has a positioned box to sit in.
    let box = pre.parentElement;
    if (!box?.classList.contains("streamchat-code")) {
      box = h(doc, "div", "streamchat-code");
      pre.replaceWith(box);
      box.appendChild(pre);
    }
    if (box.querySelector(":scope > .streamchat-code-bar")) continue;
    // The button sits in a bar above the code, never over its first line.
    const bar = h(doc, "div", "streamchat-code-bar");
    const language = h(doc, "span", "streamchat-code-language");
    language.textContent = codeLanguage(box.className);
    const button = h(doc, "button", "streamchat-copy", { type: "button", title: "Copy code" });
    button.textContent = "Copy";
    button.addEventListener("click", () => {
      copyText(doc, (pre.querySelector("code") ?? pre).textContent).then(
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
    });
    bar.append(language, button);
    box.insertBefore(bar, pre);
  }
}

function placeCursor(doc, body) {
  for (const old of body.querySelectorAll(".streamchat-cursor")) old.remove();
  const cursor = h(doc, "span", "streamchat-cursor", { "aria-hidden": "true" });
  const tail = body.querySelector(".streamchat-tail");
  const frozen = body.querySelector(".streamchat-frozen");
  const root = tail && lastMeaningful(tail) ? tail : frozen ?? body;
  const spot = cursorSpot(root);
  let ref = spot.ref;
  if (typeof spot.split === "number") ref = ref.splitText(spot.split);
  spot.parent.insertBefore(cursor, ref);
}

function removeCursor(body) {
  for (const old of body.querySelectorAll(".streamchat-cursor")) old.remove();
}

function render({ model, el }) {
  const doc = el.ownerDocument;
  const cleanups = [];
  const listen = (target, type, handler, options) => {
    target.addEventListener(type, handler, options);
    cleanups.push(() => target.removeEventListener(type, handler, options));
  };
  const onModel = (name, handler) => {
    model.on(name, handler);
    cleanups.push(() => model.off(name, handler));
  };
  const later = (callback, ms) => {
    const id = setTimeout(callback, ms);
    cleanups.push(() => clearTimeout(id));
  };

  const root = h(doc, "div", "streamchat");
  const log = h(doc, "div", "streamchat-log", { role: "log", "aria-live": "polite" });
  const presets = h(doc, "div", "streamchat-prompts");
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
  form.append(input, send, stop);
  const controls = h(doc, "div", "streamchat-controls");
  const notice = h(doc, "div", "streamchat-notice", { role: "alert" });
  notice.hidden = true;
  root.append(log, presets, notice, form, controls);
  el.appendChild(root);

  /** Per turn index: {sig, node, body, reasoning, state, reasoningState, live, ...}. */
  const views = [];
  let follow = true;
  let localStop = false;
  let disconnected = false;
  let firstRender = true;

  const scrollToEnd = () => {
    if (follow) log.scrollTop = log.scrollHeight;
  };
  listen(log, "scroll", () => {
    follow = nearBottom(log.scrollTop, log.clientHeight, log.scrollHeight);
  });

  const status = () => (localStop && LIVE.has(model.get("status")) ? "stopped" : model.get("status"));
  const syncStatus = () => {
    const now = status();
    root.dataset.status = now;
    stop.disabled = !LIVE.has(now);
  };

  function userNode(text, pending = false) {
    const node = h(doc, "div", `streamchat-turn streamchat-user${pending ? " streamchat-pending" : ""}`);
    const bubble = h(doc, "div", "streamchat-bubble");
    bubble.textContent = text; // never HTML: the prompt is the person's own text
    node.appendChild(bubble);
    return node;
  }

  function assistantNode(turn) {
    const node = h(doc, "div", "streamchat-turn streamchat-assistant");
    const bubble = h(doc, "div", "streamchat-bubble");
    const reasoning = h(doc, "details", "streamchat-reasoning");
    const summary = h(doc, "summary", "streamchat-reasoning-summary");
    summary.textContent = "Reasoning";
    const reasoningBody = h(doc, "div", "streamchat-reasoning-body");
    reasoningBody.append(h(doc, "div", "streamchat-frozen"), h(doc, "div", "streamchat-tail"));
    reasoning.append(summary, reasoningBody);
    const tools = h(doc, "ul", "streamchat-tools");
    const thinking = h(doc, "div", "streamchat-thinking", { role: "status" });
    const body = h(doc, "div", "streamchat-body");
    body.append(h(doc, "div", "streamchat-frozen"), h(doc, "div", "streamchat-tail"));
    const toolsAfter = h(doc, "ul", "streamchat-tools streamchat-tools-after");
    const error = h(doc, "div", "streamchat-error", { role: "alert" });
    const errorText = h(doc, "span", "streamchat-error-text");
    const retry = h(doc, "button", "streamchat-retry", { type: "button" });
    retry.textContent = "Retry";
    retry.addEventListener("click", () => tell({ type: "retry", turn: view.id }));
    error.append(errorText, retry);
    const footer = h(doc, "div", "streamchat-footer");
    const stats = h(doc, "span", "streamchat-stats");
    const disclaimer = h(doc, "span", "streamchat-disclaimer");
    const copyAnswer = h(doc, "button", "streamchat-copy-answer", {
      type: "button",
      title: "Copy the answer as Markdown",
    });
    copyAnswer.textContent = "Copy";
    footer.append(stats, disclaimer, copyAnswer);
    bubble.append(reasoning, tools, thinking, body, toolsAfter, error, footer);
    node.appendChild(bubble);
    const view = {
      node, body, reasoning, summary, reasoningBody, tools, toolsAfter, thinking, error,
      errorText, footer, stats, disclaimer, copyAnswer, retry, id: turn.id, source: "",
      thoughtFor: null, state: { frozen: "", tail: "" }, reasoningState: { frozen: "", tail: "" },
      live: false, awaitingSnapshot: false, stopped: false, timer: null, started: Date.now(),
      reasoningToggled: false,
    };
    reasoning.addEventListener("toggle", () => {
      if (view.live && view.reasoningAuto !== reasoning.open) view.reasoningToggled = true;
    });
    copyAnswer.addEventListener("click", () => {
      const text = answerClipboard(view.source, model.get("disclaimer"));
      copyText(doc, text).then(
        () => {
          copyAnswer.textContent = "Copied";
          later(() => {
            copyAnswer.textContent = "Copy";
          }, 1200);
        },
        () => {
          copyAnswer.textContent = "Copy failed";
        },
      );
    });
    fillAssistant(view, turn);
    return view;
  }

  function setPart(view, part, state) {
    const container = part === "body" ? view.body : view.reasoningBody;
    container.querySelector(".streamchat-frozen").innerHTML = state.frozen;
    container.querySelector(".streamchat-tail").innerHTML = state.tail;
    if (part === "body") view.state = state;
    else view.reasoningState = state;
  }

  function setTools(view, calls) {
    const item = (call) => {
      const node = h(doc, "li", "streamchat-tool");
      const code = h(doc, "code", "streamchat-tool-call");
      code.textContent = toolLabel(call);
      node.appendChild(code);
      return node;
    };
    const { before, after } = toolsByPlace(calls);
    view.tools.replaceChildren(...before.map(item));
    view.tools.hidden = !before.length;
    view.toolsAfter.replaceChildren(...after.map(item));
    view.toolsAfter.hidden = !after.length;
  }

  function updateThinking(view) {
    const empty = !view.state.frozen && !view.state.tail && !view.reasoningState.frozen &&
      !view.reasoningState.tail;
    const show = view.live && !view.stopped && empty;
    view.thinking.hidden = !show;
    if (show && view.timer === null) {
      const tick = () => {
        view.thinking.textContent = `Thinking… ${formatElapsed(Date.now() - view.started)}`;
      };
      tick();
      view.timer = setInterval(tick, 100);
    } else if (!show && view.timer !== null) {
      clearInterval(view.timer);
      view.timer = null;
    }
  }

  function setReasoningVisibility(view) {
    const has = Boolean(view.reasoningState.frozen || view.reasoningState.tail);
    view.reasoning.hidden = !has;
    if (!has) return;
    if (view.reasoningToggled) {
      if (!view.live) view.summary.textContent = reasoningLabel(view.thoughtFor);
      return;
    }
    // Open while the model is only thinking; fold once the answer itself starts.
    const answering = Boolean(view.state.frozen || view.state.tail) || !view.live;
    if (answering && view.live && view.thoughtFor === null) {
      view.thoughtFor = (Date.now() - view.started) / 1000;
    }
    view.summary.textContent = reasoningLabel(answering ? view.thoughtFor : null);
    view.reasoningAuto = !answering;
    view.reasoning.open = !answering;
  }

  /** Plain words in bold, then the fix, then the technical detail in small print. */
  function setError(view, message) {
    const { what, fix, detail } = errorParts(message);
    const strong = h(doc, "strong", "streamchat-error-what");
    strong.textContent = what;
    const parts = [strong];
    for (const [text, name] of [[fix, "streamchat-error-fix"], [detail, "streamchat-error-detail"]]) {
      if (!text) continue;
      const line = h(doc, "span", name);
      line.textContent = text;
      parts.push(line);
    }
    view.errorText.replaceChildren(...parts);
  }

  /** A turn with its answer's HTML, from the turn's own `html_<id>` trait. */
  function withHtml(turn) {
    const stored = turn.id != null ? model.get(`html_${turn.id}`) : undefined;
    if (!stored && turn.id != null && !LIVE.has(turn.status)) resend(turn.id);
    return stored ? { ...turn, ...stored } : turn;
  }

  const resent = new Set();
  /** Ask the kernel for a finished answer's `html_<id>` (this view holds no checked copy). */
  function resend(id) {
    if (resent.has(id)) return;
    resent.add(id);
    onModel(`change:html_${id}`, renderTurns);
    tell({ type: "resend", turn: id });
  }

  /** Keep the HTML this view built from the patches as the model's `html_<id>`, if it is
   * the kernel's (same sizes); otherwise ask for the kernel's. */
  function keepAnswer(view, message) {
    const { frozen, tail } = view.state;
    const html = frozen + tail;
    const reasoning = view.reasoningState.frozen + view.reasoningState.tail;
    const checked =
      view.live &&
      !view.stopped &&
      !view.awaitingSnapshot &&
      html.length === message.html_size &&
      reasoning.length === message.reasoning_size;
    if (checked) {
      model.set(`html_${message.turn}`, { html, reasoning_html: reasoning, source: message.source });
    } else {
      resend(message.turn);
    }
  }

  /** Show a turn from the `turns` trait (a finished turn, or the start of a live one). */
  function fillAssistant(view, turn) {
    view.id = turn.id;
    const live = turn.status === "streaming" && !view.stopped;
    const wasLive = view.live;
    view.live = live;
    view.node.dataset.status = view.stopped ? "stopped" : turn.status;
    if (live) {
      view.node.setAttribute("aria-busy", "true");
    } else {
      view.node.removeAttribute("aria-busy");
      // A view that applied every patch already shows this HTML: leave its DOM (and
      // any selection the person made) alone. A locally stopped view keeps what it
      // showed when Stop was clicked.
      const shown = view.state.frozen + view.state.tail;
      if (!view.stopped && (shown !== (turn.html ?? "") || !wasLive)) {
        setPart(view, "body", { frozen: turn.html ?? "", tail: "" });
      }
      const reasoningShown = view.reasoningState.frozen + view.reasoningState.tail;
      if (reasoningShown !== (turn.reasoning_html ?? "")) {
        setPart(view, "reasoning", { frozen: turn.reasoning_html ?? "", tail: "" });
      }
      removeCursor(view.body);
      decorateCode(doc, view.body, later);
    }
    view.source = turn.source ?? "";
    if (typeof turn.stats?.reasoning_seconds === "number") {
      view.thoughtFor = turn.stats.reasoning_seconds;
    }
    setTools(view, turn.tool_calls);
    setReasoningVisibility(view);
    updateThinking(view);
    const failed = turn.status === "error" || turn.status === "stopped" || view.stopped;
    view.error.hidden = !failed || live;
    setError(
      view,
      turn.status === "error" ? turn.error || "The answer failed." : turn.note || "Stopped.",
    );
    view.copyAnswer.hidden = live || !view.source;
    view.footer.hidden = live;
    view.stats.textContent = formatStats(turn.stats);
    const disclaimer = model.get("disclaimer");
    view.disclaimer.textContent = disclaimer;
    view.disclaimer.hidden = !disclaimer || turn.status !== "done";
  }

  function applyPatch(view, part, ops) {
    if (!view.live || view.stopped || view.awaitingSnapshot) return;
    const container = part === "body" ? view.body : view.reasoningBody;
    const old = part === "body" ? view.state : view.reasoningState;
    const { state, appended, reset, tailChanged } = applyOps(old, ops);
    const frozenNode = container.querySelector(".streamchat-frozen");
    if (reset) frozenNode.innerHTML = state.frozen;
    else if (appended) frozenNode.insertAdjacentHTML("beforeend", appended);
    if (tailChanged || reset) container.querySelector(".streamchat-tail").innerHTML = state.tail;
    if (part === "body") {
      view.state = state;
      if (appended || reset) decorateCode(doc, frozenNode, later);
      placeCursor(doc, view.body);
    } else {
      view.reasoningState = state;
    }
    setReasoningVisibility(view);
    updateThinking(view);
    scrollToEnd();
  }

  function stopTimers(view) {
    if (view.timer !== null) clearInterval(view.timer);
    view.timer = null;
  }

  function renderTurns() {
    const turns = model.get("turns") ?? [];
    for (const pending of log.querySelectorAll(".streamchat-pending")) pending.remove();
    while (views.length > turns.length) {
      const gone = views.pop();
      if (gone.kind === "assistant") stopTimers(gone);
      gone.node.remove();
    }
    let asked = false;
    turns.forEach((synced, index) => {
      const turn = synced.role === "assistant" ? withHtml(synced) : synced;
      const sig = turnSignature(turn);
      let view = views[index];
      if (view && view.sig === sig) return;
      if (view && view.role !== turn.role) {
        if (view.kind === "assistant") stopTimers(view);
        view.node.remove();
        view = undefined;
      }
      if (turn.role === "user") {
        const node = userNode(turn.text ?? "");
        if (view) view.node.replaceWith(node);
        else log.appendChild(node);
        views[index] = { kind: "user", role: "user", node, sig };
        return;
      }
      if (!view) {
        view = assistantNode(turn);
        view.kind = "assistant";
        view.role = "assistant";
        log.appendChild(view.node);
        views[index] = view;
        // A turn already live when this view first saw it: its earlier patches went
        // to other views, so ask the kernel for the whole of it.
        if (view.live && firstRender) {
          view.awaitingSnapshot = true;
          asked = true;
        }
      } else {
        fillAssistant(view, turn);
      }
      view.sig = sig;
    });
    if (asked) tell({ type: "hello" });
    placeRetry();
    if (!LIVE.has(model.get("status"))) localStop = false;
    syncStatus();
    scrollToEnd();
  }
  /** @param {PatchWire | ToolsMessage | SnapshotMessage | EndedMessage} received */
  function onCustom(received) {
    /** @type {KernelMessage} */
    const message = Array.isArray(received) ? decodePatch(received) : received;
    const view = views.find((each) => each.kind === "assistant" && each.id === message.turn);
    if (!view || view.kind !== "assistant") {
      if (message.type === "ended") resend(message.turn);
      return;
    }
    if (message.type === "ended") {
      keepAnswer(view, message);
    } else if (message.type === "patch") {
      applyPatch(view, message.part, message.ops);
    } else if (message.type === "snapshot") {
      if (!view.live || view.stopped) return;
      view.awaitingSnapshot = false;
      setPart(view, "body", splitSnapshot(message.body, message.body_tail));
      setPart(view, "reasoning", splitSnapshot(message.reasoning, message.reasoning_tail));
      setTools(view, message.tool_calls);
      decorateCode(doc, view.body, later);
      placeCursor(doc, view.body);
      setReasoningVisibility(view);
      updateThinking(view);
      scrollToEnd();
    } else if (message.type === "tools") {
      if (view.live && !view.stopped) setTools(view, message.tool_calls);
    }
  }

  /**
   * Send a message to the kernel; false (and the widget says why) when it is gone.
   * @param {BrowserMessage} message
   */
  function tell(message) {
    if (disconnected) return false;
    try {
      model.send(message);
      return true;
    } catch {
      // A restarted or shut-down kernel: the comm is disposed and send throws.
      showDisconnected();
      return false;
    }
  }

  /** Ask `text`; true when it went to the kernel (the caller may clear the box). */
  function sendPrompt(text) {
    const prompt = text.trim();
    if (!prompt || disconnected) return false;
    const pending = userNode(prompt, true);
    log.appendChild(pending);
    if (!tell({ type: "send", prompt })) {
      pending.remove();
      return false;
    }
    localStop = false;
    follow = true;
    scrollToEnd();
    return true;
  }

  function showDisconnected() {
    if (disconnected) return;
    disconnected = true;
    root.dataset.connection = "lost";
    notice.textContent =
      "This chat has lost its kernel (restarted or shut down), so it cannot answer. " +
      "Run its cell again for a new chat; the conversation above stays as it was.";
    notice.hidden = false;
    stopLocally();
    for (const control of root.querySelectorAll("textarea, button, input")) {
      // Copying (a code block, an answer) needs no kernel.
      const copies = control.classList.contains("streamchat-copy") ||
        control.classList.contains("streamchat-copy-answer");
      if (!copies) control.disabled = true;
    }
    syncStatus();
  }

  /** Stop showing the live answer at once (what the person sees stops now). */
  function stopLocally() {
    const live = views.find((view) => view.kind === "assistant" && view.live);
    localStop = true;
    for (const view of views) {
      if (view.kind === "assistant" && view.live) {
        view.stopped = true;
        view.live = false;
        removeCursor(view.body);
        stopTimers(view);
        view.thinking.hidden = true;
        view.node.dataset.status = "stopped";
        view.node.removeAttribute("aria-busy");
        setError(view, "Stopped.");
        view.error.hidden = false;
      }
    }
    syncStatus();
    placeRetry();
    return live;
  }

  function stopNow() {
    // The kernel may be busy (a blocking cell) and read this message late: stop
    // applying patches here at once, and name the turn, so a Stop read late never
    // stops a newer answer.
    const live = stopLocally();
    tell({ type: "stop", turn: live?.id ?? null });
  }

  function promptKey(event) {
    if (event.key !== "Enter") return;
    if (shouldSend(event)) {
      event.preventDefault();
      if (sendPrompt(input.value)) input.value = "";
    } else if (event.shiftKey && !event.isComposing) {
      // JupyterLab cancels line breaks typed anywhere inside a cell (its guard
      // against Shift+Enter running *and* typing), so insert the newline here.
      event.preventDefault();
      input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
  }

  // Keys pressed in the widget are the widget's, in every host. Listening on the
  // window at capture phase runs before any host listener (Notebook 7 and JupyterLab
  // handle shortcuts on the document at capture phase, so a listener on the widget
  // would come too late); stopping the event there keeps it from every host handler,
  // while the browser's default action (typing, moving a slider) still happens.
  // composedPath() sees into shadow roots (marimo renders the widget in one).
  const onKey = (event) => {
    const path = event.composedPath();
    if (!path.includes(root) || !ownsKey(event)) return;
    event.stopPropagation();
    if (event.type === "keydown" && path[0] === input) promptKey(event);
  };
  for (const type of ["keydown", "keypress", "keyup"]) listen(doc.defaultView, type, onKey, true);
  listen(send, "click", () => {
    if (sendPrompt(input.value)) input.value = "";
    input.focus();
  });
  listen(stop, "click", stopNow);

  /** Retry only on the last answer, once nothing streams: retrying an older answer
   * would answer a question out of its place in the conversation. */
  function placeRetry() {
    const last = views[views.length - 1];
    for (const view of views) {
      if (view.kind !== "assistant") continue;
      view.retry.hidden = view !== last || LIVE.has(status()) || disconnected;
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

  function slider(name) {
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
    listen(range, "input", () => {
      value.textContent = range.value;
      model.set(name, Number(range.value));
      model.save_changes();
    });
    onModel(`change:${name}`, show);
    show();
    return label;
  }
  controls.append(slider("speed"), slider("step"));

  function renderPrompts() {
    const prompts = model.get("prompts") ?? [];
    presets.replaceChildren(
      ...prompts.map((prompt) => {
        const button = h(doc, "button", "streamchat-prompt", { type: "button" });
        button.textContent = prompt;
        button.addEventListener("click", () => sendPrompt(prompt));
        return button;
      }),
    );
    presets.hidden = prompts.length === 0;
  }

  function renderDisclaimer() {
    for (const view of views) {
      if (view.kind === "assistant") view.sig = undefined;
    }
    renderTurns();
  }

  onModel("change:turns", renderTurns);
  onModel("change:status", () => {
    if (!LIVE.has(model.get("status"))) localStop = false;
    syncStatus();
    placeRetry();
  });
  // ipywidgets closes a model whose comm closed (the kernel went away).
  onModel("comm:close", showDisconnected);
  onModel("change:prompts", renderPrompts);
  onModel("change:disclaimer", renderDisclaimer);
  onModel("msg:custom", onCustom);

  renderPrompts();
  renderTurns();
  firstRender = false;

  return () => {
    for (const view of views) {
      if (view.kind === "assistant") stopTimers(view);
    }
    for (const cleanup of cleanups.splice(0)) cleanup();
    root.remove();
  };
}

export default { render };
