"""Panel accounts in PostgreSQL: an expert's sign-in follows the staff's edits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ivr_engine.errors import Conflict
from ivr_engine.store import accounts, people


async def test_a_new_password_from_the_staff_signs_the_expert_out(pool: Any) -> None:
    expert_id = await people.create_expert(
        pool, alias="Anna", phone="+390600000701", rate=Decimal("1.50"), email="anna@example.org"
    )
    await accounts.set_expert_login(pool, expert_id, "Anna@Example.org", "first password")
    who = await accounts.verify(pool, "anna@example.org", "first password")
    assert who is not None and who.expert_id == expert_id and who.role == "expert"
    token = await accounts.open_session(pool, who.id, timedelta(hours=1))

    # a new email alone keeps the password and the session
    await accounts.set_expert_login(pool, expert_id, "anna@new.example.org", None)
    assert await accounts.verify(pool, "anna@new.example.org", "first password") is not None
    assert await accounts.session(pool, token) is not None
    # a new password signs out the sessions opened with the old one
    await accounts.set_expert_login(pool, expert_id, "anna@new.example.org", "second password")
    assert await accounts.session(pool, token) is None
    assert await accounts.verify(pool, "anna@new.example.org", "first password") is None


async def test_an_email_belongs_to_one_account(pool: Any) -> None:
    await accounts.create(pool, email="staff@example.org", password="long enough", role="admin")
    expert_id = await people.create_expert(
        pool, alias="Anna", phone="+390600000702", rate=Decimal("1.50")
    )
    with pytest.raises(Conflict):
        await accounts.set_expert_login(pool, expert_id, "STAFF@example.org", "long enough 2")
    assert await pool.fetchval("SELECT count(*) FROM accounts") == 1
