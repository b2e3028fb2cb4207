"""Small asyncio helpers shared by the flows and the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish(aw: Awaitable[T], timeout: float = 15.0) -> T:
    """Run clean-up work to its end even if the caller is cancelled meanwhile.

    ``asyncio.shield`` alone lets the shielded work outlive its owner (and fail later,
    unobserved, once the engine has closed its connections); here the owner waits for it,
    within ``timeout``, then re-raises its cancellation.
    """
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done and not task.cancelled():
            task.exception()  # observed: the cancellation below is what the owner reports
        else:
            task.cancel()
        raise


async def unless(step: Awaitable[T], stop: Awaitable[object]) -> tuple[bool, T | None]:
    """Run ``step`` unless ``stop`` completes first; the loser is cancelled and awaited.
    Returns (True, the step's result), or (False, None) when ``stop`` won."""
    work = asyncio.ensure_future(step)
    stopper = asyncio.ensure_future(stop)
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()
        await asyncio.gather(work, stopper, return_exceptions=True)
    if work.cancelled():
        return False, None
    return True, work.result()
