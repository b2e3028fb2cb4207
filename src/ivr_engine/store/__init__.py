"""PostgreSQL: the pool, the migrations and every query the engine runs.

One module per concept, each a set of functions taking the pool (or a connection inside
the caller's transaction); no module here knows about calls, HTTP or Asterisk.
"""

from ivr_engine.store.db import connect_pool, migrate

__all__ = ["connect_pool", "migrate"]
