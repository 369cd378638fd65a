"""The patch semantics, from the cases the node suite reads too (tests/patch_cases.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patch_view import applied
from streamchat.render import Patch

CASES = json.loads((Path(__file__).parent / "patch_cases.json").read_text(encoding="utf-8"))[
    "cases"
]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_ops_apply_as_the_browser_applies_them(case: dict[str, Any]) -> None:
    start = (case["start"]["frozen"], case["start"]["tail"])
    patches = [Patch(**op) for op in case["ops"]]
    assert applied(start, patches) == (case["expect"]["frozen"], case["expect"]["tail"])
