// watchKernel: the widget learns that its kernel is gone from the host's kernel
// connection, as soon as the host knows. Signals here behave like Lumino's.
import assert from "node:assert/strict";
import { test } from "node:test";

import { watchKernel } from "../../src/streamchat/static/widget.js";

class Signal {
  constructor() {
    this.slots = new Set();
  }
  connect(slot) {
    this.slots.add(slot);
  }
  disconnect(slot) {
    this.slots.delete(slot);
  }
  emit(sender, value) {
    for (const slot of [...this.slots]) slot(sender, value);
  }
}

function lab(status = "idle") {
  const kernel = {
    status,
    isDisposed: false,
    statusChanged: new Signal(),
    iopubMessage: new Signal(),
    disposed: new Signal(),
  };
  const session = { kernelChanged: new Signal() };
  return { kernel, context: { sessionContext: session } };
}

function watch(manager) {
  const calls = [];
  const stop = watchKernel(manager, () => calls.push("lost"));
  return { calls, stop };
}

test("busy and idle are a live kernel; restarting is a lost one, said once", () => {
  const manager = lab();
  const { calls } = watch(manager);
  manager.kernel.statusChanged.emit(manager.kernel, "busy");
  manager.kernel.statusChanged.emit(manager.kernel, "idle");
  assert.deepEqual(calls, []);
  manager.kernel.statusChanged.emit(manager.kernel, "restarting");
  manager.kernel.statusChanged.emit(manager.kernel, "starting");
  manager.kernel.statusChanged.emit(manager.kernel, "idle");
  assert.deepEqual(calls, ["lost"]);
});

for (const status of ["autorestarting", "dead", "starting", "terminating"]) {
  test(`a kernel that goes ${status} is lost`, () => {
    const manager = lab();
    const { calls } = watch(manager);
    manager.kernel.statusChanged.emit(manager.kernel, status);
    assert.deepEqual(calls, ["lost"]);
  });
}

function iopub(session, type = "status", content = { execution_state: "idle" }) {
  return { header: { session, msg_type: type }, content };
}

test("a message from another kernel session (restarted elsewhere) is a lost kernel", () => {
  const manager = lab();
  const { calls } = watch(manager);
  const { kernel } = manager;
  kernel.iopubMessage.emit(kernel, iopub("first"));
  kernel.iopubMessage.emit(kernel, iopub("first", "stream", { text: "x" }));
  // The server's own "restarting" or "dead" status has the server's session: no change.
  kernel.iopubMessage.emit(kernel, iopub("server", "status", { execution_state: "restarting" }));
  kernel.iopubMessage.emit(kernel, iopub(undefined));
  assert.deepEqual(calls, []);
  kernel.iopubMessage.emit(kernel, iopub("second"));
  kernel.iopubMessage.emit(kernel, iopub("third"));
  assert.deepEqual(calls, ["lost"]);
});

test("a kernel shut down (disposed) or replaced in the notebook is lost", () => {
  const shutDown = lab();
  const first = watch(shutDown);
  shutDown.kernel.disposed.emit(shutDown.kernel, undefined);
  assert.deepEqual(first.calls, ["lost"]);

  const changed = lab();
  const second = watch(changed);
  const session = changed.context.sessionContext;
  session.kernelChanged.emit(session, { oldValue: null, newValue: changed.kernel });
  assert.deepEqual(second.calls, [], "the same kernel again is no change");
  session.kernelChanged.emit(session, { oldValue: changed.kernel, newValue: null });
  assert.deepEqual(second.calls, ["lost"]);
});

test("a kernel already dead when the view is drawn is lost at once", () => {
  assert.deepEqual(watch(lab("dead")).calls, ["lost"]);
});

test("the cleanup disconnects every slot", () => {
  const manager = lab();
  const { calls, stop } = watch(manager);
  stop();
  assert.equal(manager.kernel.statusChanged.slots.size, 0);
  assert.equal(manager.kernel.disposed.slots.size, 0);
  assert.equal(manager.kernel.iopubMessage.slots.size, 0);
  assert.equal(manager.context.sessionContext.kernelChanged.slots.size, 0);
  manager.kernel.statusChanged.emit(manager.kernel, "dead");
  assert.deepEqual(calls, []);
});

test("hosts that give no kernel (marimo) or no manager are not watched", () => {
  for (const manager of [undefined, null, {}, { kernel: null }, { kernel: {} }]) {
    const { calls, stop } = watch(manager);
    stop();
    assert.deepEqual(calls, []);
  }
});
