"""ARI events parsed at the edge into typed models.

Only the fields the engine uses are declared; everything else is ignored. Unknown event
types parse as :class:`Event` so that a newer Asterisk never breaks the event loop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_TZ_NO_COLON = re.compile(r"([+-]\d\d)(\d\d)$")


def parse_ari_time(value: str | datetime | None) -> datetime:
    """ARI writes ``2026-11-23T20:01:02.123+0000``; Python wants ``+00:00``."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(_TZ_NO_COLON.sub(r"\1:\2", value))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CallerId(_Model):
    name: str = ""
    number: str = ""


class Channel(_Model):
    id: str
    name: str = ""
    state: str = ""
    caller: CallerId = CallerId()
    language: str = ""


class Bridge(_Model):
    id: str
    channels: list[str] = []
    bridge_type: str = ""


class Playback(_Model):
    id: str
    target_uri: str = ""
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        kind, _, target = self.target_uri.partition(":")
        return target if kind == "channel" else None


class Event(_Model):
    type: str
    application: str = ""
    timestamp: datetime

    @field_validator("timestamp", mode="before")
    @classmethod
    def _ts(cls, value: Any) -> datetime:
        return parse_ari_time(value)

    @property
    def channel_id(self) -> str | None:
        return None


class ChannelEvent(Event):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


class StasisStart(ChannelEvent):
    args: list[str] = []
    replace_channel: Channel | None = None


class StasisEnd(ChannelEvent):
    pass


class ChannelStateChange(ChannelEvent):
    pass


class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int = 0


class ChannelHangupRequest(ChannelEvent):
    cause: int | None = None
    soft: bool = False


class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


class PlaybackEvent(Event):
    playback: Playback

    @property
    def channel_id(self) -> str | None:
        return self.playback.channel_id


class PlaybackStarted(PlaybackEvent):
    pass


class PlaybackFinished(PlaybackEvent):
    pass


class BridgeEvent(Event):
    bridge: Bridge


class ChannelEnteredBridge(BridgeEvent):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


class ChannelLeftBridge(BridgeEvent):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


class BridgeDestroyed(BridgeEvent):
    pass


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        StasisStart,
        StasisEnd,
        ChannelStateChange,
        ChannelDtmfReceived,
        ChannelHangupRequest,
        ChannelDestroyed,
        PlaybackStarted,
        PlaybackFinished,
        ChannelEnteredBridge,
        ChannelLeftBridge,
        BridgeDestroyed,
    )
}


def parse_event(data: dict[str, Any]) -> Event:
    """Parse one WebSocket message; raises pydantic.ValidationError on a malformed one."""
    cls = EVENT_TYPES.get(str(data.get("type", "")), Event)
    return cls.model_validate(data)
