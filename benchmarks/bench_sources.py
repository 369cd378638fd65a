"""What a fast or endless Python source costs the kernel's loop: stalls, Stop, memory.

Every chat in a kernel shares one loop thread; a source that holds it freezes them all.
For each source a child process (this tree, and `--baseline SRC` with another tree's
`src` first on the path) builds a `StreamChat` with no front end, lets it type for
`--seconds` while a heartbeat on the shared loop ticks every 20 ms, then presses Stop and
closes the chat. It reports the longest gap between two ticks (the loop's longest stall),
how long `stop()` took and the turn's status after it, and the process's resident memory
before the chat, while it typed, and after `close()`. A third row holds what the
typewriter keeps per character of a CJK backlog (7.9 M characters at speed 10).

    python benchmarks/bench_sources.py [--seconds 5] [--baseline ../base/src]

Sources: 0.9 MB of text as one-character items at speed 120 ("fast"), an endless
generator at speed 10 ("endless"). A baseline that never lets Stop return within
`GIVE_UP` seconds is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GIVE_UP = 60.0

CHILD = r"""
import gc, json, sys, threading, time

from streamchat import _runner
from streamchat.widget import StreamChat

TICK = 0.02


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class Heartbeat:
    def __init__(self):
        self.ticks = []
        self.running = True
        _runner.call_soon(self.tick)

    def tick(self):
        self.ticks.append(time.monotonic())
        if self.running:
            _runner.loop().call_later(TICK, self.tick)

    def longest(self):
        self.running = False
        self.ticks.append(time.monotonic())
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:]))


def endless():
    n = 0
    while True:
        n += 1
        yield f"word{n} "


def source(kind):
    if kind == "fast":
        text = ("Lorem ipsum dolor sit amet, **consectetur** adipiscing elit. " * 15_000)
        return iter(text[:900_000]), 120
    return endless(), 10


kind, seconds, give_up = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
_runner.submit(__import__("asyncio").sleep(0)).result()  # the loop thread exists
gc.collect()
before = rss()
items, speed = source(kind)
chat = StreamChat(items, speed=speed)
started = time.monotonic()
while chat.status != "streaming" and time.monotonic() - started < give_up:
    time.sleep(0.01)
beat = Heartbeat()
time.sleep(seconds)  # the window measured
typing = rss()
stopped = {}


def stop():
    at = time.monotonic()
    chat.stop()
    stopped["took"] = time.monotonic() - at


thread = threading.Thread(target=stop, daemon=True)
thread.start()
thread.join(give_up)
stall = beat.longest()
status = chat.turns[-1]["status"] if chat.turns else chat.status
result = {
    "stall": stall,
    "stop": stopped.get("took"),
    "status": status,
    "typing_mb": (typing - before) / 2**20,
}
if "took" in stopped:
    chat.close()
    del chat, items
    gc.collect()
    time.sleep(0.5)
    gc.collect()
    result["closed_mb"] = (rss() - before) / 2**20
print(json.dumps(result))
sys.stdout.flush()
import os
os._exit(0)  # a baseline's reader thread may still hold the interpreter
"""

BACKLOG = r"""
import json, sys, tracemalloc
from streamchat.typewriter import Typewriter

tracemalloc.start()
typewriter = Typewriter(10)
piece = "中文字符测试，流式输出的打字机。" * 625  # 10,000 characters
now = 0.0
for _ in range(790):
    typewriter.push(piece, now)
    now += 0.001
held = typewriter.pending
size = tracemalloc.get_traced_memory()[0]
print(json.dumps({"held": held, "bytes_per_char": size / max(held, 1)}))
"""


def run(src: str | None, code: str, *args: str) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=GIVE_UP * 3,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"gave up after {GIVE_UP * 3:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def fmt(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--baseline", metavar="SRC", help="another tree's src/ (main 0cc2df0)")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    trees = [("this tree", here)] + ([("baseline", args.baseline)] if args.baseline else [])
    print(f"load average: {os.getloadavg()[0]:.2f}; {args.seconds:.0f} s of typing a source")
    head = f"{'source':<10}{'tree':<11}{'longest stall s':>16}{'stop s':>8}{'status':>9}"
    print(head + f"{'MB typing':>11}{'MB after close':>16}")
    for kind in ("fast", "endless"):
        for name, src in trees:
            row = run(src, CHILD, kind, str(args.seconds), str(GIVE_UP))
            if "error" in row:
                print(f"{kind:<10}{name:<11}  {row['error']}")
                continue
            stop = fmt(row["stop"], ".2f") if row["stop"] is not None else f">{GIVE_UP:.0f}"
            print(
                f"{kind:<10}{name:<11}{row['stall']:>16.2f}{stop:>8}{row['status']:>9}"
                f"{row['typing_mb']:>11.0f}{fmt(row.get('closed_mb'), '.0f'):>16}"
            )
    print()
    print(f"{'typewriter backlog, 7.9 M CJK characters':<44}{'bytes per character':>20}")
    for name, src in trees:
        row = run(src, BACKLOG)
        value = row.get("bytes_per_char")
        print(f"{name:<44}{fmt(value, '.1f') if value else row.get('error'):>20}")


if __name__ == "__main__":
    main()
