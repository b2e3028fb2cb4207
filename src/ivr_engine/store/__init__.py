"""PostgreSQL: the pool, the migrations and every query the engine runs."""

from ivr_engine.store.db import connect_pool, migrate
from ivr_engine.store.requests import RequestStore

__all__ = ["RequestStore", "connect_pool", "migrate"]
