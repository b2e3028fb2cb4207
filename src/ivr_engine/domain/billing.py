"""How long a consultation is billed for, and its bill (the money rules are in ``money``)."""

from __future__ import annotations

import math
from datetime import datetime

from ivr_engine.domain.money import Bill, Tariff, compute_bill


def billed_seconds(bridge_start: datetime, bridge_end: datetime) -> int:
    """Whole seconds both parties were bridged, a started second counting as one."""
    elapsed = (bridge_end - bridge_start).total_seconds()
    return max(0, math.ceil(round(elapsed, 3)))


def settle(tariff: Tariff, bridge_start: datetime, bridge_end: datetime) -> Bill:
    """The bill of a consultation bridged from ``bridge_start`` to ``bridge_end``."""
    return compute_bill(tariff, billed_seconds(bridge_start, bridge_end))
