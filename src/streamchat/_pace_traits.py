"""The pace controls a chat and a race share: `speed` and `step`, synced and checked."""

from __future__ import annotations

from typing import Any

import traitlets

__all__ = ["PaceTraits"]


class PaceTraits(traitlets.HasTraits):
    """`speed` (characters a second, 0: as it arrives) and `step` (characters a reveal),
    validated once for every widget that types answers."""

    speed = traitlets.Float(120.0).tag(sync=True)
    step = traitlets.Int(1).tag(sync=True)

    @traitlets.validate("speed")
    def _valid_speed(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] < 0:
            raise traitlets.TraitError("speed is characters per second and cannot be negative")
        return float(proposal["value"])

    @traitlets.validate("step")
    def _valid_step(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 1:
            raise traitlets.TraitError("step is characters per reveal and must be at least 1")
        return int(proposal["value"])
