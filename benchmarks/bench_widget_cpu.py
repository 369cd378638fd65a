"""Kernel CPU while a StreamChat types at 200 chars/s, in a real ipykernel.

The demo server runs in its own process (`streamchat serve`), so the kernel's CPU
time is the widget's pipeline alone: transport, SSE, provider parsing, typewriter,
incremental Markdown, patches and comm messages. CPU is the kernel process's own
`time.process_time()` (all threads) over the answer's wall time.

    python benchmarks/bench_widget_cpu.py [--speed 200] [--answers 3]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys

from jupyter_client.manager import start_new_kernel

MEASURE = """
import time
from streamchat import StreamChat
chat = StreamChat({url!r}, speed={speed})
sent = []
original = chat._send
chat._send = lambda msg, buffers=None: (sent.append(len(str(msg))), original(msg, buffers=buffers))
cpu, wall = 0.0, 0.0
for n in range({answers}):
    c0, t0 = time.process_time(), time.monotonic()
    chat.ask(f"answer {{n}}")
    chat.wait(300)
    cpu += time.process_time() - c0
    wall += time.monotonic() - t0
chars = sum(len(m["content"]) for m in chat.messages if m["role"] == "assistant")
(cpu, wall, chars, len(sent), sum(sent), chat.status)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=200.0)
    parser.add_argument("--answers", type=int, default=3)
    args = parser.parse_args()
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamchat.cli", "serve", "--port", "0", "--rate", "1200"],
        stderr=subprocess.PIPE,
        text=True,
    )
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        url = serve.stderr.readline().rsplit(" ", 1)[-1].strip()
        code = MEASURE.format(url=url, speed=args.speed, answers=args.answers)
        reply = client.execute_interactive(code, timeout=600, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        client.execute("_")  # the last expression's value, printed as a result:
        result = None
        while result is None:
            message = client.get_iopub_msg(timeout=30)
            if message["msg_type"] == "execute_result":
                result = ast.literal_eval(message["content"]["data"]["text/plain"])
        cpu, wall, chars, messages, size, status = result
        assert status == "done", status
        print(
            f"answers: {args.answers}, {chars} characters in {wall:.1f} s at speed {args.speed:g}"
        )
        print(f"revealed rate:        {chars / wall:8.1f} chars/s")
        print(f"kernel CPU:           {100 * cpu / wall:8.1f} % of one core")
        print(f"CPU per character:    {1e6 * cpu / chars:8.0f} us")
        print(f"messages:             {messages / wall:8.1f} /s")
        print(f"message bytes:        {size / chars:8.1f} per character revealed")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        serve.terminate()
        serve.wait(timeout=10)


if __name__ == "__main__":
    main()
