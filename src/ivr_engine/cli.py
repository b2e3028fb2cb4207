"""``ivr-engine`` command line: serve, migrate, account, sounds, and demo and sandbox.

``demo`` and ``sandbox`` are run by the development kit (package ``ivr_devkit``, in
``devkit/`` of the repository) when it is installed; without it, they say how to install it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path
from types import ModuleType

from ivr_engine.errors import ConfigError, IvrError

DEVKIT = "ivr_devkit"
DEVKIT_COMMANDS = ("demo", "sandbox")
DEVKIT_HINT = (
    "ivr-engine: `{command}` is part of the development kit (package ivr_devkit), which is "
    "not installed; from a checkout of ivr-engine: pip install -e ./devkit (or: make venv)"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-engine", description=__doc__)
    p.add_argument("--config", type=Path, help="dotenv-style file with IVR_* settings")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the engine against Asterisk and PostgreSQL")
    sub.add_parser("migrate", help="apply the database migrations and exit")
    account = sub.add_parser("account", help="panel sign-ins: add a staff member, set a password")
    account.add_argument("action", choices=["add-admin", "password"])
    account.add_argument("email")
    demo = sub.add_parser("demo", help="one scripted consultation on the sandbox (development kit)")
    demo.add_argument("--keep", action="store_true", help="leave the services running")
    sandbox = sub.add_parser("sandbox", help="the local Asterisk 22 sandbox (development kit)")
    sandbox.add_argument("action", choices=["build", "up", "down", "status", "env"])
    sounds = sub.add_parser("sounds", help="render the prompts into audio files")
    sounds.add_argument("action", choices=["render"])
    sounds.add_argument("--src", type=Path, default=None)
    sounds.add_argument("--out", type=Path, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except IvrError as err:
        print(f"ivr-engine: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from ivr_engine import log

    if args.command in ("serve", "migrate", "account"):
        from ivr_engine.config import load_settings

        settings = load_settings(args.config)
        log.configure(settings.log_format, settings.log_level)
        if args.command == "serve":
            from ivr_engine.engine import serve

            asyncio.run(serve(settings))
        elif args.command == "account":
            password = _read_password()
            dsn = settings.database_url.get_secret_value()
            print(asyncio.run(_account(dsn, args.action, args.email, password)))
        else:
            applied = asyncio.run(_migrate(settings.database_url.get_secret_value()))
            print("applied: " + (", ".join(applied) or "nothing, schema is up to date"))
        return 0
    if args.command in DEVKIT_COMMANDS:
        devkit = _devkit_cli()
        if devkit is None:
            print(DEVKIT_HINT.format(command=args.command), file=sys.stderr)
            return 2
        if args.command == "demo":
            return int(devkit.demo(keep=args.keep))
        return int(devkit.sandbox(args.action))
    if args.command == "sounds":
        from ivr_engine.sounds import render_cli

        render_cli(args.src, args.out)
        return 0
    raise AssertionError(args.command)


def _devkit_cli() -> ModuleType | None:
    """The development kit's commands, or None when the kit is not installed.

    The one place the engine imports the kit, and only when one of its commands runs. Only
    the kit itself being absent is forgiven: a module missing inside it, or one of its
    dependencies (aiosmtpd, ...), is a broken install and surfaces as it is."""
    try:
        return importlib.import_module(f"{DEVKIT}.cli")
    except ModuleNotFoundError as err:
        if err.name != DEVKIT:
            raise
        return None


def _read_password() -> str:
    """Asked twice on a terminal; one line on stdin otherwise (never a command argument,
    which other users could read in the process list)."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


async def _account(dsn: str, action: str, email: str, password: str) -> str:
    from ivr_engine.store import accounts, connect_pool, migrate

    try:
        accounts.check_password(password)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    pool = await connect_pool(dsn)
    try:
        await migrate(pool)
        if action == "add-admin":
            account_id = await accounts.create(pool, email=email, password=password, role="admin")
            return f"admin account {account_id} created for {email.lower()}"
        account_id = await pool.fetchval("SELECT id FROM accounts WHERE email = $1", email.lower())
        if account_id is None:
            raise ConfigError(f"no account with email {email}")
        await accounts.change_password(pool, account_id, password)
        return f"password of {email.lower()} changed; its open sessions are signed out"
    finally:
        await pool.close()


async def _migrate(dsn: str) -> list[str]:
    from ivr_engine.store import connect_pool, migrate

    pool = await connect_pool(dsn)
    try:
        return await migrate(pool)
    finally:
        await pool.close()
