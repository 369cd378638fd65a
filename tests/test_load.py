"""Load: 20 widgets streaming at once in one real kernel.

The kernel is a real ipykernel started with jupyter_client; every IOPub message it
publishes is counted, since Jupyter drops (not queues) IOPub traffic above 1000
messages a second. Meanwhile the kernel must answer a new cell within 200 ms.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from queue import Empty

import pytest

from conftest import require

try:
    from jupyter_client.manager import start_new_kernel
except ImportError:  # pragma: no cover - reported by require() below
    start_new_kernel = None

WIDGETS = 20
SETUP = f"""
from streamchat import StreamChat
from streamchat.server import DemoServer
server = DemoServer(rate=400).start()
chats = [StreamChat(server.url, speed=200) for _ in range({WIDGETS})]
for chat in chats:
    chat.ask("load test")
"""
CHECK = "all(chat.wait(60) for chat in chats) and ','.join(chat.status for chat in chats)"


@pytest.fixture
def kernel() -> Iterator:
    require(start_new_kernel is not None, "jupyter_client is not installed")
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client, code: str, timeout: float = 60) -> dict:
    """Execute `code`; return its execute_reply content and the result text."""
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply["content"]


def drain(client, seconds_by_type: Counter, until: float) -> None:
    """Read IOPub until `until`, counting comm messages per second of arrival."""
    while (left := until - time.monotonic()) > 0:
        try:
            message = client.get_iopub_msg(timeout=min(left, 0.05))
        except Empty:
            continue
        seconds_by_type[(int(time.monotonic()), message["msg_type"])] += 1


def test_twenty_widgets_in_one_kernel(kernel) -> None:
    run(kernel, SETUP)
    counts: Counter = Counter()
    latencies = []
    deadline = time.monotonic() + 5  # the answers take ~7 s at 200 chars/s
    while time.monotonic() < deadline:
        started = time.monotonic()
        msg_id = kernel.execute("1 + 1")
        while True:
            reply = kernel.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        latencies.append(time.monotonic() - started)
        drain(kernel, counts, time.monotonic() + 0.2)
    msg_id = kernel.execute(CHECK)
    statuses = None
    finish = time.monotonic() + 90
    while statuses is None and time.monotonic() < finish:
        message = kernel.get_iopub_msg(timeout=90)
        counts[(int(time.monotonic()), message["msg_type"])] += 1
        if (
            message["msg_type"] == "execute_result"
            and message["parent_header"].get("msg_id") == msg_id
        ):
            statuses = message["content"]["data"]["text/plain"]
    assert statuses == repr(",".join(["done"] * WIDGETS))
    per_second: Counter = Counter()
    for (second, _type), count in counts.items():
        per_second[second] += count
    comm_total = sum(count for (_, kind), count in counts.items() if kind == "comm_msg")
    print(f"\nlatency ms {[round(x * 1000) for x in latencies]}")
    print(f"iopub max {max(per_second.values())}/s; comm messages {comm_total}")
    # Not the single worst sample: a few may be the loaded machine's (222 and 275 ms at
    # load 11, 0cc2df0 alike); a loop that blocks the kernel makes them all slow.
    ninetieth = sorted(latencies)[len(latencies) * 9 // 10]
    assert ninetieth < 0.2 and max(latencies) < 1.0, latencies
    assert max(per_second.values()) < 1000
    assert comm_total > WIDGETS * 10  # the answers really streamed as many patches


def run_in_cell(client, code: str, cell: str) -> str:
    """Execute `code` as JupyterLab does for cell `cell` (its id in the request metadata)."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
    message = client.session.msg("execute_request", content, metadata={"cellId": cell})
    client.shell_channel.send(message)
    msg_id = message["header"]["msg_id"]
    while True:
        output = client.get_iopub_msg(timeout=30)
        if output["parent_header"].get("msg_id") != msg_id:
            continue
        if output["msg_type"] == "execute_result":
            return output["content"]["data"]["text/plain"]
        if output["msg_type"] == "error":
            raise AssertionError("\n".join(output["content"]["traceback"]))
        if output["msg_type"] == "status" and output["content"]["execution_state"] == "idle":
            return ""


CELL = "chat = StreamChat(server.url, speed=20); chat.ask('hi'); made.append(chat)"


def test_rerunning_a_cell_closes_its_widget_and_stream(kernel) -> None:
    run_in_cell(kernel, "from streamchat import StreamChat, DemoServer", "setup")
    run_in_cell(kernel, "server = DemoServer(rate=400).start(); made = []", "setup")
    run_in_cell(kernel, CELL, "cell-a")
    run_in_cell(kernel, CELL, "cell-a")  # the same cell, run again
    two = "a = StreamChat(server.url, speed=20); b = StreamChat(server.url); a.ask('x'); a"
    run_in_cell(kernel, two, "cell-b")  # two widgets in one run: both stay
    live = "('waiting', 'streaming')"
    states = run_in_cell(
        kernel,
        f"made[0].wait(10), made[0].status, made[0].comm, made[1].status in {live}, "
        f"a.status in {live}, b.comm is not None",
        "cell-c",
    )
    assert states == "(True, 'stopped', None, True, True, True)"
