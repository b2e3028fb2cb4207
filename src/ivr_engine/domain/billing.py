"""How long a consultation is billed for. Rates and money rules come with the billing module."""

from __future__ import annotations

import math
from datetime import datetime


def billed_seconds(bridge_start: datetime, bridge_end: datetime) -> int:
    """Whole seconds both parties were bridged, a started second counting as one."""
    elapsed = (bridge_end - bridge_start).total_seconds()
    return max(0, math.ceil(round(elapsed, 3)))
