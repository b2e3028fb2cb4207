"""What Asterisk says happened, independently of any engine: an ARI application subscribed
to everything records when channels entered and left bridges."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aiohttp

from ivr_engine.ari.models import parse_ari_time


class BridgeObserver:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.ready = asyncio.Event()

    def times(self, kind: str, bridge_id: str | None = None) -> list[datetime]:
        return [
            parse_ari_time(e["timestamp"])
            for e in self.events
            if e["type"] == kind and (bridge_id is None or e["bridge"]["id"] == bridge_id)
        ]

    def bridged_seconds(self, bridge_id: str | None = None) -> float:
        """From the second party entering the bridge to the first one leaving it."""
        entered = self.times("ChannelEnteredBridge", bridge_id)
        left = self.times("ChannelLeftBridge", bridge_id)
        assert len(entered) >= 2 and left, self.events
        return (min(left) - max(entered)).total_seconds()

    async def run(self, info: Any) -> None:
        url = info.ari_url.replace("http", "ws", 1) + "/events"
        token = base64.b64encode(f"{info.ari_user}:{info.ari_password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        params = {"app": "bridge-observer", "subscribeAll": "true"}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, params=params, headers=headers) as ws,
        ):
            self.ready.set()
            async for msg in ws:
                event = json.loads(msg.data)
                if event["type"] in ("ChannelEnteredBridge", "ChannelLeftBridge"):
                    self.events.append(event)


@asynccontextmanager
async def observing(info: Any) -> AsyncIterator[BridgeObserver]:
    observer = BridgeObserver()
    task = asyncio.create_task(observer.run(info))
    try:
        await asyncio.wait_for(observer.ready.wait(), 10)
        yield observer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
