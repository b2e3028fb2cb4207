"""``ivr-engine`` command line: serve, migrate, account, sounds, asterisk-conf, the operator's
commands (requests, outbox, consultations), and demo and sandbox.

``demo`` and ``sandbox`` are run by the development kit (package ``ivr_devkit``, in
``devkit/`` of the repository) when it is installed; without it, they say how to install it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from ivr_engine.errors import ConfigError, IvrError

DEVKIT = "ivr_devkit"
DEVKIT_COMMANDS = ("demo", "sandbox")
DEVKIT_HINT = (
    "ivr-engine: `{command}` is part of the development kit (package ivr_devkit), which is "
    "not installed; from a checkout of ivr-engine: pip install -e ./devkit (or: make venv)"
)


DATABASE_COMMANDS = ("serve", "migrate", "account", "requests", "outbox", "consultations")


def _version() -> str:
    try:
        return importlib.metadata.version("ivr-engine")
    except importlib.metadata.PackageNotFoundError:  # run from a bare source tree
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-engine", description=__doc__)
    p.add_argument("--version", action="version", version=f"ivr-engine {_version()}")
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
    conf = sub.add_parser("asterisk-conf", help="write the Asterisk snippets, filled from settings")
    conf.add_argument("action", choices=["render"])
    conf.add_argument("--out", type=Path, required=True, help="folder to write them into")
    conf.add_argument("--sip-bind", default="0.0.0.0", help="SIP transport address (0.0.0.0)")
    conf.add_argument("--sip-port", type=int, default=5060, help="SIP transport port (5060)")
    conf.add_argument("--rtp-start", type=int, default=10000, help="first RTP port (10000)")
    conf.add_argument("--rtp-end", type=int, default=20000, help="last RTP port (20000)")
    conf.add_argument("--cel-user", default="", help="role Asterisk inserts CEL rows with")
    conf.add_argument(
        "--cel-password", default="", help="its password (default: the CEL database URL's)"
    )
    _operator_parsers(sub)
    return p


def _operator_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    requests = sub.add_parser("requests", help="the waiting lists: list requests")
    requests.add_argument("action", choices=["list"])
    requests.add_argument("--state", action="append", help="only this state (repeatable)")
    requests.add_argument("--expert", type=int, help="only this expert's requests")
    requests.add_argument("--limit", type=int, default=100)
    outbox = sub.add_parser("outbox", help="the emails to send: list them, retry failed ones")
    outbox.add_argument("action", choices=["list", "retry"])
    outbox.add_argument("ids", nargs="*", type=int, help="retry: the failed emails to retry")
    outbox.add_argument("--which", choices=["pending", "failed", "sent", "all"], default="all")
    outbox.add_argument("--all-failed", action="store_true", help="retry: every failed email")
    outbox.add_argument("--limit", type=int, default=100)
    consultations = sub.add_parser("consultations", help="billing: export consultations")
    consultations.add_argument("action", choices=["export"])
    consultations.add_argument("--csv", action="store_true", required=True, help="as CSV")
    consultations.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or time")
    consultations.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD (included)")
    consultations.add_argument("--tz", default="UTC", help="timezone of the days (UTC)")
    consultations.add_argument("--out", type=Path, help="write to this file, not stdout")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except IvrError as err:
        print(f"ivr-engine: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop (libuv, in C: about 15 % less of the engine's CPU per consultation, see the
    README's Capacity) or, for ``asyncio``, the standard loop."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def _run(args: argparse.Namespace) -> int:
    from ivr_engine import log

    if args.command in DATABASE_COMMANDS:
        from ivr_engine.config import load_settings

        settings = load_settings(args.config)
        log.configure(settings.log_format, settings.log_level)
        if args.command in ("requests", "outbox", "consultations"):
            return _operate(args, settings.database_url.get_secret_value())
        if args.command == "serve":
            from ivr_engine.engine import serve

            with asyncio.Runner(loop_factory=_loop_factory(settings.event_loop)) as runner:
                runner.run(serve(settings))
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
    if args.command == "asterisk-conf":
        return _asterisk_conf(args)
    raise AssertionError(args.command)


def _asterisk_conf(args: argparse.Namespace) -> int:
    from ivr_engine import asterisk_conf
    from ivr_engine.config import load_settings

    sip = asterisk_conf.SipSide(
        args.sip_bind,
        args.sip_port,
        args.rtp_start,
        args.rtp_end,
        cel_user=args.cel_user,
        cel_password=args.cel_password,
    )
    for line in asterisk_conf.render_cli(load_settings(args.config), args.out, sip):
        print(line)
    return 0


def _operate(args: argparse.Namespace, dsn: str) -> int:
    from ivr_engine import ops

    async def run() -> str:
        if args.command == "consultations":
            start, end = ops.period(args.start, args.end, args.tz)
        if (
            args.command == "outbox"
            and args.action == "retry"
            and not (args.ids or args.all_failed)
        ):
            raise ConfigError("outbox retry: give the ids of failed emails, or --all-failed")
        pool = await ops.with_pool(dsn)
        try:
            if args.command == "requests":
                return await ops.list_requests(pool, args.state, args.expert, args.limit)
            if args.command == "outbox" and args.action == "list":
                return await ops.list_outbox(pool, args.which, args.limit)
            if args.command == "outbox":
                return await ops.retry_outbox(pool, args.ids or None)
            return await ops.export_consultations(pool, start, end)
        finally:
            await pool.close()

    text = asyncio.run(run())
    if args.command == "consultations" and args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


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
