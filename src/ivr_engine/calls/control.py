"""Routes ARI events to the legs and bridges the engine owns, and creates them.

Ids are chosen by the caller (derived from database rows) before any request, so that
events can be routed before the REST reply arrives and a retried originate is refused by
Asterisk instead of ringing a phone twice.

A channel entering the application that no leg owns is a call in only if the dialplan said
so (``Stasis(app,inbound,<number>)``: args[0] == "inbound"). Anything else is an orphan: an
originate whose reply never came (the engine gave up on it, the phone rang anyway and was
answered), or a leg already given up. It is hung up, never answered as a call in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from ivr_engine.ari.client import AriClient
from ivr_engine.ari.models import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from ivr_engine.calls.leg import Leg
from ivr_engine.errors import AriError, AriNotFound, AriUnavailable, OriginateFailed

log = structlog.get_logger(__name__)

InboundHandler = Callable[[StasisStart], None]
# The hangup text of a leg found gone after the event socket was back: its end time is only
# when the engine noticed, so a bill must take the end from Asterisk's own record (CEL).
LOST_WHILE_DISCONNECTED = "lost while disconnected"


# The events _route acts on: Asterisk is asked to send nothing else (ChannelVarset,
# ChannelStateChange, PlaybackStarted, Dial... were half of what crossed the socket).
ROUTED_EVENTS = (
    "StasisStart",
    "StasisEnd",
    "ChannelDtmfReceived",
    "PlaybackFinished",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "ChannelEnteredBridge",
)


class CallControl:
    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        self.legs: dict[str, Leg] = {}
        self.bridge_entries: dict[str, dict[str, datetime]] = {}
        self._bridge_waiters: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self._inbound: InboundHandler | None = None
        self._plays = 0
        self._hangups: set[asyncio.Task[None]] = set()  # orphans being hung up
        ari.on_event(self._route)
        ari.only_events(ROUTED_EVENTS)
        ari.on_connected(self.resync)

    def on_inbound(self, handler: InboundHandler) -> None:
        """Called for a channel that enters the app by the dialplan (not originated by us)."""
        self._inbound = handler

    # -- creating things -------------------------------------------------------------
    async def originate(
        self,
        channel_id: str,
        endpoint: str,
        *,
        language: str,
        ring_timeout: float,
        caller_id: str = "",
    ) -> Leg:
        """Start ringing ``endpoint``; returns at once, ``await leg.answered()`` to wait."""
        leg = Leg(self.ari, channel_id, language)
        self.legs[channel_id] = leg
        try:
            await self.ari.request(
                "POST",
                "/channels",
                params={
                    "endpoint": endpoint,
                    "app": self.ari.app,
                    "appArgs": "outbound",
                    "channelId": channel_id,
                    "timeout": max(1, round(ring_timeout)),
                    "callerId": caller_id or None,
                },
            )
        except AriError as err:
            self.legs.pop(channel_id, None)
            raise OriginateFailed(channel_id, None, f"originate refused: {err.status}") from err
        except AriUnavailable as err:
            self.legs.pop(channel_id, None)
            # The request may have reached Asterisk (only its reply was lost): a phone may be
            # ringing for a call nobody will take. Hang it up; a StasisStart arriving later
            # for it finds no leg and is hung up too.
            self._hang_up_orphan(channel_id, "originate unanswered")
            raise OriginateFailed(channel_id, None, "originate refused: asterisk away") from err
        except BaseException:
            self.legs.pop(channel_id, None)
            raise
        return leg

    def adopt(self, channel_id: str, language: str) -> Leg:
        """Take charge of a channel that is already in the app (inbound, or after a restart)."""
        leg = self.legs.get(channel_id)
        if leg is None:
            leg = Leg(self.ari, channel_id, language)
            self.legs[channel_id] = leg
        return leg

    def forget(self, leg: Leg) -> None:
        self.legs.pop(leg.id, None)

    async def create_bridge(self, bridge_id: str) -> None:
        await self.ari.request("POST", f"/bridges/{bridge_id}", params={"type": "mixing"})
        self.bridge_entries.setdefault(bridge_id, {})

    async def add_to_bridge(self, bridge_id: str, *legs: Leg) -> None:
        await self.ari.request(
            "POST", f"/bridges/{bridge_id}/addChannel", params={"channel": [leg.id for leg in legs]}
        )

    async def wait_bridged(self, bridge_id: str, count: int, timeout: float) -> datetime:
        """Wait until ``count`` channels have entered the bridge; returns when the last did."""
        entries = self.bridge_entries.setdefault(bridge_id, {})
        if len(entries) < count:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._bridge_waiters[bridge_id] = (count, fut)
            try:
                await asyncio.wait_for(fut, timeout)
            finally:
                self._bridge_waiters.pop(bridge_id, None)
        return max(entries.values())

    async def play_to_bridge(self, bridge_id: str, media: str, language: str) -> None:
        """Play ``media`` to everyone in the bridge (does not wait for it to finish)."""
        self._plays += 1
        await self.ari.request(
            "POST",
            f"/bridges/{bridge_id}/play",
            params={"media": media, "lang": language, "playbackId": f"{bridge_id}-{self._plays}"},
        )

    async def bridge_channels(self, bridge_id: str) -> list[str] | None:
        """The channels Asterisk has in the bridge now; None if the bridge is gone."""
        try:
            bridge = await self.ari.request("GET", f"/bridges/{bridge_id}")
        except AriNotFound:
            return None
        return [str(c) for c in bridge.get("channels", [])]

    async def channel_state(self, channel_id: str) -> str | None:
        """Asterisk's state of the channel ("Up", "Ringing", ...); None if it is gone."""
        try:
            channel = await self.ari.request("GET", f"/channels/{channel_id}")
        except AriNotFound:
            return None
        return str(channel.get("state", ""))

    async def subscribe(self, *, channels: list[str], bridges: list[str]) -> None:
        """Receive the events of channels and bridges that another application (a dead
        engine's) created; harmless for this application's own."""
        sources = [f"channel:{c}" for c in channels] + [f"bridge:{b}" for b in bridges]
        if not sources:
            return
        try:
            await self.ari.request(
                "POST",
                f"/applications/{self.ari.app}/subscription",
                params={"eventSource": sources},
            )
        except AriError as err:  # one of them is gone already: the caller checks each
            log.info("ari.subscribe_partial", error=str(err))

    def forget_bridge(self, bridge_id: str) -> None:
        """Stop tracking a bridge that stays up in Asterisk (the engine is leaving it)."""
        self.bridge_entries.pop(bridge_id, None)

    async def destroy_bridge(self, bridge_id: str) -> None:
        self.bridge_entries.pop(bridge_id, None)
        try:
            await self.ari.request("DELETE", f"/bridges/{bridge_id}")
        except AriNotFound:
            pass

    async def close(self) -> None:
        """Wait for the orphans' hang-ups still on their way (each bounded by ARI's timeout)."""
        await asyncio.gather(*self._hangups, return_exceptions=True)

    def _hang_up_orphan(self, channel_id: str, why: str) -> None:
        log.warning("ari.orphan_hangup", channel_id=channel_id, why=why)
        task = asyncio.create_task(self._hang_up(channel_id), name=f"orphan-{channel_id}")
        self._hangups.add(task)
        task.add_done_callback(self._hangups.discard)

    async def _hang_up(self, channel_id: str) -> None:
        try:
            await self.ari.request("DELETE", f"/channels/{channel_id}")
        except AriNotFound:
            pass  # gone already, or never created
        except (AriError, AriUnavailable) as err:
            log.warning("ari.orphan_hangup_failed", channel_id=channel_id, error=str(err))

    def _stranger(self, event: StasisStart, leg: Leg | None) -> None:
        """A channel entered the application and no live leg takes it."""
        if leg is None and event.args[:1] == ["inbound"] and self._inbound is not None:
            self._inbound(event)
            return
        why = "leg already ended" if leg is not None else f"no leg, args {event.args}"
        self._hang_up_orphan(event.channel.id, why)

    # -- events ------------------------------------------------------------------------
    def _route(self, event: Event) -> None:
        if isinstance(event, ChannelEnteredBridge):
            self.bridge_entries.setdefault(event.bridge.id, {})[event.channel.id] = event.timestamp
            entries = self.bridge_entries[event.bridge.id]
            count, fut = self._bridge_waiters.get(event.bridge.id, (0, None))
            if fut is not None and not fut.done() and len(entries) >= count:
                fut.set_result(None)
        channel_id = event.channel_id
        leg = self.legs.get(channel_id) if channel_id else None
        if isinstance(event, StasisStart) and (leg is None or leg.is_gone):
            self._stranger(event, leg)
            return
        if leg is None:
            return
        if isinstance(event, StasisStart):
            leg._on_stasis_start(event.timestamp, event.args)
        elif isinstance(event, ChannelDtmfReceived):
            leg._on_digit(event.digit)
        elif isinstance(event, PlaybackFinished):
            leg._on_playback_finished(event.playback.id)
        elif isinstance(event, ChannelDestroyed):
            leg._on_destroyed(event.cause, event.cause_txt, event.timestamp)
        elif isinstance(event, ChannelHangupRequest):
            # A soft hangup's "cause" is Asterisk's soft-hangup flag (1, 32), not a Q.850
            # cause (see domain/media.py): only ChannelDestroyed has the real one then.
            leg._on_hangup_request(None if event.soft else event.cause)
        elif isinstance(event, StasisEnd):
            leg._on_stasis_end(event.timestamp)

    async def resync(self) -> None:
        """After (re)connecting: events of the gap are lost, so ask Asterisk what still exists."""
        if not self.legs:
            return
        # Only the legs that existed when we asked: one dialled while the list is on its way
        # is not in it, and is not gone.
        known = list(self.legs.values())
        try:
            channels = await self.ari.request("GET", "/channels")
        except AriError:
            log.exception("ari.resync_failed")
            return
        alive = {c["id"] for c in channels}
        now = datetime.now(UTC)
        for leg in known:
            state = next((c.get("state") for c in channels if c["id"] == leg.id), None)
            if leg.id not in alive:
                log.warning("ari.resync_channel_gone", channel_id=leg.id)
                leg._on_destroyed(0, LOST_WHILE_DISCONNECTED, now)
                continue
            if state == "Up" and not leg.is_answered:
                leg._on_stasis_start(now)
            for playback_id in list(leg._playbacks):
                try:
                    await self.ari.request("GET", f"/playbacks/{playback_id}")
                except AriNotFound:
                    leg._on_playback_finished(playback_id)
        await self._resync_bridges(now)

    async def _resync_bridges(self, now: datetime) -> None:
        """A ChannelEnteredBridge lost in the gap: ask the bridges someone waits on."""
        for bridge_id, (count, fut) in list(self._bridge_waiters.items()):
            present = await self.bridge_channels(bridge_id) or []
            entries = self.bridge_entries.setdefault(bridge_id, {})
            for channel_id in present:
                if channel_id not in entries:
                    log.warning("ari.resync_bridge_entry", bridge_id=bridge_id, channel=channel_id)
                    entries[channel_id] = now
            if len(entries) >= count and not fut.done():
                fut.set_result(None)
