"""User actions shared by the JSON API, the panel and the email link.

Each action is one store change plus what must follow it that PostgreSQL cannot do for
us. Waking the dispatcher and the email sender is not among them: the store's triggers
notify every engine (ivr_engine.store.notify).
"""

from ivr_engine.services.requests import RequestActions

__all__ = ["RequestActions"]
