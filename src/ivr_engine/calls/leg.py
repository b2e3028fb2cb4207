"""One call leg, driven by straight-line code.

``await leg.play(...)`` / ``await leg.collect(...)`` wait for ARI events routed to this leg
by :class:`~ivr_engine.calls.control.CallControl`. When the channel hangs up, whatever step
is waiting raises :class:`~ivr_engine.errors.Hangup`; flows never poll.

A leg may leave the application for a while on purpose: :meth:`Leg.detect_machine` sends it
to the dialplan's answering-machine detection, and it comes back with the verdict.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import structlog

from ivr_engine.errors import AriNotFound, Hangup, OriginateFailed, StepTimeout

if TYPE_CHECKING:
    from ivr_engine.ari.client import AriClient

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Longest any single prompt may take before we consider its PlaybackFinished lost.
PLAYBACK_BUDGET = 120.0

# The shipped dialplan's answering-machine detection (asterisk_conf/extensions.conf): it runs
# AMD(${IVR_AMD}) and comes back with Stasis(<app>,amd,${AMDSTATUS},${AMDCAUSE}).
MACHINE_DETECTION_CONTEXT = "ivr-amd"
MACHINE_DETECTION_VARIABLE = "IVR_AMD"
MACHINE_DETECTION_ARG = "amd"


@dataclass(frozen=True)
class MachineVerdict:
    """What Asterisk's AMD() said of the far end: ``status`` MACHINE, HUMAN, NOTSURE, HANGUP
    (or UNAVAILABLE: no app_amd; empty: no verdict), ``cause`` its AMDCAUSE."""

    status: str
    cause: str = ""

    @property
    def human(self) -> bool:
        return self.status == "HUMAN"

    @classmethod
    def from_args(cls, args: Sequence[str]) -> MachineVerdict:
        """From the Stasis arguments after ``amd``: [AMDSTATUS, AMDCAUSE]."""
        rest = [*args, "", ""]
        return cls(status=rest[0].strip().upper(), cause=rest[1].strip())


class Leg:
    def __init__(self, ari: AriClient, channel_id: str, language: str) -> None:
        self.ari = ari
        self.id = channel_id
        self.language = language
        loop = asyncio.get_running_loop()
        self._answered: asyncio.Future[datetime] = loop.create_future()
        self._gone: asyncio.Future[Hangup] = loop.create_future()
        self._destroyed = asyncio.Event()  # ChannelDestroyed seen: the cause is final
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        # Set while the channel is away in the dialplan's machine detection.
        self._detection: asyncio.Future[MachineVerdict] | None = None
        self._playbacks: dict[str, asyncio.Future[None]] = {}
        self._seq = itertools.count(1)
        self.dtmf_log: list[str] = []
        self.answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.hangup_cause: int | None = None
        self.hangup_text = ""

    # -- fed by CallControl --------------------------------------------------------------
    def _on_stasis_start(self, at: datetime, args: Sequence[str] = ()) -> None:
        detection = self._detection
        is_verdict = list(args[:1]) == [MACHINE_DETECTION_ARG]
        if is_verdict and detection is not None and not detection.done():
            detection.set_result(MachineVerdict.from_args(args[1:]))
            return
        if not self._answered.done():
            self.answered_at = at
            self._answered.set_result(at)

    def _on_stasis_end(self, at: datetime) -> None:
        if self._detection is not None and not self._detection.done():
            return  # sent to the dialplan's machine detection: it comes back
        self._on_gone(self.hangup_cause, self.hangup_text, at)

    def _on_digit(self, digit: str) -> None:
        self.dtmf_log.append(digit)
        self._digits.put_nowait(digit)

    def _on_playback_finished(self, playback_id: str) -> None:
        fut = self._playbacks.pop(playback_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _on_hangup_request(self, cause: int | None) -> None:
        if cause and not self.hangup_cause:
            self.hangup_cause = cause

    def _on_destroyed(self, cause: int, cause_txt: str, at: datetime) -> None:
        if cause or not self.hangup_cause:
            self.hangup_cause = cause
            self.hangup_text = cause_txt
        self._on_gone(self.hangup_cause, self.hangup_text, at)
        self._destroyed.set()

    async def destroyed(self, timeout: float) -> None:
        """Wait (a little) for ChannelDestroyed, which carries the final hangup cause."""
        if self._destroyed.is_set():  # the usual case: no timer, no task
            return
        try:
            await asyncio.wait_for(self._destroyed.wait(), timeout)
        except TimeoutError:
            pass

    def _on_gone(self, cause: int | None, cause_txt: str, at: datetime) -> None:
        if self._gone.done():
            return
        self.ended_at = at
        self.hangup_cause = cause
        self.hangup_text = cause_txt
        exc = Hangup(self.id, cause, cause_txt)
        self._gone.set_result(exc)
        if not self._answered.done():
            self._answered.set_exception(OriginateFailed(self.id, cause, cause_txt))
            self._answered.exception()  # mark retrieved: nobody may be waiting
        for fut in self._playbacks.values():
            if not fut.done():
                fut.set_result(None)

    @property
    def is_gone(self) -> bool:
        return self._gone.done()

    @property
    def is_answered(self) -> bool:
        return self.answered_at is not None

    # -- steps -------------------------------------------------------------------------
    async def _step(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` unless the leg hangs up first (Hangup) or time runs out."""
        if self._gone.done():
            if asyncio.iscoroutine(aw):
                aw.close()  # never started: no "never awaited" warning
            raise self._gone.result()
        task = asyncio.ensure_future(aw)
        waiters: set[asyncio.Future[object]] = {task, self._gone}  # type: ignore[arg-type]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._gone.done():
            raise self._gone.result()
        raise StepTimeout(f"channel {self.id}: step timed out after {timeout}s")

    async def answered(self, timeout: float) -> datetime:
        """Wait until the far end answers; OriginateFailed if it never does."""
        if self._answered.done():
            return self._answered.result()
        try:
            return await asyncio.wait_for(asyncio.shield(self._answered), timeout)
        except TimeoutError as err:
            raise OriginateFailed(self.id, None, "engine timeout") from err

    async def detect_machine(
        self, arguments: str, timeout: float, context: str = MACHINE_DETECTION_CONTEXT
    ) -> MachineVerdict:
        """Send this answered leg through Asterisk's answering-machine detection.

        ARI cannot run AMD(): the channel leaves the application for ``context`` of the
        dialplan, which runs ``AMD(arguments)`` and brings it back with the verdict as Stasis
        arguments. The application stays subscribed to the channel meanwhile (since the
        originate), so a hangup during the detection raises Hangup as usual. No verdict
        within ``timeout`` (its StasisStart lost with the event socket, say): Asterisk is
        asked where the channel is; still none, an empty verdict.
        """
        detection: asyncio.Future[MachineVerdict] = asyncio.get_running_loop().create_future()
        self._detection = detection
        try:
            await self._step(
                self.ari.request(
                    "POST",
                    f"/channels/{self.id}/variable",
                    params={"variable": MACHINE_DETECTION_VARIABLE, "value": arguments},
                ),
                timeout=10,
            )
            await self._step(
                self.ari.request(
                    "POST",
                    f"/channels/{self.id}/continue",
                    params={"context": context, "extension": "s", "priority": 1},
                ),
                timeout=10,
            )
            try:
                return await self._step(detection, timeout=timeout)
            except StepTimeout:
                return await self._verdict_in_asterisk()
        except AriNotFound as err:
            raise self._hangup_now() from err
        finally:
            if not detection.done():
                detection.cancel()

    async def _verdict_in_asterisk(self) -> MachineVerdict:
        """The verdict of a channel back in the application whose StasisStart was lost."""
        channel = await self.ari.request("GET", f"/channels/{self.id}")
        dialplan = channel.get("dialplan") or {}
        args = str(dialplan.get("app_data", "")).split(",")[1:]
        if dialplan.get("app_name") == "Stasis" and args[:1] == [MACHINE_DETECTION_ARG]:
            return MachineVerdict.from_args(args[1:])
        return MachineVerdict("", "no verdict in time")

    async def wait_hangup(self, timeout: float | None = None) -> Hangup:
        if self._gone.done():
            return self._gone.result()
        return await asyncio.wait_for(asyncio.shield(self._gone), timeout)

    async def play(self, media: str | Sequence[str]) -> None:
        """Play one or several media URIs and wait until they finish."""
        playback_id = f"{self.id}-p{next(self._seq)}"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Registered before the request: PlaybackFinished may arrive before the reply.
        self._playbacks[playback_id] = fut
        items = [media] if isinstance(media, str) else list(media)
        try:
            await self._step(
                self.ari.request(
                    "POST",
                    f"/channels/{self.id}/play/{playback_id}",
                    params={"media": items, "lang": self.language},
                ),
                timeout=15,
            )
            await self._step(fut, timeout=PLAYBACK_BUDGET)
        except AriNotFound as err:
            raise self._hangup_now() from err
        finally:
            self._playbacks.pop(playback_id, None)
        if self._gone.done():
            raise self._gone.result()

    async def stop_playbacks(self) -> None:
        """Stop whatever is playing to this leg now."""
        await self._stop_playbacks()

    async def _stop_playbacks(self) -> None:
        for playback_id in list(self._playbacks):
            try:
                await self.ari.request("DELETE", f"/playbacks/{playback_id}")
            except AriNotFound:
                pass

    async def _first_key(self, media: Sequence[str], timeout: float) -> str | None:
        """Play ``media``; the first key pressed during it (which stops it) or within
        ``timeout`` after it, or None. Keys pressed earlier are queued and count."""
        play = asyncio.ensure_future(self.play(media))
        key = asyncio.ensure_future(self._digits.get())
        try:
            done, _ = await asyncio.wait({play, key}, return_when=asyncio.FIRST_COMPLETED)
            if key in done:
                await self._stop_playbacks()
                return key.result()
            play.result()  # re-raises Hangup
        finally:
            for t in (play, key):
                if not t.done():
                    t.cancel()
            await asyncio.gather(play, key, return_exceptions=True)
        try:
            return await self._step(self._digits.get(), timeout=timeout)
        except StepTimeout:
            return None

    async def collect(
        self,
        media: Sequence[str],
        *,
        digits: str,
        timeout: float,
        tries: int,
        invalid: Sequence[str] = (),
    ) -> str | None:
        """Offer ``media`` and return the first valid key, or None after ``tries`` offers.

        A key pressed during the prompt (or before it: keys are queued) interrupts it. An
        invalid key plays ``invalid`` and offers the prompt again; so does silence.
        """
        for _ in range(tries):
            digit = await self._first_key(media, timeout)
            if digit is None:
                continue
            if digit in digits:
                return digit
            if invalid:
                await self.play(invalid)
        return None

    async def collect_digits(
        self, media: Sequence[str], *, max_digits: int, timeout: float, terminator: str = "#"
    ) -> str | None:
        """Offer ``media`` and read keys up to ``terminator`` (not included) or ``max_digits``.

        A key interrupts the prompt; ``timeout`` applies between keys. None on silence.
        """
        digit = await self._first_key(media, timeout)
        if digit is None:
            return None
        typed = ""
        while digit != terminator:
            typed += digit
            if len(typed) >= max_digits:
                break
            try:
                digit = await self._step(self._digits.get(), timeout=timeout)
            except StepTimeout:
                break
        return typed

    async def next_key(self, timeout: float | None) -> str | None:
        """The next key pressed (keys pressed earlier are queued) within ``timeout``, or None."""
        try:
            return await self._step(self._digits.get(), timeout=timeout)
        except StepTimeout:
            return None

    async def answer(self) -> None:
        """Answer a channel that came in through the dialplan."""
        try:
            await self._step(self.ari.request("POST", f"/channels/{self.id}/answer"), timeout=10)
        except AriNotFound as err:
            raise self._hangup_now() from err
        self.answered_at = self.answered_at or datetime.now(UTC)

    async def start_moh(self, moh_class: str = "default") -> None:
        try:
            await self._step(
                self.ari.request(
                    "POST", f"/channels/{self.id}/moh", params={"mohClass": moh_class}
                ),
                timeout=10,
            )
        except AriNotFound as err:
            raise self._hangup_now() from err

    async def stop_moh(self) -> None:
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}/moh")
        except AriNotFound:
            pass

    async def hangup(self, reason: str = "normal") -> None:
        """Hang up; a channel that is already gone is not an error."""
        if self._gone.done():
            return
        try:
            await self.ari.request("DELETE", f"/channels/{self.id}", params={"reason": reason})
        except AriNotFound:
            self._on_gone(self.hangup_cause, self.hangup_text, datetime.now(UTC))
            self._destroyed.set()

    def _hangup_now(self) -> Hangup:
        self._on_gone(self.hangup_cause, self.hangup_text or "gone", datetime.now(UTC))
        return self._gone.result()
