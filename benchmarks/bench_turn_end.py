"""What a turn end costs as a conversation grows: bytes sent and time, at turn 10 and 500.

At each turn end the chat rewrites its saved static copy (through its displays) and
syncs its turns; this counts the bytes of both (JSON, as the session packs them) and
times `Driver._finish`, for 1 KB answers from a Python function (no server, no kernel: the
comm and the displays are replaced by counters). `--baseline SRC` runs the same in a
second process with another tree's `src` first on the path, side by side.

    python benchmarks/bench_turn_end.py [--turns 500] [--baseline ../base/src]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ANSWER = ("Some **bold** text and `code` in a paragraph that goes on. " * 20)[:1000]


def measure(turns: int) -> dict[int, tuple[float, int, int]]:
    from streamchat.widget import StreamChat

    chat = StreamChat(lambda messages: ANSWER, speed=0)
    sent = {"comm": 0, "copy": 0}

    def send(msg: dict, buffers: object = None) -> None:
        sent["comm"] += len(json.dumps(msg, ensure_ascii=False).encode())

    def update(data: dict, metadata: dict) -> None:
        sent["copy"] += len(json.dumps([data, metadata], ensure_ascii=False).encode())

    chat._send = send
    chat._displays.update = update
    owner = getattr(chat, "_driver", chat)  # where `_finish` is (the widget before the driver)
    ask = getattr(chat, "ask", chat.send)  # `send(prompt)` before `ask`
    finish = owner._finish
    rows: dict[int, tuple[float, int, int]] = {}

    def timed(*args: object) -> None:
        comm, copy = sent["comm"], sent["copy"]
        started = time.perf_counter()
        finish(*args)
        rows[len(rows) + 1] = (
            time.perf_counter() - started,
            sent["comm"] - comm,
            sent["copy"] - copy,
        )

    owner._finish = timed
    for n in range(turns):
        ask(f"question {n}")
        assert chat.wait(30)
    rows[0] = (len(type(chat).__mro__), sent["comm"], sent["copy"])  # totals
    chat.close()
    return rows


def report(label: str, rows: dict[int, tuple[float, int, int]], turns: int) -> None:
    mro, comm, copy = rows.pop(0)
    print(f"{label}: MRO {mro}, {turns} turns sent {comm / 1e6:.1f} MB of messages and state,")
    print(f"  {copy / 1e6:.1f} MB of static copy in all")
    for at in (10, 100, turns):
        window = [rows[n] for n in range(max(1, at - 4), at + 1)]
        ms = sorted(row[0] for row in window)[len(window) // 2] * 1000
        print(
            f"  turn {at:4}: turn end {ms:6.1f} ms (median of 5), messages and state "
            f"{rows[at][1] / 1024:7.1f} KB, static copy {rows[at][2] / 1024:7.1f} KB"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--baseline", help="another tree's src directory, measured alike")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.turns)))
        return
    runs = [("this tree", None)] + ([("baseline", args.baseline)] if args.baseline else [])
    for label, src in runs:
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
        out = subprocess.run(
            [sys.executable, __file__, "--turns", str(args.turns), "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows = {int(k): tuple(v) for k, v in json.loads(out).items()}
        report(label, rows, args.turns)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
