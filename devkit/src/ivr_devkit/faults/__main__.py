"""``python -m ivr_devkit.faults``: the command line of a fault run (see the package)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import random
import sys
import time
from pathlib import Path

from ivr_devkit.faults.run import Options, run
from ivr_devkit.sandbox import Sandbox
from ivr_engine import log


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ivr_devkit.faults", description=__doc__)
    p.add_argument("--consultations", type=int, default=100, help="requests to place (100)")
    p.add_argument("--seed", type=int, default=None, help="the faults' RNG seed (random)")
    p.add_argument("--max-minutes", type=float, default=10.0, help="length of the load (10)")
    p.add_argument("--pairs", type=int, default=10, help="expert/client pairs in parallel (10)")
    p.add_argument("--hangup-after", type=float, default=12.0, help="seconds a client talks (12)")
    p.add_argument("--workdir", type=Path, default=None, help="logs and traces (build/faults/…)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 1 <= args.pairs <= 12:
        print("faults: --pairs must be 1 to 12 (two calls per pair, 25 calls at most)")
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    opts = Options(
        consultations=args.consultations,
        seed=args.seed if args.seed is not None else random.SystemRandom().randrange(10**6),
        max_minutes=args.max_minutes,
        pairs=args.pairs,
        hangup_after=args.hangup_after,
        workdir=(args.workdir or Path("build") / "faults" / stamp).resolve(),
    )
    log.configure("console", "warning")  # this process's own store calls: only trouble
    logging.getLogger("asyncpg").setLevel(logging.CRITICAL)  # its pool, during the outages
    box = Sandbox()
    box.cache_dir.mkdir(parents=True, exist_ok=True)
    # The lock of the end-to-end tests: one user of the sandbox at a time.
    with open(box.cache_dir / "e2e-session.lock", "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for the sandbox: another test run holds it ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return asyncio.run(run(opts, lambda cel: box.up(cel=cel)))
        except KeyboardInterrupt:
            return 130
        finally:
            box.down()


if __name__ == "__main__":
    sys.exit(main())
