"""Call legs as straight-line coroutines on top of ARI (no business rules here)."""

from ivr_engine.calls.control import LOST_WHILE_DISCONNECTED, CallControl
from ivr_engine.calls.leg import Leg

__all__ = ["LOST_WHILE_DISCONNECTED", "CallControl", "Leg"]
