"""Faults against real loopback servers that misbehave, seen by all three consumers.

Each fault is played to the transport, to the CLI (a real process) and to the widget;
each must end in a clear message, keep the partial answer, leave the widget ready
for the next prompt, and leak no connection, thread or task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from streamchat import _runner
from streamchat.deltas import Done, StreamError
from streamchat.transport import Retries, Timeouts
from streamchat.widget import StreamChat

from answers import collect, text_of
from loopback import LoopbackServer, Script, free_port, sse, wait_until

PATH = "/v1/chat/completions"


def chunk(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


END = sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, "[DONE]")
PARTIAL = "Partial answer 你好 "
HEAD = sse(chunk(PARTIAL))
BIG = "大" * (10 * 1024 * 1024 // 3)  # one 10 MB event (3 bytes per character)


GZIPPED_SSE = {"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}


@dataclass
class Fault:
    name: str
    scripts: list[Script]
    kind: str | None  # the StreamError kind, or None when the answer completes
    message: str  # a piece of the message a person reads
    shown: str  # the text that must stay on screen
    timeouts: Timeouts = field(default_factory=Timeouts)
    tier: str | None = None  # "load" or "slow": seconds a run, so not in `make test-fast`


def http(status: int, body: bytes, content_type: str) -> Script:
    return Script([body], status=status, headers={"Content-Type": content_type})


FAULTS = [
    Fault("refused", [], "connect", "could not connect", ""),
    *(
        Fault(
            f"{status}-json",
            [http(status, b'{"error": {"message": "say why %d"}}' % status, "application/json")],
            "http",
            f"HTTP {status}",
            "",
        )
        for status in (401, 403, 404, 429, 500)
    ),
    *(
        Fault(
            f"{status}-html",
            [http(status, b"<html><title>Gateway says %d</title></html>" % status, "text/html")],
            "http",
            f"Gateway says {status}",
            "",
        )
        for status in (401, 403, 404, 429, 500)
    ),
    Fault(
        "wrong-content-type",
        [http(200, b"<html><title>Sign in</title></html>", "text/html")],
        "protocol",
        "Sign in",
        "",
    ),
    Fault(
        "cut-mid-event",
        [Script([*HEAD, b'data: {"choices": [{"delta": {"cont'], cut_after=2)],
        "incomplete",
        "ERR_INCOMPLETE_CHUNKED_ENCODING",
        PARTIAL,
    ),
    Fault("idle", [Script(HEAD, hang=30)], "timeout", "idle", PARTIAL, Timeouts(idle=0.5)),
    Fault(
        "invalid-utf8",
        [Script([b'data: {"choices": [{"delta": {"content": "ok \xff\xfe end"}}]}\n\n', *END])],
        None,
        "",
        "ok \ufffd\ufffd end",
    ),
    Fault(
        "nul-bytes",
        [Script([*sse(chunk("a\x00b")), *END])],
        None,
        "",
        "a\x00b",
    ),
    Fault("ten-megabytes", [Script([*sse(chunk(BIG)), *END])], None, "", BIG, tier="load"),
    Fault(
        "provider-error",
        [Script([*HEAD, *sse({"error": {"message": "overloaded, try later"}})])],
        "provider",
        "overloaded, try later",
        PARTIAL,
    ),
    Fault(
        "redirect",
        [Script([], status=302, headers={"Location": "https://elsewhere.example/v1/chat"})],
        "http",
        "moved to https://elsewhere.example/v1/chat",
        "",
    ),
    Fault(
        "gzip-despite-identity",
        [Script([gzip.compress(b"".join([*HEAD, *END]))], headers=GZIPPED_SSE)],
        "protocol",
        "compressed the answer (gzip)",
        "",
    ),
    Fault(
        "megabyte-of-headers",
        [Script([*HEAD, *END], headers={"X-Big": "a" * (1 << 20)})],
        "protocol",
        "headers larger than",
        "",
    ),
    Fault(
        "trickle",
        [Script([*HEAD, *(bytes([b]) for b in b"data: more"), *END], pause=[0, *[1.0] * 14])],
        "timeout",
        "longer than",
        PARTIAL,
        Timeouts(idle=3, total=3.5),
        tier="slow",
    ),
]


def case(fault: Fault) -> object:
    """A fault as a test case; one that takes seconds carries its tier's mark."""
    marks = [getattr(pytest.mark, fault.tier)] if fault.tier else []
    return pytest.param(fault, id=fault.name, marks=marks)


CASES = [case(fault) for fault in FAULTS]
NO_RETRY = Retries(attempts=0)


@pytest.fixture
def url_for(server: LoopbackServer) -> Iterator:
    def url(fault: Fault) -> str:
        if not fault.scripts:
            return f"http://127.0.0.1:{free_port()}{PATH}"
        return server.route(PATH, *fault.scripts)

    yield url


def sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed while we list them
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def runner_tasks() -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return _runner.submit(count()).result(timeout=5)


@pytest.fixture
def no_leaks(server: LoopbackServer) -> Iterator[None]:
    """Open sockets, threads and loop tasks come back to where they were before the test.

    The loopback server's handler threads end a moment after the client hangs up, so
    the count is polled until it settles (or the wait fails).
    """
    runner_tasks()  # start the shared loop first: it is not a leak
    before = (sockets(), threading.active_count(), runner_tasks())
    yield
    counts: list[tuple[int, int, int]] = []

    def settled() -> bool:
        counts.append((sockets(), threading.active_count(), runner_tasks()))
        return counts[-1] == before

    try:
        wait_until(settled, timeout=10)
    except AssertionError:
        raise AssertionError(f"leak: sockets, threads, tasks {before} -> {counts[-1]}") from None


@pytest.mark.parametrize("fault", CASES)
def test_transport(fault: Fault, url_for, no_leaks: None) -> None:
    deltas = collect(url_for(fault), fault.timeouts)
    assert text_of(deltas) == fault.shown
    last = deltas[-1]
    if fault.kind is None:
        assert isinstance(last, Done)
    else:
        assert isinstance(last, StreamError)
        assert last.kind == fault.kind
        assert fault.message in last.message


@pytest.mark.slow
@pytest.mark.parametrize("fault", CASES)
def test_cli(fault: Fault, url_for) -> None:
    command = [sys.executable, "-m", "streamchat.cli", "chat", url_for(fault), "hi"]
    options = ["--speed", "0", "--retries", "0", "--idle-timeout", str(fault.timeouts.idle)]
    options += ["--total-timeout", str(fault.timeouts.total)]
    result = subprocess.run([*command, *options], capture_output=True, timeout=120)
    assert result.stdout.decode("utf-8") == fault.shown
    if fault.kind is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1
        stderr = result.stderr.decode()
        assert f"error ({fault.kind})" in stderr
        assert fault.message in stderr


@pytest.mark.parametrize("fault", CASES)
def test_widget(fault: Fault, url_for, server: LoopbackServer, no_leaks: None) -> None:
    chat = StreamChat(url_for(fault), speed=0, timeouts=fault.timeouts, retries=NO_RETRY)
    try:
        chat.ask("hi")
        assert chat.wait(timeout=60)
        answer = chat.turns[-1]
        assert chat.messages[-1] == {"role": "assistant", "content": fault.shown} or (
            fault.shown == "" and chat.messages[-1]["role"] == "user"
        )
        if fault.kind is None:
            assert chat.status == "done"
            assert answer["error"] is None
        else:
            assert chat.status == "error"
            assert answer["status"] == "error"
            assert fault.message in answer["error"]
        # Ready for the next prompt: it goes through on a healthy stream.
        healthy = server.route(PATH, Script([*sse(chunk("Recovered.")), *END]))
        chat._driver.endpoint = replace(chat._driver.endpoint, url=healthy)
        chat.ask("again")
        assert chat.wait(timeout=30)
        assert chat.status == "done"
        assert chat.messages[-1] == {"role": "assistant", "content": "Recovered."}
    finally:
        chat.close()
