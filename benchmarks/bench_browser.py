"""What a streamed answer costs the browser: StreamChat against the naive display/update loops.

A real JupyterLab in headless Chromium (viewport 1280x1000) shows answers streamed by a
loopback server at a fixed arrival rate; the same run measures, side by side:

* StreamChat from this tree (`speed=0`: the text is shown as fast as it arrives);
* StreamChat from another tree (`--baseline path/to/src`, e.g. a checkout of main 0cc2df0);
* the naive notebook loop, `display(Markdown(text), display_id=True)` then `.update(...)`
  on every event ("naive/event") and throttled to 30 updates a second ("naive/30Hz").

Each row reports, from the first byte to the moment the whole answer is on screen:
frames per second and the 99th percentile frame interval (a requestAnimationFrame loop),
the longest task (PerformanceObserver "longtask"), style + layout time per second and main
thread task time per second (Chrome's own counters, CDP Performance.getMetrics:
RecalcStyleDuration, LayoutDuration, TaskDuration), and "done after": how long after the
server's last byte the answer's last sentence showed (both clocks are this machine's wall
clock). Medians of `--runs` runs.

Answers: prose (~4 K characters), one 260-line Python block, a 200-row table and a ~100 KB
mixed answer, each ending with a marker sentence the page watches for.

    python benchmarks/bench_browser.py [--scale full|quick] [--runs 3]
        [--rows code@200,table@2000,...] [--contenders now,base,naive-event,naive-30]
        [--baseline path/to/src] [--turns 30]

`--turns N` measures a long conversation instead: N answers of ~5 K characters in one
chat; per-update main-thread time of the first and the last turns, DOM nodes and JS heap.

Targets (StreamChat rows): no long task over 50 ms; p99 frame interval <= 1.5x the prose
row's at the same rate and <= 34 ms at 200 and 2,000 chars/s; style + layout per second in
the code and table rows <= 1.5x the prose row's; done within 150 ms of the last byte.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bench_kernel_cost as answers

ROOT = Path(__file__).resolve().parents[1]
# The browser's path and flags (tests/chromium.py) and the JupyterLab the tests start.
sys.path.insert(0, str(ROOT / "tests"))
from browser.frontends import Lab, notebook_json  # noqa: E402

from chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

MARKER = "zq-end"  # the last sentence holds it: the page watches for it
TOKEN = 4  # characters per streamed event
GIVE_UP = 60.0  # seconds after the last byte: a view that never catches up


def mixed(scale: float = 1.0) -> str:
    """About 100 KB: prose, code blocks, tables and lists, one after another."""
    parts, size, n = [], 0, 0
    while size < 100_000 * scale:
        piece = [answers.prose(0.5), answers.code(0.15), answers.table(0.1)][n % 3]
        parts.append(piece)
        size += len(piece)
        n += 1
    return "\n\n".join(parts)


def text_for(kind: str, scale: float) -> str:
    body = {
        "prose": lambda: answers.prose(scale),
        "code": lambda: answers.code(scale),
        "table": lambda: answers.table(scale),
        "mixed": lambda: mixed(scale),
        "turn": lambda: answers.prose(1.2) + "\n\n" + answers.code(0.02),
        "warm": lambda: answers.prose(0.1) + answers.code(0.02) + answers.table(0.01),
    }[kind]()
    return f"{body}\n\nThat is the whole answer ({MARKER}).\n"


# -- the loopback server ------------------------------------------------------------


class Server:
    """Streams `text_for(kind)` at `rate` chars/s for a prompt "kind@rate"; GET /last
    says when the last byte of the latest answer went out (wall clock)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps({"first": outer.first, "last": outer.last}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind, _, rate = request["messages"][-1]["content"].partition("@")
                outer.stream(self, kind.strip(), float(rate or 2000))

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/v1/chat/completions"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stream(self, handler: BaseHTTPRequestHandler, kind: str, rate: float) -> None:
        text = text_for(kind, self.scale)
        pieces = [text[i : i + TOKEN] for i in range(0, len(text), TOKEN)]
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        self.done.clear()
        started = time.monotonic()
        self.first = time.time()
        for n, piece in enumerate(pieces):
            delay = started + n * TOKEN / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            handler.wfile.flush()
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        self.last = time.time()
        self.done.set()
        handler.close_connection = True


# -- JupyterLab ---------------------------------------------------------------------


@contextmanager
def jupyter_lab(kernels: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    """The tests' JupyterLab (tests/browser/frontends.py) with one kernel spec per name,
    each with its PYTHONPATH: (base URL, token, notebook folder)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-browser-"))
    for name, path in kernels.items():
        spec = tmp / "data" / "kernels" / name  # the JUPYTER_DATA_DIR of isolated_env(tmp)
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": name,
                    "language": "python",
                    "env": {"PYTHONPATH": path},
                }
            )
        )
    lab = Lab(tmp)
    try:
        yield lab.server.base, lab.token, lab.root
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


NAIVE = """
import json, time, httpx
from IPython.display import Markdown, display
def naive(url, prompt, hz):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    handle = display(Markdown(""), display_id=True)
    acc, last = "", 0.0
    with httpx.stream("POST", url, json=body, timeout=600) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            acc += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            now = time.monotonic()
            if not hz or now - last >= 1 / hz:
                handle.update(Markdown(acc))
                last = now
    handle.update(Markdown(acc))
"""

# The page's instruments: a frame loop, long tasks, and the moment the marker shows.
INSTRUMENT = """(marker) => {
  if (window.__bench) return;
  const bench = { frames: [], tasks: [], done: null, selector: null, marker, stale: new Set() };
  window.__bench = bench;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) bench.tasks.push([entry.startTime, entry.duration]);
  }).observe({ type: "longtask" });
  // The last block of the last answer (main 0cc2df0 keeps it in a frozen and a tail div).
  // The answer's element is looked up until found and while it is in the page (a query
  // of the whole page every frame cost the page more as the answer grew).
  const shown = () => {
    if (!bench.node || !bench.node.isConnected) {
      const all = [...document.querySelectorAll(bench.selector)].filter((n) => !bench.stale.has(n));
      bench.node = all.length ? all[all.length - 1] : null;
    }
    let last = bench.node ? bench.node.lastElementChild : null;
    if (last && last.classList.contains("streamchat-tail")) {
      last = last.lastElementChild || last.previousElementSibling?.lastElementChild;
    }
    // The marker's sentence is a paragraph: the text of a 200-row table is not read
    // every frame (that cost the page as much as the widget's own work).
    return Boolean(last && last.localName === "p" && last.textContent.includes(bench.marker));
  };
  const loop = (now) => {
    if (bench.selector) {
      bench.frames.push(now);
      if (bench.done === null && shown()) bench.done = performance.now();
    }
    requestAnimationFrame(loop);
  };
  requestAnimationFrame(loop);
}"""

ARM = """(selector) => {
  const bench = window.__bench;
  // What shows now is an earlier answer's: only a new one counts.
  bench.stale = new Set(document.querySelectorAll(selector));
  bench.frames = []; bench.tasks = []; bench.done = null; bench.selector = selector;
  bench.node = null;
}"""

# How the view applied the answer (widget.js `LiveHtml.stats`): updates, re-parses,
# characters parsed against the answer's HTML length, whole re-parses and fallbacks.
LIVE_STATS = """(selector) => {
  const bodies = document.querySelectorAll(selector);
  const part = bodies.length ? bodies[bodies.length - 1].streamchat : null;
  if (!part || !part.live || !part.live.stats) return null;
  return { ...part.live.stats, htmlLength: part.html.length };
}"""

COLLECT = """() => {
  const bench = window.__bench;
  bench.selector = null;
  return { origin: performance.timeOrigin, frames: bench.frames, tasks: bench.tasks,
           done: bench.done };
}"""

SELECTORS = {
    "now": ".streamchat-assistant .streamchat-body",
    "base": ".streamchat-assistant .streamchat-body",
    "naive-event": ".jp-OutputArea-output.jp-RenderedMarkdown",
    "naive-30": ".jp-OutputArea-output.jp-RenderedMarkdown",
}
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")


# The notebook's kernel runs no cell (JupyterLab's execution indicator, where it has one).
KERNEL_IDLE = (
    "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
    " return !s || s.getAttribute('data-status') === 'idle'; }"
)


class Bench:
    def __init__(
        self,
        browser: Any,
        base: str,
        token: str,
        root: Path,
        server: Server,
        trace: Path | None = None,
    ) -> None:
        self.browser, self.base, self.token, self.root = browser, base, token, root
        self.server = server
        self.trace = trace
        self.verbose = trace is not None
        self.pages: dict[str, Any] = {}

    def page(self, contender: str) -> Any:
        """One JupyterLab tab per contender, its notebook open and its kernel warm."""
        if contender in self.pages:
            return self.pages[contender]
        kernel = "bench-base" if contender == "base" else "bench-now"
        url = self.server.url
        if contender.startswith("naive"):
            cells = [NAIVE, "naive(**json.load(open('params.json')))"]
        else:
            cells = [
                f"from streamchat import StreamChat\nchat = StreamChat({url!r}, speed=0)\nchat"
            ]
        name = f"{contender}.ipynb"
        (self.root / name).write_text(notebook_json(cells, kernel), encoding="utf-8")
        context = self.browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.goto(f"{self.base}/lab/tree/{name}?token={self.token}&reset")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell .cm-content", timeout=120_000)
        page.wait_for_function(KERNEL_IDLE, timeout=120_000)
        page.wait_for_timeout(3000)  # the kernel connects (measurement set-up, not sync)
        self.run_cell(page, 0)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        page.evaluate(INSTRUMENT, MARKER)
        self.pages[contender] = (page, cdp)
        if contender.startswith("naive"):
            page.wait_for_timeout(2000)  # the set-up cell ran
        else:
            page.wait_for_selector(".streamchat textarea.streamchat-input", timeout=120_000)
        self.measure(contender, "warm", 4000)  # imports, lexers: not costs per character
        return self.pages[contender]

    def wait_idle(self, page: Any, contender: str) -> None:
        """Until the naive cell has run. One still busy GIVE_UP s later (its display
        updates never caught up) is interrupted and its tab closed, since the page would
        still work through the updates already sent; the next run opens a fresh one. This
        run is recorded as it stands ("done after": never)."""
        try:
            page.wait_for_function(KERNEL_IDLE, timeout=GIVE_UP * 1000)
        except Exception:  # playwright's TimeoutError
            self.interrupt(f"{contender}.ipynb")
            page.context.close()
            del self.pages[contender]

    def interrupt(self, notebook: str) -> None:
        """Interrupt the kernel of `notebook` and wait for it to be idle (Jupyter
        Server's REST API)."""
        headers = {"Authorization": f"token {self.token}"}

        def get(path: str) -> Any:
            request = urllib.request.Request(f"{self.base}{path}", headers=headers)
            with urllib.request.urlopen(request) as response:
                return json.load(response)

        sessions = [s for s in get("/api/sessions") if s["path"].endswith(notebook)]
        if not sessions:
            raise RuntimeError(f"{notebook}: no kernel session to interrupt")
        for session in sessions:
            kernel = session["kernel"]["id"]
            url = f"{self.base}/api/kernels/{kernel}/interrupt"
            post = urllib.request.Request(url, data=b"", headers=headers, method="POST")
            urllib.request.urlopen(post).close()
            deadline = time.monotonic() + GIVE_UP
            while get(f"/api/kernels/{kernel}")["execution_state"] != "idle":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{notebook}: the kernel stayed busy")
                time.sleep(0.5)  # polling a server's state, not synchronising a test

    @staticmethod
    def run_cell(page: Any, index: int) -> None:
        page.locator(".jp-Notebook .jp-CodeCell .cm-content").nth(index).click()
        page.keyboard.press("Shift+Enter")

    def start(self, contender: str, page: Any, prompt: str) -> None:
        if contender.startswith("naive"):
            hz = 30 if contender == "naive-30" else 0
            params = {"url": self.server.url, "prompt": prompt, "hz": hz}
            (self.root / "params.json").write_text(json.dumps(params))
            self.run_cell(page, 1)
        else:
            # A fresh chat for each answer (run the cell again), then ask in its box.
            self.run_cell(page, 0)
            page.wait_for_function(
                "() => { const l = document.querySelectorAll('.streamchat-log');"
                " return l.length === 1 && !l[0].querySelector('.streamchat-turn'); }"
            )
            box = page.locator("textarea.streamchat-input").last
            box.fill(prompt)
            box.press("Enter")

    def measure(self, contender: str, kind: str, rate: float) -> dict[str, float]:
        page, cdp = self.page(contender)
        page.evaluate(ARM, SELECTORS[contender])
        page.evaluate("() => window.scrollTo(0, 0)")
        before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        tracing = self.trace is not None and kind != "warm"
        if tracing:
            self.browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
        self.server.done.clear()
        self.start(contender, page, f"{kind}@{rate:g}")
        length = len(text_for(kind, self.server.scale))
        if not self.server.done.wait(length / rate + 120):
            raise RuntimeError(f"{contender} {kind}@{rate}: the stream did not end")
        with contextlib.suppress(Exception):  # playwright's TimeoutError: never caught up
            page.wait_for_function(
                "() => window.__bench.done !== null", timeout=GIVE_UP * 1000, polling=20
            )
        after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        seen = page.evaluate(COLLECT)
        if tracing:
            assert self.trace is not None
            self.trace.mkdir(parents=True, exist_ok=True)
            name = f"{contender}-{kind}@{rate:g}-{time.strftime('%H%M%S')}.json"
            (self.trace / name).write_bytes(self.browser.stop_tracing())
            print(f"  trace: {self.trace / name}", flush=True)
            for line in long_tasks(json.loads((self.trace / name).read_text())):
                print(f"    {line}", flush=True)
        if contender.startswith("naive"):
            self.wait_idle(page, contender)
        if self.verbose and kind != "warm" and contender in ("now", "base"):
            stats = page.evaluate(LIVE_STATS, SELECTORS[contender])
            if stats:
                print(f"  {contender} {kind}@{rate:g} in place: {stats}", flush=True)
        return figures(seen, before, after, self.server.first, self.server.last)


# What a trace records: the main thread's tasks and what they did (script, style, layout,
# parsing), and the JavaScript profiler's samples, to name the functions in a long task.
TRACE_CATEGORIES = [
    "toplevel",
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8.execute",
    "disabled-by-default-v8.cpu_profiler",
]
TOP_TASKS = ("RunTask", "ThreadControllerImpl::RunTask")


def long_tasks(trace: dict[str, Any], over: float = 50.0) -> list[str]:
    """Each main-thread task longer than `over` ms of a Chrome trace: its length, the
    trace events it spent most time in and the JavaScript functions sampled in it."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"
    }
    mine = [e for e in events if (e.get("pid"), e.get("tid")) in main and e.get("ph") == "X"]
    # A task is traced twice, one event inside the other: the outer one counts.
    outer = next((n for n in TOP_TASKS[::-1] if any(e["name"] == n for e in mine)), TOP_TASKS[0])
    tasks = [e for e in mine if e["name"] == outer and e.get("dur", 0) > over * 1000]
    samples = profile_samples(events, main)
    out = []
    for task in tasks:
        start, end = task["ts"], task["ts"] + task["dur"]
        inside: dict[str, float] = {}
        for e in mine:
            if e is not task and start <= e["ts"] < end and e["name"] not in TOP_TASKS:
                inside[e["name"]] = inside.get(e["name"], 0.0) + e.get("dur", 0) / 1000
        top = sorted(inside.items(), key=lambda item: -item[1])[:6]
        named: dict[str, int] = {}
        for ts, stack in samples:
            if start <= ts < end:
                for frame in dict.fromkeys(stack):
                    named[frame] = named.get(frame, 0) + 1
        functions = sorted(named.items(), key=lambda item: -item[1])[:12]
        out.append(
            f"task {task['dur'] / 1000:.0f} ms ({task.get('tdur', 0) / 1000:.0f} ms CPU)"
            f" at {start / 1000:.0f}: "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in top)
            + " | samples: "
            + ", ".join(f"{name}x{n}" for name, n in functions)
        )
    return out


def profile_samples(events: list[dict[str, Any]], main: set[Any]) -> list[tuple[float, list[str]]]:
    """The CPU profiler's samples on the main thread: (time, its stack's function names)."""
    nodes: dict[int, tuple[str, int | None]] = {}
    samples: list[tuple[float, list[str]]] = []
    start: dict[tuple[Any, str], float] = {}
    for e in events:
        if e.get("name") == "Profile" and (e.get("pid"), e.get("tid")) in main:
            start[(e["pid"], e["id"])] = e["args"]["data"]["startTime"]
    for e in events:
        if e.get("name") != "ProfileChunk" or (e.get("pid"), e.get("id")) not in start:
            continue
        data = e["args"]["data"]
        profile = data.get("cpuProfile", {})
        for node in profile.get("nodes", []):
            frame = node["callFrame"]
            label = frame.get("functionName") or "(anonymous)"
            if frame.get("url", "").endswith(".js") and "widget" in frame.get("url", ""):
                label = f"{label}:{frame.get('lineNumber', 0) + 1}"
            nodes[node["id"]] = (label, node.get("parent"))
        # Each chunk's deltas go on from the last sample of the chunk before it.
        key = (e["pid"], e["id"])
        deltas = data.get("timeDeltas", [])
        for node_id, delta in zip(profile.get("samples", []), deltas, strict=False):
            start[key] += delta
            at = start[key]
            stack, cursor = [], node_id
            while cursor is not None and cursor in nodes:
                label, cursor = nodes[cursor]
                stack.append(label)
            samples.append((at, stack))
    return samples


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def figures(
    seen: dict[str, Any],
    before: dict[str, float],
    after: dict[str, float],
    first: float,
    last: float,
) -> dict[str, float]:
    origin = seen["origin"]
    start = first * 1000 - origin  # the first byte, in the page's clock
    done = seen["done"]
    end = done if done is not None else last * 1000 - origin + GIVE_UP * 1000
    frames = [t for t in seen["frames"] if start <= t <= end]
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    seconds = max(1e-3, (end - start) / 1000)
    tasks = [d for t, d in seen["tasks"] if start - 50 <= t <= end]
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in METRICS}
    return {
        "fps": len(frames) / seconds,
        "p99 ms": percentile(gaps, 0.99),
        "longest ms": max(tasks, default=0.0),
        "style+layout ms/s": 1000
        * (delta["LayoutDuration"] + delta["RecalcStyleDuration"])
        / seconds,
        "task ms/s": 1000 * delta["TaskDuration"] / seconds,
        "done after s": (done + origin) / 1000 - last if done is not None else float("inf"),
    }


COLUMNS = ("fps", "p99 ms", "longest ms", "style+layout ms/s", "task ms/s", "done after s")


def median_row(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in COLUMNS}


def print_row(label: str, row: dict[str, float]) -> None:
    cells = "".join(
        f"{row[key]:>18.2f}" if key == "done after s" else f"{row[key]:>18.0f}" for key in COLUMNS
    )
    print(f"{label:<34}{cells}", flush=True)


def check_targets(table: dict[tuple[str, str, float], dict[str, float]]) -> list[str]:
    missed = []
    for (contender, kind, rate), row in table.items():
        if contender != "now":
            continue
        label = f"{kind}@{rate:g}"
        if row["longest ms"] > 50:
            missed.append(f"{label}: a {row['longest ms']:.0f} ms task")
        if row["done after s"] > 0.15:
            missed.append(f"{label}: done {row['done after s']:.2f} s after the last byte")
        if rate <= 2000 and row["p99 ms"] > 34:
            missed.append(f"{label}: p99 frame {row['p99 ms']:.0f} ms")
        prose = table.get(("now", "prose", rate))
        if prose and kind != "prose":
            if row["p99 ms"] > 1.5 * prose["p99 ms"]:
                missed.append(f"{label}: p99 frame {row['p99 ms']:.0f} ms vs prose's")
            if kind in ("code", "table") and row["style+layout ms/s"] > 1.5 * max(
                prose["style+layout ms/s"], 1.0
            ):
                missed.append(f"{label}: style+layout {row['style+layout ms/s']:.0f} ms/s")
    return missed


def conversation(bench: Bench, turns: int) -> None:
    """N answers in one chat: per-update main-thread time, first turns against last."""
    page, cdp = bench.page("now")
    bench.run_cell(page, 0)
    page.wait_for_function(
        "() => { const l = document.querySelectorAll('.streamchat-log');"
        " return l.length === 1 && !l[0].querySelector('.streamchat-turn'); }"
    )
    per_update = []
    for turn in range(turns):
        before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        bench.server.done.clear()
        box = page.locator("textarea.streamchat-input").last
        box.fill("turn@2000")
        box.press("Enter")
        bench.server.done.wait(120)
        page.wait_for_function(
            "(n) => { const a = document.querySelectorAll('.streamchat-assistant');"
            " return a.length === n && a[n - 1].dataset.status === 'done'; }",
            arg=turn + 1,
            timeout=60_000,
            polling=250,  # a query of the whole page every frame would be counted too
        )
        after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        updates = page.evaluate(
            "() => [...document.querySelectorAll('.streamchat-body')].pop()"
            ".streamchat.live.stats.updates"
        )
        each = {
            name: 1000 * (after[name] - before[name]) / max(1, updates)
            for name in ("TaskDuration", "ScriptDuration", "RecalcStyleDuration", "LayoutDuration")
        }
        per_update.append(each["TaskDuration"])
        print(
            f"turn {turn + 1:>3}: {updates:>4} updates, {per_update[-1]:.2f} ms main thread each"
            f" (script {each['ScriptDuration']:.2f}, style {each['RecalcStyleDuration']:.2f},"
            f" layout {each['LayoutDuration']:.2f})"
        )
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    nodes = page.evaluate("() => document.getElementsByTagName('*').length")
    first, last = statistics.median(per_update[:5]), statistics.median(per_update[-5:])
    print(
        f"per update: first 5 turns {first:.2f} ms, last 5 {last:.2f} ms (medians) "
        f"(ratio {last / first:.2f}, target <= 1.2)"
    )
    print(
        f"at the end: {nodes} elements in the page, CDP Nodes {metrics.get('Nodes', 0):.0f}, "
        f"JS heap used {metrics.get('JSHeapUsedSize', 0) / 1e6:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=["full", "quick"], default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rows",
        default="prose@200,code@200,table@200,prose@2000,code@2000,table@2000,"
        "prose@10000,code@10000,table@10000,mixed@200,mixed@2000,mixed@10000",
    )
    parser.add_argument("--contenders", default="now,base,naive-event,naive-30")
    parser.add_argument("--baseline", metavar="SRC", help="another tree's src/ (main 0cc2df0)")
    parser.add_argument("--src", default=str(ROOT / "src"), help="the src/ measured as 'now'")
    parser.add_argument("--turns", type=int, default=0, help="measure a long conversation")
    parser.add_argument(
        "--trace", metavar="DIR", help="record a Chrome trace of each run; print its long tasks"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    contenders = [c for c in args.contenders.split(",") if c != "base" or args.baseline]
    rows = [(kind, float(rate)) for kind, rate in (r.split("@") for r in args.rows.split(","))]
    kernels = {"bench-now": os.path.abspath(args.src)}
    if args.baseline:
        kernels["bench-base"] = os.path.abspath(args.baseline)
    server = Server(1.0 if args.scale == "full" else 0.25)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; scale {args.scale}")
    with jupyter_lab(kernels) as (base, token, root), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        trace = Path(args.trace) if args.trace else None
        bench = Bench(browser, base, token, root, server, trace)
        if args.turns:
            conversation(bench, args.turns)
            return
        print(f"{'row':<34}" + "".join(f"{c:>18}" for c in COLUMNS))
        table = {}
        for contender in contenders:
            bench.page(contender)
        for kind, rate in rows:
            # The contenders' runs interleaved (now, base, ..., now, base, ...): on a
            # shared machine the load drifts, and each contender sees the same drift.
            runs: dict[str, list[dict[str, float]]] = {c: [] for c in contenders}
            for _ in range(args.runs):
                for contender in contenders:
                    runs[contender].append(bench.measure(contender, kind, rate))
            for contender in contenders:
                table[(contender, kind, rate)] = median_row(runs[contender])
                print_row(f"{kind}@{rate:g} {contender}", table[(contender, kind, rate)])
            load = os.getloadavg()
            print(f"  (load {load[0]:.1f})", flush=True)
        load = os.getloadavg()
        print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        missed = check_targets(table)
        print("targets met" if not missed else "targets missed:\n  " + "\n  ".join(missed))
        browser.close()


if __name__ == "__main__":
    main()
