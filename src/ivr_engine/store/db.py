"""Pool creation and plain-SQL migrations (safe when two engines start at once)."""

from __future__ import annotations

import asyncio
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg
import structlog

from ivr_engine.errors import StoreError

log = structlog.get_logger(__name__)

# Any constant shared by every engine: the advisory lock serialises concurrent migrations.
MIGRATION_LOCK = 0x1F0E_2026
_MIGRATION = re.compile(r"[0-9]{4}_.+\.sql")


def default_migrations_dir() -> Traversable:
    """The migrations shipped inside the package (``ivr_engine/migrations/``), wherever it
    is installed: a wheel, an image, a checkout."""
    found = files("ivr_engine") / "migrations"
    if not found.is_dir():
        raise StoreError(f"the package's migrations are missing ({found})")
    return found


def migration_files(directory: Traversable) -> list[Traversable]:
    """The ``NNNN_*.sql`` files of ``directory``, in the order they are applied."""
    return sorted(
        (f for f in directory.iterdir() if _MIGRATION.fullmatch(f.name)), key=lambda f: f.name
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing beyond asyncpg's own
    local clean-up (listeners dropped, an open transaction rolled back). Its default sends
    ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, a round
    trip per statement we run; no pooled connection here keeps session state (LISTEN has its
    own connection, the migration lock is released explicitly, nothing SETs or opens cursors
    outside a transaction)."""


async def connect_pool(dsn: str, *, timeout: float = 10.0, attempts: int = 5) -> asyncpg.Pool:
    """Create the pool, retrying briefly: PostgreSQL may still be starting."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=10,
                timeout=timeout,
                command_timeout=timeout,
                reset=_keep_session,
                # Short statements only: JIT compiling one (on by default above a cost
                # estimate that a 100,000-row list reaches) took 30 ms to save none.
                server_settings={"jit": "off"},
            )
            assert pool is not None
            return pool
        except (OSError, asyncpg.PostgresError, TimeoutError) as err:
            if attempt == attempts:
                raise StoreError(f"cannot connect to PostgreSQL: {err}") from err
            log.warning("db.connect_retry", attempt=attempt, error=str(err))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


async def migrate(pool: asyncpg.Pool, directory: Traversable | None = None) -> list[str]:
    """Apply the ``NNNN_*.sql`` files not applied yet, in order, each in one transaction."""
    pending = migration_files(directory or default_migrations_dir())
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for path in pending:
                if path.name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text(encoding="utf-8"))
                    await conn.execute(
                        "INSERT INTO schema_migrations (name) VALUES ($1)", path.name
                    )
                applied_now.append(path.name)
                log.info("db.migrated", migration=path.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied_now
