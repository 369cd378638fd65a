"""What a streamed answer costs the kernel: StreamChat against the naive display/update loop.

A real ipykernel runs both, in the same run, on the same three answers (prose, one long
fenced code block, a long table) streamed by a loopback server at 200 chars/s:

* StreamChat types the answer at `speed=200`;
* the naive notebook loop reads the same stream with httpx and calls
  `display(Markdown(acc), display_id=True).update(...)` at most 60 times a second;
* the floor: a thread that reads the same stream from a plain socket 30 times a second,
  decodes each event's JSON and sends what came as one comm message. No HTTP library,
  no pacing, no Markdown: it is what any widget that shows the stream at the target's
  30 updates a second costs this kernel at the least (each message also wakes the
  IOPub thread and zmq's I/O thread).

Kernel CPU is the kernel process's own `time.process_time()` (all its threads: the loop
thread that renders, the IOPub thread that serializes) over the answer; bytes are the
JSON of what the code chose to send (the widget's message or synced state, the display
data), and "wire B/char" counts the IOPub content with the envelope Jupyter puts
around it (comm id, method, metadata). msgs/s counts every IOPub message of the answer
(patches, frames, state updates, the turn's end) per second; updates/s the updates a
view shows from them (a patch is one, a frames message one per frame). "vs floor" and
"vs base" are the ratios of us/char to the floor's and to the baseline tree's, measured
in the same run.

    python benchmarks/bench_kernel_cost.py [--rate 200] [--scale 1.0] [--kinds prose,code,table]
        [--baseline path/to/other/src]   (a second kernel runs that tree's StreamChat)

Targets for StreamChat on every kind: us/char at or below the floor's, <= 8 wire bytes a
character, <= 12 messages a second, >= 30 updates a second.
"""

from __future__ import annotations

import argparse
import ast
import json
import os

from jupyter_client.manager import start_new_kernel

import paced

# Per live answer: messages a second, IOPub bytes a character with the comm envelope, and
# updates a view shows a second (frames played); us/char is held to the floor's in the run.
TARGETS = {"msgs/s": 12.0, "wire/char": 8.0, "updates/s": 30.0}
TOKEN = 4  # characters per streamed token


def prose(scale: float = 1.0) -> str:
    """About 4,000 characters of an ordinary answer: headings, paragraphs, a list."""
    sections = []
    for n in range(max(1, round(6 * scale))):
        sections.append(
            f"## Step {n + 1}: configure the **client**\n\n"
            "Streaming lets the reader see the first words at once. Open the connection "
            "with `httpx.AsyncClient`, send the request, and read the body as it arrives; "
            "each [event](https://html.spec.whatwg.org/multipage/server-sent-events.html) "
            "carries one *delta* of the answer.\n\n"
            "- keep one client for every request\n- set a read timeout\n"
            "- close the stream when the reader clicks **Stop**\n\n"
            "That is all the set-up; the rest is typing the text out at a steady pace, "
            "so the answer reads like a person writing it.\n\n"
        )
    return "".join(sections)


def code(scale: float = 1.0) -> str:
    """One fenced Python block of 260 lines."""
    lines = ["Here is the whole module:", "", "```python"]
    for n in range(max(1, round(65 * scale))):
        lines += [
            f"async def fetch_{n}(client: httpx.AsyncClient, url: str) -> bytes:",
            f'    """Fetch part {n} with a timeout of {n % 7 + 1} seconds."""',
            f"    response = await client.get(url, timeout={n % 7 + 1})  # retry later",
            "    return response.content",
        ]
    lines += ["```", ""]
    return "\n".join(lines)


def table(scale: float = 1.0) -> str:
    """A table of 200 rows."""
    rows = [
        "Latency by endpoint:",
        "",
        "| # | Endpoint | p50 | p99 | Notes |",
        "|---|---|--:|--:|---|",
    ]
    for n in range(max(1, round(200 * scale))):
        rows.append(f"| {n} | `/v1/items/{n}` | {n % 90 + 10} ms | {n % 400 + 100} ms | ok |")
    return "\n".join(rows) + "\n"


KINDS = {"prose": prose, "code": code, "table": table}
# Run once by each contender before the measured answers: the first chat in a kernel
# imports the HTTP stack and the renderer, and the first Python code block builds
# Pygments' lexer (~0.1 s): one-offs per kernel, not costs per character.
WARM_UP = "warm-up"


def _server_answer(kind: str, scale: float) -> str:
    if kind == WARM_UP:  # one of each kind: the first code block compiles its lexer
        return prose(0.1) + code(0.02) + table(0.01)
    return KINDS[kind](scale)


def serve(rate: float, scale: float) -> None:
    """The loopback server: the answer named by the prompt, TOKEN characters an event."""

    def tokens(kind: str) -> list[str]:
        answer = _server_answer(kind, scale)
        return [answer[start : start + TOKEN] for start in range(0, len(answer), TOKEN)]

    paced.serve(tokens, rate / TOKEN)


SETUP = """
import json, os, socket, threading, time, urllib.parse
import anywidget, httpx
from IPython.display import Markdown, display
from streamchat import StreamChat

def thread_cpu():
    # CPU seconds per thread of this process, by Python thread name ("native" for the
    # threads Python did not start: zmq's I/O threads).
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "native")
        cpu[name] = cpu.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return cpu

def spent(before):
    after = thread_cpu()
    return {name: after[name] - before.get(name, 0.0) for name in after}

def run_streamchat(url, kind, rate):
    chat = StreamChat(url, speed=rate)
    threads = thread_cpu()
    c0, t0 = time.process_time(), time.monotonic()
    getattr(chat, "ask", chat.send)(kind)  # `send(prompt)` before `ask` (a baseline)
    chat.wait(600)
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    chars = len(chat.messages[-1]["content"])
    status = chat.status
    chat.close()
    return (cpu, wall, chars, status, spent(threads))

class Floor(anywidget.AnyWidget):
    _esm = "export default { render() {} }"

def run_floor(url, kind, rate):
    # The least any widget that shows this stream 30 times a second can cost: a thread
    # reads it from a plain socket 30 times a second, decodes each event's JSON and
    # sends what came as one comm message. No HTTP library, no pacing, no Markdown.
    widget = Floor()
    parts = urllib.parse.urlsplit(url)
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": kind}]}
    ).encode()
    head = f"POST {parts.path} HTTP/1.1\\r\\nHost: {parts.netloc}\\r\\n"
    head += f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
    shown = []
    def frames():
        with socket.create_connection((parts.hostname, parts.port)) as sock:
            sock.sendall(head.encode() + body)
            sock.setblocking(False)
            buffer, done, at = b"", False, time.monotonic()
            while not done:
                at += 1 / 30
                time.sleep(max(0.0, at - time.monotonic()))
                while True:
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        break
                    done = done or not data
                    if not data:
                        break
                    buffer += data
                *events, buffer = buffer.split(b"\\n\\n")
                new = []
                for event in events:
                    data = event.rpartition(b"data: ")[2]
                    if data == b"[DONE]":
                        done = True
                    elif data.startswith(b"{"):
                        new.append(json.loads(data)["choices"][0]["delta"].get("content") or "")
                if new:
                    shown.append("".join(new))
                    widget.send([1, "b", "e", 0, 0, shown[-1]])
    threads = thread_cpu()
    c0, t0 = time.process_time(), time.monotonic()
    reader = threading.Thread(target=frames, name="floor")
    reader.start()
    reader.join()
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    widget.close()
    return (cpu, wall, len("".join(shown)), "done", spent(threads))

def run_naive(url, kind, rate):
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": kind}]}
    handle = display(Markdown(""), display_id=True)
    acc, last = "", 0.0
    threads = thread_cpu()
    c0, t0 = time.process_time(), time.monotonic()
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            acc += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            now = time.monotonic()
            if now - last >= 1 / 60:
                handle.update(Markdown(acc))
                last = now
    handle.update(Markdown(acc))
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    return (cpu, wall, len(acc), "done", spent(threads))
"""


def _run(client, call: str) -> tuple[tuple, list[dict]]:
    """Execute `call` in the kernel; return its value and the IOPub messages it caused."""
    messages: list[dict] = []
    msg_id = client.execute(f"_bench = {call}\n_bench", store_history=False)
    value = None
    while True:
        message = client.get_iopub_msg(timeout=900)
        if message["parent_header"].get("msg_id") != msg_id:
            messages.append(message)  # comm messages sent from the loop thread
            continue
        kind = message["msg_type"]
        if kind == "execute_result":
            value = ast.literal_eval(message["content"]["data"]["text/plain"])
        elif kind == "error":
            raise RuntimeError("\n".join(message["content"]["traceback"]))
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            break
        messages.append(message)
    return value, messages


def _payload(message: dict) -> object:
    """What the code chose to send: the display data, or the widget's message or state."""
    data = message["content"]["data"]
    if message["msg_type"] == "comm_msg":
        return data.get("content", data.get("state"))
    return data


def _frames(payload: object) -> int:
    """Updates a view shows from one message: a patch is one; a frames message
    ([turn, "f", keep, item...]) one per frame (a string or an array; a number is a
    delay); a stop ([turn, "s"]) and any other message none."""
    if not isinstance(payload, list) or len(payload) < 2:
        return 0
    if payload[1] == "f":
        return sum(isinstance(item, str | list) for item in payload[3:])
    return 0 if payload[1] == "s" else 1


def _size(value: object) -> int:
    """Characters of `value` as JSON the way the kernel's session packs it (no spaces)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _figures(value: tuple, messages: list[dict], update_type: str) -> dict[str, float]:
    cpu, wall, chars, status, threads = value
    assert status == "done", status
    sent = [
        m for m in messages if m["msg_type"] in ("comm_msg", "display_data", "update_display_data")
    ]
    payload = sum(_size(_payload(m)) for m in sent)
    wire = sum(_size(m["content"]) for m in sent)
    if update_type == "comm_msg":
        updates = sum(_frames(_payload(m)) for m in sent if m["msg_type"] == "comm_msg")
    else:
        updates = sum(1 for m in sent if m["msg_type"] == update_type)
    return {
        "chars": chars,
        "us/char": 1e6 * cpu / chars,
        "cpu %": 100 * cpu / wall,
        "bytes/char": payload / chars,
        "wire/char": wire / chars,
        "msgs/s": len(sent) / wall,
        "updates/s": updates / wall,
        "threads": {name: 1e6 * seconds / chars for name, seconds in threads.items()},
    }


THREADS = {
    "streamchat-loop": "loop",
    "MainThread": "main",
    "IOPub": "iopub",
    "native": "zmq (native)",
}


def _by_thread(figures: dict[str, float]) -> str:
    """CPU us/char per thread: where the kernel's time went."""
    threads: dict[str, float] = figures["threads"]  # type: ignore[assignment]
    known = {label: threads.get(name, 0.0) for name, label in THREADS.items()}
    known["other"] = sum(v for name, v in threads.items() if name not in THREADS)
    return "  ".join(f"{label} {value:.0f}" for label, value in known.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0, help="chars/s, stream and typing")
    parser.add_argument("--scale", type=float, default=1.0, help="answer length factor")
    parser.add_argument("--kinds", default="prose,code,table")
    parser.add_argument(
        "--baseline", metavar="SRC", help="also run StreamChat from another tree's src/"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.rate, args.scale)
        return
    server, url = paced.start(__file__, "--rate", str(args.rate), "--scale", str(args.scale))
    kernels = {"": start_new_kernel(kernel_name="python3")}
    if args.baseline:  # its streamchat first on the kernel's path
        env = {**os.environ, "PYTHONPATH": os.path.abspath(args.baseline)}
        kernels[" (baseline)"] = start_new_kernel(kernel_name="python3", env=env)
    try:
        for _, client in kernels.values():
            _run(client, f"exec({SETUP!r}) or ()")
            for call in ("run_streamchat", "run_naive"):
                _run(client, f"{call}({url!r}, {WARM_UP!r}, {args.rate})")
        _measure(kernels, url, args)
    finally:
        for manager, client in kernels.values():
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        server.terminate()
        server.wait(timeout=10)


def _measure(kernels: dict, url: str, args: argparse.Namespace) -> None:
    """Print the table: each kind's StreamChat, the baseline's if any, the naive loop and
    the floor, with StreamChat's CPU as a ratio to the floor's and the baseline's, all
    measured in this run."""
    print(
        f"{'':<36}{'chars':>7}{'msgs/s':>8}{'wire B/char':>12}{'us/char':>9}"
        f"{'vs floor':>10}{'vs base':>9}{'updates/s':>11}{'cpu %':>7}"
    )
    failed, breakdown = [], []
    for kind in args.kinds.split(","):
        runs = [
            (f"StreamChat{label}", client, f"run_streamchat({url!r}, {kind!r}, {args.rate})")
            for label, (_, client) in kernels.items()
        ]
        runs.append(
            ("naive display/update", kernels[""][1], f"run_naive({url!r}, {kind!r}, {args.rate})")
        )
        runs.append(("floor", kernels[""][1], f"run_floor({url!r}, {kind!r}, {args.rate})"))
        results = {}
        for name, client, call in runs:
            update = "update_display_data" if name.startswith("naive") else "comm_msg"
            results[name] = _figures(*_run(client, call), update)
        floor = results["floor"]["us/char"]
        base = results.get("StreamChat (baseline)", {}).get("us/char")
        for name, figures in results.items():
            ratio = f"{figures['us/char'] / floor:.2f}x"
            versus = f"{figures['us/char'] / base:.2f}x" if base else "-"
            print(
                f"{kind + ', ' + name:<36}{figures['chars']:>7}{figures['msgs/s']:>8.1f}"
                f"{figures['wire/char']:>12.1f}{figures['us/char']:>9.0f}{ratio:>10}"
                f"{versus:>9}{figures['updates/s']:>11.1f}{figures['cpu %']:>7.1f}",
                flush=True,
            )
            breakdown.append(f"{kind + ', ' + name:<36}{_by_thread(figures)}")
        ours = results["StreamChat"]
        limits = {"msgs/s": TARGETS["msgs/s"], "wire/char": TARGETS["wire/char"], "us/char": floor}
        failed += [f"{kind} {key}" for key, limit in limits.items() if ours[key] > limit]
        if ours["updates/s"] < TARGETS["updates/s"]:
            failed.append(f"{kind} updates/s")
    print("\nkernel CPU by thread, us/char (the rest of us/char: threads that ended)")
    print("\n".join(breakdown))
    print("targets met" if not failed else f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
