"""The patch semantics, from the cases the node suite reads too (tests/patch_cases.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamchat._answer import applied, compact
from streamchat.render import Patch

CASES = json.loads((Path(__file__).parent / "patch_cases.json").read_text(encoding="utf-8"))[
    "cases"
]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_ops_apply_as_the_browser_applies_them(case: dict[str, Any]) -> None:
    start = (case["start"]["frozen"], case["start"]["tail"])
    assert applied(start, case["ops"]) == (case["expect"]["frozen"], case["expect"]["tail"])


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_compacted_ops_give_the_same_result(case: dict[str, Any]) -> None:
    """What the rate limit merges into one message shows what the ops one by one show."""
    start = (case["start"]["frozen"], case["start"]["tail"])
    patches = [
        Patch(op["op"], op.get("html", ""), op.get("drop", 0), op.get("keep", 0), op.get("size", 0))
        for op in case["ops"]
    ]
    assert applied(start, compact(patches, start[1])) == applied(start, case["ops"])
