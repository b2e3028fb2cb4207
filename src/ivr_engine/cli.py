"""``ivr-engine`` command line: serve, migrate, account, demo, sandbox, sounds."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ivr_engine.errors import ConfigError, IvrError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-engine", description=__doc__)
    p.add_argument("--config", type=Path, help="dotenv-style file with IVR_* settings")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the engine against Asterisk and PostgreSQL")
    sub.add_parser("migrate", help="apply the database migrations and exit")
    account = sub.add_parser("account", help="panel sign-ins: add a staff member, set a password")
    account.add_argument("action", choices=["add-admin", "password"])
    account.add_argument("email")
    demo = sub.add_parser("demo", help="one scripted consultation on the sandbox")
    demo.add_argument("--keep", action="store_true", help="leave the services running")
    sandbox = sub.add_parser("sandbox", help="the local Asterisk 22 sandbox")
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
    if args.command == "demo":
        from ivr_engine.demo import run_demo

        log.configure("console", "warning")
        return asyncio.run(run_demo(keep=args.keep))
    if args.command == "sandbox":
        from ivr_engine.sandbox import Sandbox

        box = Sandbox()
        if args.action == "build":
            box.build()
        elif args.action == "up":
            info = box.up()
            print(json.dumps(info.engine_env(), indent=2))
        elif args.action == "env":
            info = box.up()
            for key, value in info.engine_env().items():
                print(f"{key}='{value}'" if key == "IVR_DIAL_ROUTES" else f"{key}={value}")
        elif args.action == "down":
            box.down()
        else:
            print(json.dumps(box.status(), indent=2, default=str))
        return 0
    if args.command == "sounds":
        from ivr_engine.sounds import render_cli

        render_cli(args.src, args.out)
        return 0
    raise AssertionError(args.command)


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
