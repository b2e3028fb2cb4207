"""Call legs as straight-line coroutines on top of ARI (no business rules here)."""

from ivr_engine.calls.control import CallControl
from ivr_engine.calls.leg import Leg

__all__ = ["CallControl", "Leg"]
