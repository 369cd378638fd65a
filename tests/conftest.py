"""Shared fixtures. In CI (CI=true) a missing test dependency fails instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Every change to a conversation is checked to be made on its owner thread, the loop
# thread (`streamchat._conversation`): set before streamchat is imported, and inherited
# by the kernels and scripts the tests start.
os.environ["STREAMCHAT_CHECK_OWNER"] = "1"

from streamchat.server import DemoServer
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


# -- tiers -----------------------------------------------------------------------------------
# `make test` runs every test; `make test-fast` the unit tier: the tests that carry none of
# the marks registered in pyproject.toml ([tool.pytest.ini_options] markers). A test joins a
# tier by what it uses (a fixture, its file), so most tests need no mark by hand; a test
# that is slow for its own reasons carries `@pytest.mark.slow` or `@pytest.mark.load`.
TIER_FIXTURES = {
    "browser": {"browser", "page", "lab", "host", "hosts"},
    "real_servers": {"llama_server", "litellm_proxy", "ai_sdk_app", "homemade"},
    "nginx": {"nginx"},
}
TIER_FILES = {
    # Size, count, depth and time: megabytes, many answers at once, memory growth.
    "load": {
        "test_load.py",
        "test_memory.py",
        "test_source_backpressure.py",
        "test_widget_growth.py",
        "test_isolation.py",
        "test_render_budget.py",
    },
    # The CLI end to end, each test an interpreter started afresh (1-3 s on 2 loaded cores),
    # and in a real terminal (tmux).
    "slow": {"test_cli.py", "test_terminal_tty.py", "test_tape_cli.py", "test_tape_nbconvert.py"},
}
# Tests in files being rewritten on other branches at the time these tiers were drawn: their
# marks are given here, not in the files (measured on 2 loaded cores: each takes 1-7 s).
TIER_TESTS = {
    "load": {
        "test_widget.py::test_a_degenerate_answer_leaves_other_chats_typing_and_stops_at_once",
        "test_widget.py::test_many_answers_at_once_stay_within_the_kernel_budget",
        "test_render.py::test_finish_of_many_references_costs_little",
    },
    "slow": {
        "test_widget.py::test_a_generator_source_wakes_the_loop_thread_once_a_frame_too",
        "test_widget.py::test_the_loop_thread_wakes_once_a_frame_while_an_answer_types",
        "test_widget.py::test_a_long_open_block_is_sent_within_the_byte_budget",
        "test_widget.py::test_a_connection_error_is_shown_in_the_turn",
        "test_widget.py::test_a_view_that_joins_late_gets_a_snapshot",
        "test_widget_turns.py::test_retry_only_for_the_last_answer_and_never_while_one_streams",
        # Paced answers watched for seconds, replays at their recorded pace, an SDK import.
        "test_frames_batched.py::test_typing_sends_a_few_messages_a_second_and_frames_30_times_a_second",
        "test_frames_batched.py::test_a_speed_change_applies_within_a_tenth_of_a_second",
        "test_frames_batched.py::test_the_first_token_goes_out_at_once",
        "test_tape.py::test_a_recorded_conversation_replays_offline_identically",
        "test_tape.py::test_a_replay_at_rate_4_is_four_times_as_fast",
        "test_race.py::test_a_tape_is_a_lane",
        "test_race.py::test_a_browser_stop_for_one_turn_stops_only_its_lane",
        "test_race.py::test_an_equal_pace_lane_that_fails_or_hangs_does_not_hold_the_others",
        "test_race.py::test_equal_pace_types_the_lanes_in_lockstep",
        "test_sources.py::test_anthropic_message_stream_helper",
        "test_sources.py::test_google_genai_stream",
    },
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in _tiers(item):
            item.add_marker(marker)
    if not config.option.file_or_dir and not config.option.keyword:  # whole runs only
        _check_tier_tests(items)


def _tiers(item: pytest.Item) -> set[str]:
    fixtures = set(getattr(item, "fixturenames", ()))
    tiers = {marker for marker, uses in TIER_FIXTURES.items() if fixtures & uses}
    tiers |= {marker for marker, files in TIER_FILES.items() if item.path.name in files}
    tiers |= {marker for marker, tests in TIER_TESTS.items() if _name(item) in tests}
    if item.path.parent.name == "browser":
        tiers.add("browser")
    return tiers


def _name(item: pytest.Item) -> str:
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"


def _check_tier_tests(items: list[pytest.Item]) -> None:
    """A renamed test would fall into the unit tier without a word: say so instead."""
    named = {_name(item) for item in items}
    files = {item.path.name for item in items}
    listed = {test for tests in TIER_TESTS.values() for test in tests}
    stale = sorted(t for t in listed if t not in named and t.partition("::")[0] in files)
    if stale:
        raise pytest.UsageError(f"tests/conftest.py TIER_TESTS names no test: {stale}")


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
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files (openssl)."""
    openssl = shutil.which("openssl")
    require(openssl is not None, "openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            str(openssl), "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="session")
def fast_demo() -> Iterator[DemoServer]:
    """The demo server, answering at once (no typing pace), shared by the session."""
    with DemoServer(rate=0) as server:
        yield server


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
def ai_sdk_app(fast_demo: DemoServer, server_logs: Path) -> Iterator[Process]:
    """The AI SDK app (tests/servers/node) in front of the demo server, which answers at once."""
    problem = real.missing_ai_sdk()
    require(problem is None, problem or "")
    with real.start_ai_sdk_app(fast_demo.base_url, server_logs) as app:
        yield app
