"""The expert's phone menu: call the planning number, press 1, PIN then #, change the service.

Read it top to bottom: it is the phone call. Every change goes through the same store
functions as the HTTP API, so it is visible there at once.

    menu_welcome            1 → identify (calling number, else expert code + #)
    enter_pin + #           wrong (or locked: same words) → again, three times at most
    main_menu               1 status · 2 pause · 3 available again · 4 phone line on/off
                            5 available now · 6 stop now · 7 end time today (HHMM #)
                            8 refuse all waiting clients (1 to confirm) · 9 new PIN (twice)
                            0 test my line (the call ends, then the registered number rings)
                            * repeat · # goodbye
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import structlog

from ivr_engine.calls import Leg
from ivr_engine.domain import planning as rules
from ivr_engine.domain import today
from ivr_engine.domain.pin import PIN_FORMAT
from ivr_engine.domain.planning import Reason
from ivr_engine.errors import Hangup, LineTestRefused, LineTestRequired, PlanningError
from ivr_engine.flows.deps import FlowDeps
from ivr_engine.prompts import Prompt, sound_uri
from ivr_engine.store import pins
from ivr_engine.store import planning as availability

log = structlog.get_logger(__name__)

MENU_KEYS = "1234567890*#"


class PhoneMenu:
    def __init__(self, deps: FlowDeps, leg: Leg, caller: str) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.pool = deps.pool
        self.leg = leg
        self.caller = caller

    def media(self, prompt: Prompt) -> str:
        return sound_uri(prompt, self.settings.sound_prefix)

    @property
    def _hours(self) -> float:
        """IVR_LINE_TEST_REQUIRED_HOURS: going available needs a passed line test this recent."""
        return self.settings.line_test_required_hours

    async def run(self) -> None:
        try:
            await self._run()
        except Hangup:
            pass

    async def _run(self) -> None:
        leg = self.leg
        await leg.answer()
        if await self._ask(Prompt.MENU_WELCOME, "1") != "1":
            return await self._goodbye()
        expert_id = await self._identify()
        if not await self._check_pin(expert_id):
            return await self._goodbye()
        assert expert_id is not None
        structlog.contextvars.bind_contextvars(expert_id=expert_id)
        log.info("menu.authenticated")
        while (key := await self._ask(Prompt.MAIN_MENU, MENU_KEYS)) not in (None, "#"):
            if key == "0":
                if await self._line_test(expert_id):
                    return  # the call ends so that the registered number can ring
            elif key != "*":
                try:
                    await self._do(key, expert_id)
                except LineTestRequired:
                    log.info("menu.line_test_required", key=key)
                    await self.leg.play(self.media(Prompt.LINE_TEST_REQUIRED))
        await self._goodbye()

    async def _line_test(self, expert_id: int) -> bool:
        """Start a line test of the expert's registered number (True), or say why not."""
        start = self.deps.line_test
        if start is None:
            await self.leg.play(self.media(Prompt.INVALID_KEY))
            return False
        try:
            await start(expert_id, source="phone_menu", after=self.leg)
        except LineTestRefused as err:
            log.info("menu.line_test_refused", reason=err.reason)
            said = {
                "running": Prompt.LINE_TEST_RUNNING,
                "stopping": Prompt.SERVICE_UNAVAILABLE,  # "please call again later"
            }.get(err.reason, Prompt.LINE_TEST_IN_CALL)
            await self.leg.play(self.media(said))
            return False
        log.info("menu.line_test_started")
        try:
            await self.leg.play(self.media(Prompt.LINE_TEST_CALLING))
        except Hangup:
            pass
        return True

    async def _ask(self, prompt: Prompt, digits: str) -> str | None:
        return await self.leg.collect(
            [self.media(prompt)],
            digits=digits,
            timeout=self.settings.digit_timeout,
            tries=self.settings.prompt_tries,
            invalid=[self.media(Prompt.INVALID_KEY)],
        )

    async def _type(self, prompt: Prompt, max_digits: int) -> str:
        typed = await self.leg.collect_digits(
            [self.media(prompt)], max_digits=max_digits, timeout=self.settings.digit_timeout
        )
        return typed or ""

    async def _identify(self) -> int | None:
        """The expert whose registered number is calling, else the one whose code is typed."""
        digits = "".join(ch for ch in self.caller if ch.isdigit())
        row = None
        if digits:
            row = await self.pool.fetchrow(
                "SELECT id, language FROM experts"
                " WHERE regexp_replace(phone, '[^0-9]', '', 'g') = $1 ORDER BY id LIMIT 1",
                digits,
            )
        if row is None:
            code = await self._type(Prompt.ENTER_EXPERT_CODE, 9)
            if code.isdigit():
                row = await self.pool.fetchrow(
                    "SELECT id, language FROM experts WHERE id = $1", int(code)
                )
        if row is None:
            return None  # not said: the PIN step fails the same way for everyone
        self.leg.language = row["language"]
        return int(row["id"])

    async def _check_pin(self, expert_id: int | None) -> bool:
        s = self.settings
        for _ in range(s.pin_max_failures):
            pin = await self._type(Prompt.ENTER_PIN, 8)
            outcome = await pins.try_pin(
                self.pool,
                expert_id,
                self.caller,
                pin,
                now=datetime.now(UTC),
                max_failures=s.pin_max_failures,
                lockout=timedelta(minutes=s.pin_lockout_minutes),
                max_lockout=timedelta(hours=s.pin_lockout_max_hours),
                quiet=timedelta(hours=s.pin_quiet_hours),
            )
            if outcome is pins.PinOutcome.OK:
                return True
            log.info("menu.pin_refused", outcome=outcome.value)  # never the PIN itself
            await self.leg.play(self.media(Prompt.WRONG_CODE))
        return False

    async def _do(self, key: str, expert_id: int) -> None:
        now = datetime.now(UTC)
        av = await availability.load(self.pool, expert_id)
        if key == "1":
            await self._status(expert_id, av.at(now).reason)
            return await self._today(av, now)
        if key == "2":
            until = rules.pause(now, self.settings.pause_minutes)
            await availability.set_pause(self.pool, expert_id, until)
        elif key == "3":
            await availability.set_pause(self.pool, expert_id, None, line_test_hours=self._hours)
        elif key == "4":
            phone_on = rules.Channel.PHONE in av.channels
            await availability.set_channels(
                self.pool, expert_id, {"phone": not phone_on}, line_test_hours=self._hours
            )
        elif key == "9":
            first = await self._type(Prompt.ENTER_NEW_PIN, 8)
            second = await self._type(Prompt.ENTER_NEW_PIN_AGAIN, 8)
            if first != second or not PIN_FORMAT.fullmatch(first):
                await self.leg.play(self.media(Prompt.PINS_DIFFER))
                return
            await pins.set_pin(self.pool, expert_id, first)
        elif key == "8":
            if await self._ask(Prompt.CONFIRM_REFUSE_ALL, "1#") != "1":
                return
            await availability.refuse_all(self.pool, expert_id)
        elif key in "567":
            if not await self._edit_today(key, expert_id, av, now):
                return
        log.info("menu.changed", key=key)
        await self.leg.play(self.media(Prompt.DONE))

    async def _edit_today(
        self, key: str, expert_id: int, av: availability.ExpertAvailability, now: datetime
    ) -> bool:
        try:
            if key == "5":
                changes = today.available_now(av.planning, av.overrides, now, time(0))
            elif key == "6":
                changes = today.stop_now(av.planning, av.overrides, now)
            else:
                typed = await self._type(Prompt.ENTER_END_TIME, 4)
                end = rules.parse_hhmm(typed)
                changes = today.set_today_end(av.planning, av.overrides, now, end)
        except PlanningError:
            await self.leg.play(self.media(Prompt.INVALID_TIME))
            return False
        for day, slots in changes.items():
            await availability.set_override(
                self.pool, expert_id, day, slots, line_test_hours=self._hours
            )
        return True

    async def _status(self, expert_id: int, reason: Reason) -> None:
        said = {
            Reason.OPEN: Prompt.STATUS_OPEN,
            Reason.OUTSIDE_HOURS: Prompt.STATUS_CLOSED,
            Reason.PAUSED: Prompt.STATUS_PAUSED,
            Reason.CHANNEL_OFF: Prompt.STATUS_PHONE_OFF,
        }[reason]
        waiting = await self.pool.fetchval(
            "SELECT count(*) FROM requests WHERE expert_id = $1 AND state = 'waiting'", expert_id
        )
        await self.leg.play(
            [self.media(said), f"number:{waiting}", self.media(Prompt.CLIENTS_WAITING)]
        )

    async def _today(self, av: availability.ExpertAvailability, now: datetime) -> None:
        """Today's slots, times said with Asterisk's own number sounds for the language."""
        today = now.astimezone(av.planning.zone).date()
        slots = rules.slots_on(av.planning, av.overrides, today)
        if not slots:
            return await self.leg.play(self.media(Prompt.NO_SLOTS_TODAY))
        media = [self.media(Prompt.TODAY_SLOTS)]
        for slot in slots:
            media += [self.media(Prompt.FROM), *_clock(slot.start)]
            media += [self.media(Prompt.TO), *_clock(slot.end)]
        await self.leg.play(media)

    async def _goodbye(self) -> None:
        await self.leg.play(self.media(Prompt.GOODBYE))


def _clock(at: time) -> list[str]:
    """09:30 is said "9 30", 18:00 "18"."""
    said = [f"number:{at.hour}"]
    if at.minute:
        said.append(f"number:{at.minute}")
    return said
