"""Shared fixtures. In CI (CI=true) a missing test dependency fails instead of skipping."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

from loopback import LoopbackServer

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


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    try:
        yield srv
    finally:
        srv.close()
