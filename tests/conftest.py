"""Shared fixtures. In CI (CI=true) a missing test dependency fails instead of skipping."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Every change to a conversation is checked to be made on its owner thread, the loop
# thread (`streamchat._conversation`): set before streamchat is imported, and inherited
# by the kernels and scripts the tests start.
os.environ["STREAMCHAT_CHECK_OWNER"] = "1"

from streamchat.widget import StreamChat

sys.path.insert(0, str(Path(__file__).parent))

from loopback import LoopbackServer
from servers import real
from servers.real import Process

IN_CI = os.environ.get("CI", "").lower() == "true"

# Hypothesis's per-example deadline measures the machine's load, not the code: on two
# busy cores a 20 ms example can take 400 ms. Tests that care about time bound it
# themselves, with margins chosen for that test.
settings.register_profile("streamchat", deadline=None)
settings.load_profile("streamchat")


def require(condition: bool, why: str) -> None:
    """Skip locally when a dependency is missing; fail in CI, where it must be there."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing test dependency in CI: {why}")
    pytest.skip(why)


def wake_ups(native_id: int) -> int:
    """How many times thread `native_id` of this process has slept and been woken
    (its voluntary context switches; Linux)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def chats() -> Iterator[list[StreamChat]]:
    """The widgets a test makes (it appends them), closed after it."""
    made: list[StreamChat] = []
    yield made
    for chat in made:
        chat.close()


# -- real serving software (tests/servers/): installed by tests/servers/provision.sh ------------


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def llama_server(server_logs: Path) -> Iterator[Process]:
    """llama.cpp's llama-server with Gemma 3 270M on 127.0.0.1, shared by the session."""
    problem = real.missing_llama()
    require(problem is None, problem or "")
    with real.start_llama_server(server_logs) as process:
        yield process


@pytest.fixture(scope="session")
def litellm_proxy(llama_server: Process, server_logs: Path) -> Iterator[Process]:
    """LiteLLM proxy in front of `llama_server`, model name `real.LITELLM_MODEL`."""
    problem = real.missing_litellm()
    require(problem is None, problem or "")
    with real.start_litellm(llama_server.base_url, server_logs) as process:
        yield process


@pytest.fixture(scope="session")
def homemade() -> Iterator[str]:
    """The base URL of the FastAPI and sse-starlette routes in tests/servers/homemade.py."""
    try:
        from servers import homemade as servers
    except ImportError as error:  # fastapi and sse-starlette are test extras
        require(False, f"the home-made servers need {error.name}: pip install -e '.[test]'")
        raise
    with servers.Uvicorn(servers.app()) as server:
        yield server.base_url


@pytest.fixture(scope="session")
def ai_sdk_app(server_logs: Path) -> Iterator[Process]:
    """The AI SDK app (tests/servers/node) in front of the demo server, which answers at once."""
    from streamchat.server import DemoServer

    problem = real.missing_ai_sdk()
    require(problem is None, problem or "")
    with (
        DemoServer(rate=0) as demo,
        real.start_ai_sdk_app(demo.base_url, server_logs) as app,
    ):
        yield app
