"""The patch semantics, from the cases both appliers must pass (tests/patch_cases.json).

The Python applier (`patch_view`) passes them here; widget.js's `applyOps` and `LiveHtml`
pass them in the node suite (tests/js/), and tests/test_protocol.py runs `applyOps` and
`decodePatch` on them next to Python's: the two sides cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patch_view import applied
from streamchat._messages import OPS, decode_patch, patch
from streamchat.render import Patch

CASES = json.loads((Path(__file__).parent / "patch_cases.json").read_text(encoding="utf-8"))[
    "cases"
]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_ops_apply_as_the_browser_applies_them(case: dict[str, Any]) -> None:
    start = (case["start"]["frozen"], case["start"]["tail"])
    patches = [Patch(**op) for op in case["ops"]]
    assert applied(start, patches) == (case["expect"]["frozen"], case["expect"]["tail"])


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_ops_travel_unchanged(case: dict[str, Any]) -> None:
    patches = [Patch(**op) for op in case["ops"]]
    assert decode_patch(patch(3, "body", patches))["ops"] == patches


def test_every_declared_op_has_cases() -> None:
    used = {op["op"] for case in CASES for op in case["ops"]}
    assert used == set(OPS), "each op of the protocol needs cases both appliers pass"
