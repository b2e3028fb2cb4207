"""``python -m ivr_devkit.bench``: the command line of a bench run (see the package)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import sys
import time
from pathlib import Path

from ivr_devkit.bench import claims
from ivr_devkit.bench.run import Options, run, run_claims_only
from ivr_devkit.sandbox import Sandbox, SandboxInfo, process
from ivr_engine import log

FULL_RATES = (5.0, 10.0, 20.0, 30.0, 40.0)
QUICK_RATES = (5.0,)


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"rates: {text!r} is not a list of numbers") from err
    if not rates or any(not 0 < r <= 50 for r in rates):
        raise argparse.ArgumentTypeError("rates: one or more numbers, each above 0 and at most 50")
    return rates


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ivr_devkit.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="one rate, 20 s each side (~3 minutes)")
    p.add_argument("--rates", type=_rates, default=None, help="calls/s, e.g. 5,10,15,20")
    p.add_argument("--seconds", type=float, default=None, help="offering time per rate (30)")
    p.add_argument("--claim-rounds", type=int, default=500, help="timed claims per size (500)")
    p.add_argument(
        "--engine-only",
        action="store_true",
        help="only the engine's side, no claim step, no report: for profiling the engine",
    )
    p.add_argument(
        "--no-pg-stats",
        action="store_true",
        help="--engine-only without pg_stat_statements (what PostgreSQL ran, which costs a"
        " little CPU itself): for CPU figures comparable with a run of the full bench",
    )
    p.add_argument(
        "--claims-only",
        action="store_true",
        help="only the claim step (no sandbox, no lock): figures and plans as text",
    )
    p.add_argument("--workdir", type=Path, default=None, help="logs and traces (build/bench/…)")
    p.add_argument("--out", type=Path, default=Path("build/bench"), help="JSON and PNG here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (20.0 if args.quick else 30.0)
    if not 5 <= seconds <= 120:
        print("bench: --seconds must be 5 to 120")
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    opts = Options(
        rates=args.rates or (QUICK_RATES if args.quick else FULL_RATES),
        seconds=seconds,
        claim_sizes=claims.QUICK if args.quick else claims.FULL,
        claim_rounds=max(10, args.claim_rounds),
        workdir=(args.workdir or Path("build") / "bench" / stamp).resolve(),
        out_dir=args.out.resolve(),
        quick=args.quick,
        engine_only=args.engine_only,
        pg_stats=args.engine_only and not args.no_pg_stats,
    )
    log.configure("console", "warning")
    if args.claims_only:
        return asyncio.run(run_claims_only(opts))
    box = Sandbox()
    box.cache_dir.mkdir(parents=True, exist_ok=True)

    def up() -> tuple[SandboxInfo, int]:
        info = box.up()
        pid = process.read_pid(box.pid_file)
        if pid is None:
            raise RuntimeError("the sandbox's Asterisk is not running")
        return info, pid

    # The lock of the end-to-end tests: one user of the sandbox at a time.
    with open(box.cache_dir / "e2e-session.lock", "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for the sandbox: another test run holds it ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return asyncio.run(run(opts, up))
        except KeyboardInterrupt:
            return 130
        finally:
            box.down()


if __name__ == "__main__":
    sys.exit(main())
