"""ARI events parsed at the edge into light typed objects.

Only the fields the engine uses are read; everything else is ignored. Unknown event types
parse as :class:`Event` so that a newer Asterisk never breaks the event loop. Every event of
every call crosses this module, so it builds frozen dataclasses by hand from the decoded JSON
(no validation framework per event); a message that is not what its type says raises
:class:`EventFormatError` (a ``ValueError``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class EventFormatError(ValueError):
    """An ARI message whose fields are missing or of the wrong type."""


def parse_ari_time(value: str | datetime | None) -> datetime:
    """ARI writes ``2026-11-23T20:01:02.123+0000``; always timezone-aware (UTC if none)."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise EventFormatError(f"timestamp is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 reads "+0000" as well as "+00:00"
    except ValueError as err:
        raise EventFormatError(f"bad timestamp {value!r}") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- reading one field -----------------------------------------------------------------------
def _obj(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise EventFormatError(f"{what} is not an object")
    return data


def _str(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise EventFormatError(f"{key} missing or not a string")
    return value


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventFormatError(f"{key} missing or not an integer")
    return value


# -- the objects events carry ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallerId:
    name: str = ""
    number: str = ""


_NO_CALLER = CallerId()


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    name: str = ""
    state: str = ""
    caller: CallerId = _NO_CALLER
    language: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Channel:
        d = _obj(data, "channel")
        raw_caller = d.get("caller")
        caller = _NO_CALLER
        if raw_caller is not None:
            c = _obj(raw_caller, "caller")
            caller = CallerId(_str(c, "name", ""), _str(c, "number", ""))
        return cls(
            _str(d, "id"),
            _str(d, "name", ""),
            _str(d, "state", ""),
            caller,
            _str(d, "language", ""),
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    channels: list[str] = field(default_factory=list)
    bridge_type: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Bridge:
        d = _obj(data, "bridge")
        channels = d.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise EventFormatError("bridge channels is not a list of strings")
        return cls(_str(d, "id"), channels, _str(d, "bridge_type", ""))


@dataclass(frozen=True, slots=True)
class Playback:
    id: str
    target_uri: str = ""
    state: str = ""

    @classmethod
    def from_json(cls, data: Any) -> Playback:
        d = _obj(data, "playback")
        return cls(_str(d, "id"), _str(d, "target_uri", ""), _str(d, "state", ""))

    @property
    def channel_id(self) -> str | None:
        kind, _, target = self.target_uri.partition(":")
        return target if kind == "channel" else None


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type: str
    application: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def channel_id(self) -> str | None:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(Event):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(ChannelEvent):
    args: list[str] = field(default_factory=list)
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackEvent(Event):
    playback: Playback

    @property
    def channel_id(self) -> str | None:
        return self.playback.channel_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEvent(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(BridgeEvent):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(BridgeEvent):
    channel: Channel

    @property
    def channel_id(self) -> str | None:
        return self.channel.id


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(BridgeEvent):
    pass


# -- parsing ---------------------------------------------------------------------------------
Head = tuple[str, str, datetime]  # type, application, timestamp


def _args(data: dict[str, Any]) -> list[str]:
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise EventFormatError("args is not a list of strings")
    return args


def _stasis_start(h: Head, d: dict[str, Any]) -> Event:
    replace = d.get("replace_channel")
    return StasisStart(
        type=h[0],
        application=h[1],
        timestamp=h[2],
        channel=Channel.from_json(d.get("channel")),
        args=_args(d),
        replace_channel=None if replace is None else Channel.from_json(replace),
    )


def _channel_only(
    cls: type[StasisEnd | ChannelStateChange],
) -> Callable[[Head, dict[str, Any]], Event]:
    def parse(h: Head, d: dict[str, Any]) -> Event:
        return cls(
            type=h[0], application=h[1], timestamp=h[2], channel=Channel.from_json(d.get("channel"))
        )

    return parse


def _dtmf(h: Head, d: dict[str, Any]) -> Event:
    return ChannelDtmfReceived(
        type=h[0],
        application=h[1],
        timestamp=h[2],
        channel=Channel.from_json(d.get("channel")),
        digit=_str(d, "digit"),
        duration_ms=_int(d, "duration_ms", 0),
    )


def _hangup_request(h: Head, d: dict[str, Any]) -> Event:
    cause = d.get("cause")
    soft = d.get("soft", False)
    if cause is not None and (isinstance(cause, bool) or not isinstance(cause, int)):
        raise EventFormatError("cause is not an integer")
    if not isinstance(soft, bool):
        raise EventFormatError("soft is not a boolean")
    return ChannelHangupRequest(
        type=h[0],
        application=h[1],
        timestamp=h[2],
        channel=Channel.from_json(d.get("channel")),
        cause=cause,
        soft=soft,
    )


def _destroyed(h: Head, d: dict[str, Any]) -> Event:
    return ChannelDestroyed(
        type=h[0],
        application=h[1],
        timestamp=h[2],
        channel=Channel.from_json(d.get("channel")),
        cause=_int(d, "cause", 0),
        cause_txt=_str(d, "cause_txt", ""),
    )


def _playback(
    cls: type[PlaybackStarted | PlaybackFinished],
) -> Callable[[Head, dict[str, Any]], Event]:
    def parse(h: Head, d: dict[str, Any]) -> Event:
        return cls(
            type=h[0],
            application=h[1],
            timestamp=h[2],
            playback=Playback.from_json(d.get("playback")),
        )

    return parse


def _bridge_channel(
    cls: type[ChannelEnteredBridge | ChannelLeftBridge],
) -> Callable[[Head, dict[str, Any]], Event]:
    def parse(h: Head, d: dict[str, Any]) -> Event:
        return cls(
            type=h[0],
            application=h[1],
            timestamp=h[2],
            bridge=Bridge.from_json(d.get("bridge")),
            channel=Channel.from_json(d.get("channel")),
        )

    return parse


def _bridge_destroyed(h: Head, d: dict[str, Any]) -> Event:
    return BridgeDestroyed(
        type=h[0], application=h[1], timestamp=h[2], bridge=Bridge.from_json(d.get("bridge"))
    )


def _generic(h: Head, d: dict[str, Any]) -> Event:
    return Event(type=h[0], application=h[1], timestamp=h[2])


PARSERS: dict[str, Callable[[Head, dict[str, Any]], Event]] = {
    "StasisStart": _stasis_start,
    "StasisEnd": _channel_only(StasisEnd),
    "ChannelStateChange": _channel_only(ChannelStateChange),
    "ChannelDtmfReceived": _dtmf,
    "ChannelHangupRequest": _hangup_request,
    "ChannelDestroyed": _destroyed,
    "PlaybackStarted": _playback(PlaybackStarted),
    "PlaybackFinished": _playback(PlaybackFinished),
    "ChannelEnteredBridge": _bridge_channel(ChannelEnteredBridge),
    "ChannelLeftBridge": _bridge_channel(ChannelLeftBridge),
    "BridgeDestroyed": _bridge_destroyed,
}


def parse_event(data: Any) -> Event:
    """Build the event of one decoded WebSocket message; raises :class:`EventFormatError`
    on a malformed one (no type, no timestamp, a required field missing or mistyped)."""
    d = _obj(data, "event")
    kind = _str(d, "type")
    if "timestamp" not in d:
        raise EventFormatError("timestamp missing")
    head = (kind, _str(d, "application", ""), parse_ari_time(d["timestamp"]))
    return PARSERS.get(kind, _generic)(head, d)
