"""What Asterisk says happened, independently of any engine: an ARI application subscribed to
everything records when channels entered and left bridges, with Asterisk's own timestamps.

It is the judge of the bills: a consultation lasted from the moment its bridge held both
phones to the moment the first one left.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from ivr_devkit.sandbox import SandboxInfo
from ivr_engine.ari.models import parse_ari_time

APP = "faults-observer"


@dataclass(frozen=True)
class BridgeEvent:
    kind: str  # "entered" or "left"
    bridge_id: str
    channel_id: str
    at: datetime
    protocol_id: str = ""  # the channel's SIP Call-ID


@dataclass(frozen=True)
class Talk:
    """One stretch of time during which a bridge held two phones or more."""

    start: datetime
    end: datetime
    first_to_leave: str  # a channel id

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class BridgeObserver:
    """``only_bridges``: Asterisk sends this application the bridge entries and exits alone
    (an ARI event filter), so that watching costs Asterisk as little as it can."""

    def __init__(self, info: SandboxInfo, *, app: str = APP, only_bridges: bool = False) -> None:
        self.info = info
        self.app = app
        self.only_bridges = only_bridges
        self.events: list[BridgeEvent] = []
        self.connections = 0  # more than one: events may have been missed in between
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="bridge-observer")
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def talks(self, bridge_id: str) -> list[Talk]:
        """Every stretch of this bridge with two phones or more in it, in order."""
        events = sorted((e for e in self.events if e.bridge_id == bridge_id), key=lambda e: e.at)
        inside: set[str] = set()
        start: datetime | None = None
        found: list[Talk] = []
        for event in events:
            if event.kind == "entered":
                inside.add(event.channel_id)
                if len(inside) >= 2 and start is None:
                    start = event.at
            else:
                inside.discard(event.channel_id)
                if len(inside) < 2 and start is not None:
                    found.append(Talk(start, event.at, event.channel_id))
                    start = None
        return found

    async def _run(self) -> None:
        url = self.info.ari_url.replace("http", "ws", 1) + "/events"
        user = f"{self.info.ari_user}:{self.info.ari_password}"
        headers = {"Authorization": "Basic " + base64.b64encode(user.encode()).decode()}
        params = {"app": self.app, "subscribeAll": "true"}
        async with aiohttp.ClientSession() as http:
            while True:  # Asterisk is not one of the faults; reconnect all the same
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.ws_connect(url, params=params, headers=headers) as ws:
                        if self.only_bridges:
                            await self._filter(http, headers)
                        self.connections += 1
                        self.ready.set()
                        async for msg in ws:
                            if msg.type is aiohttp.WSMsgType.TEXT:
                                self._note(json.loads(msg.data))
                await asyncio.sleep(0.5)

    async def _filter(self, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        allowed = [{"type": "ChannelEnteredBridge"}, {"type": "ChannelLeftBridge"}]
        url = f"{self.info.ari_url}/applications/{self.app}/eventFilter"
        async with http.put(url, json={"allowed": allowed}, headers=headers) as resp:
            resp.raise_for_status()

    def _note(self, event: dict[str, object]) -> None:
        kind = {"ChannelEnteredBridge": "entered", "ChannelLeftBridge": "left"}.get(
            str(event.get("type"))
        )
        bridge, channel = event.get("bridge"), event.get("channel")
        if kind is None or not isinstance(bridge, dict) or not isinstance(channel, dict):
            return
        at = parse_ari_time(str(event["timestamp"]))
        protocol_id = str(channel.get("protocol_id", ""))
        self.events.append(
            BridgeEvent(kind, str(bridge["id"]), str(channel["id"]), at, protocol_id)
        )
