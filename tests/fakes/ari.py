"""A loopback fake of the part of Asterisk's REST Interface (ARI) that ivr-engine uses.

A real aiohttp server on 127.0.0.1 (port 0) answers the REST calls of
:class:`ivr_engine.ari.client.AriClient` with the status codes Asterisk gives, and pushes the
events the engine parses over the event WebSocket. The phone at each dialled number follows a
script (:class:`Phone`); every REST call is recorded, so a test can assert what the engine
asked for. All timing is asyncio timers on the test's own loop.

Faked, below ``/ari`` (basic auth, or ``api_key=user:password``, on every path):

=======  ======================================  ==============================================
GET      /events?app=...                          the event WebSocket (400 without ``app``)
GET      /asterisk/ping                           200
POST     /channels                                originate: endpoint, app, appArgs, channelId,
                                                  timeout, callerId; 200, 400, 409 (id in use),
                                                  500 ("Allocation failed": a refused originate)
GET      /channels, /channels/{id}                what exists now (the engine's resync); 404
DELETE   /channels/{id}?reason=                   hang up; 204, 404, 400 (unknown reason)
POST     /channels/{id}/answer                    204, 404, 409 (not in Stasis), 412 (ringing)
POST     /channels/{id}/play/{playbackId}         media (comma separated), lang; 201, 404,
                                                  409, 412
POST     /channels/{id}/moh?mohClass=             204, 404, 409, 412
DELETE   /channels/{id}/moh                       204, 404, 409, 412
POST     /channels/{id}/variable?variable=&value= 204, 400 (no name), 404, 409
POST     /channels/{id}/continue?context=         204, 404, 409, 412: the channel leaves the
                                                  application for the dialplan (StasisEnd);
                                                  context ivr-amd is played as the shipped one
                                                  (below), any other hangs the channel up
GET      /playbacks/{id}, DELETE /playbacks/{id}  200/204, 404
GET      /bridges, /bridges/{id}                  200, 404
POST     /bridges/{id}?type=                      create: 200; an existing one given a type: 500
POST     /bridges/{id}/addChannel?channel=a,b     204, 404 (bridge), 400 (channel not found),
                                                  422 (channel not in Stasis)
DELETE   /bridges/{id}                            204, 404
PUT      /applications/{app}/eventFilter          {"allowed": [{"type": T}, ...]}: only those
                                                  types reach the app's sockets; 200, 400
=======  ======================================  ==============================================

REST over the event WebSocket (Asterisk 22.4+): a ``RESTRequest`` message on ``/events`` is
run through the same routes and middleware as HTTP (so failures, delays and triggers apply
to it too) and answered
on the socket with a ``RESTResponse`` (unless the application's event filter leaves that type
out: Asterisk filters replies like events), one request after the other as Asterisk does; its
:class:`RestCall` says ``via="websocket"``. ``ignore_socket_requests()`` makes the fake an
older Asterisk, which reads such messages and answers nothing.

Events (only those the engine reacts to, with the fields its models read): ChannelStateChange,
StasisStart (args), ChannelDtmfReceived, PlaybackStarted, PlaybackFinished,
ChannelHangupRequest (cause, soft), ChannelEnteredBridge, ChannelLeftBridge, StasisEnd,
ChannelDestroyed (cause, cause_txt) and BridgeDestroyed. An originated channel is subscribed to
its application from the start (as Asterisk does), so a call that is never answered still
reports its ChannelDestroyed. Events emitted while no WebSocket of the application is open are
lost, as with Asterisk.

Scripting, per dialled number: ``fake.phone(number, answers(press="1",
hang_up_in_bridge_after=0.3))``, ``never_answers()``, ``busy()``, ``refuses(500)``,
``voicemail()``; a number with no script is unallocated (cause 1). Playbacks end after
``playback_seconds`` (20 ms). The dialplan's answering-machine detection (context ivr-amd of
asterisk_conf/extensions.conf) takes the phone's ``amd_seconds`` and brings the channel back
with ``StasisStart`` args ``["amd", STATUS, CAUSE]`` from its ``amd`` (a person by default).

Controls: ``answer``/``press``/``hang_up`` (a phone acts now); ``drop_websockets`` and
``refuse_websockets`` (the event socket); ``fail(method, path, status=)`` (REST errors);
``go_away``/``come_back`` (connections refused; ``lose_calls``: Asterisk restarted);
``when(method, path, action)`` (something happens just as a REST call arrives); ``slow(method,
path, seconds)`` (its answer arrives late); ``add_channel``/
``add_bridge`` (what a previous engine left). Reading: ``dialled(number)`` (the channels, with
what they heard and how they ended), ``requests(method, path)`` (REST calls), ``events`` and
``lost_events``; ``wait_until(predicate)`` wakes at each change.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, web
from aiohttp.test_utils import make_mocked_request
from yarl import URL

# Q.850 causes as Asterisk names them (ast_cause2str).
NORMAL_CLEARING = 16
USER_BUSY = 17
NO_ANSWER = 19
UNALLOCATED = 1
CAUSE_TEXT = {
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    26: "Answered elsewhere",
    28: "Invalid number format",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}
# DELETE /channels/{id}?reason=... (convert_reason_to_hangup_code in resource_channels.c).
HANGUP_REASONS = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
NOT_ANSWERED_STATES = {"Down", "Rsrvd", "Ringing"}  # answer/play/moh answer 412 there


def ari_time(at: datetime | None = None) -> str:
    """Asterisk's timestamp format: ``2026-11-23T20:01:02.123+0000``."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def number_of(endpoint: str) -> str:
    """``PJSIP/+39060001@ivr-trunk`` -> ``+39060001``."""
    return endpoint.partition("/")[2].partition("@")[0]


# -- phone scripts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Phone:
    """What the phone at one number does when the engine dials it.

    It rings for ``ring`` seconds (None: until the originate's ``timeout``), then answers or,
    if ``answers`` is false, the call ends with ``cause`` (19 no answer, 17 busy...). A ring
    longer than the originate's timeout ends with cause 19 when the timeout expires. Once
    answered it presses ``press`` (one key every ``key_gap`` s) starting ``press_delay`` s
    after its first prompt starts playing, and hangs up ``hang_up_after`` s after answering or
    ``hang_up_in_bridge_after`` s after entering a bridge. ``refuse_status`` makes Asterisk
    refuse the originate itself (no channel, no event).
    """

    answers: bool = True
    ring: float | None = 0.02
    cause: int = NO_ANSWER
    press: str = ""
    press_delay: float = 0.0
    key_gap: float = 0.05
    hang_up_after: float | None = None
    hang_up_in_bridge_after: float | None = None
    refuse_status: int | None = None
    # What AMD() in the dialplan says of whoever answers, after listening this long (None:
    # the channel never comes back from the dialplan).
    amd: tuple[str, str] = ("HUMAN", "HUMAN-1000-800")
    amd_seconds: float | None = 0.05


def answers(
    *,
    after: float = 0.02,
    press: str = "",
    press_delay: float = 0.0,
    key_gap: float = 0.05,
    hang_up_after: float | None = None,
    hang_up_in_bridge_after: float | None = None,
    amd: tuple[str, str] = ("HUMAN", "HUMAN-1000-800"),
    amd_seconds: float | None = 0.05,
) -> Phone:
    return Phone(
        ring=after,
        press=press,
        press_delay=press_delay,
        key_gap=key_gap,
        hang_up_after=hang_up_after,
        hang_up_in_bridge_after=hang_up_in_bridge_after,
        amd=amd,
        amd_seconds=amd_seconds,
    )


def voicemail(*, after: float = 0.02, amd_seconds: float = 0.05) -> Phone:
    """An answering machine: answers, presses nothing; AMD() hears a long greeting."""
    return answers(after=after, amd=("MACHINE", "LONGGREETING-1520-1500"), amd_seconds=amd_seconds)


def never_answers(*, network_gives_up_after: float | None = None) -> Phone:
    """Rings until the originate's timeout (cause 19); or the network ends the call sooner."""
    return Phone(answers=False, ring=network_gives_up_after, cause=NO_ANSWER)


def busy(*, after: float = 0.02) -> Phone:
    return Phone(answers=False, ring=after, cause=USER_BUSY)


def refuses(status: int = 500) -> Phone:
    """Asterisk cannot create the channel (an offline endpoint): 500 "Allocation failed"."""
    return Phone(refuse_status=status)


UNKNOWN_NUMBER = Phone(answers=False, ring=0.01, cause=UNALLOCATED)


# -- what the fake Asterisk holds -----------------------------------------------------------


@dataclass
class RestCall:
    method: str
    path: str  # below /ari, e.g. "/channels/ivr-1-2/play/ivr-1-2-p1"
    params: dict[str, str]
    at: datetime
    status: int = 0
    via: str = "http"  # or "websocket": a RESTRequest on the event socket


@dataclass
class FakePlayback:
    id: str
    channel: FakeChannel
    media: list[str]
    language: str
    state: str = "queued"
    timer: asyncio.TimerHandle | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media[0],
            "media_uris": self.media,
            "target_uri": f"channel:{self.channel.id}",
            "language": self.language,
            "state": self.state,
        }


@dataclass
class FakeBridge:
    id: str
    bridge_type: str
    channels: list[FakeChannel] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    apps: set[str] = field(default_factory=set)  # applications told about it
    played: list[list[str]] = field(default_factory=list)  # media played to the bridge

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": "simple_bridge",
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": "",
            "channels": [c.id for c in self.channels],
            "creationtime": ari_time(self.created_at),
            "video_mode": "talker",
        }


class FakeChannel:
    """One channel of the fake Asterisk, driven by the script of the phone it rings."""

    def __init__(
        self,
        ari: FakeAri,
        channel_id: str,
        *,
        endpoint: str,
        phone: Phone,
        app: str,
        args: list[str],
        caller_id: str = "",
    ) -> None:
        self.ari = ari
        self.id = channel_id
        self.endpoint = endpoint
        self.number = number_of(endpoint)
        self.phone = phone
        self.app = app
        self.args = args
        self.caller_id = caller_id
        self.name = f"{endpoint.partition('/')[0]}/{ari.next_name()}"
        self.state = "Down"
        self.in_stasis = False
        self.bridge: FakeBridge | None = None
        self.moh_class: str | None = None
        self.playbacks: dict[str, FakePlayback] = {}
        # What happened, for the tests' assertions.
        self.created_at = datetime.now(UTC)
        self.answered_at: datetime | None = None
        self.destroyed_at: datetime | None = None
        self.cause: int | None = None
        self.played: list[list[str]] = []  # the media of every play request
        self.moh_started = 0
        self.keys_pressed = ""
        self.variables: dict[str, str] = {}  # set by the engine (POST .../variable)
        self.continued: list[str] = []  # the dialplan contexts it was sent to
        self.hung_up_by: str | None = None  # "engine" (DELETE), "phone", "network", "crash"
        self._pressing = False
        self._timers: list[asyncio.TimerHandle] = []

    def __repr__(self) -> str:
        return f"<FakeChannel {self.id} {self.number} {self.state}>"

    @property
    def alive(self) -> bool:
        return self.destroyed_at is None

    @property
    def media(self) -> list[str]:
        """Every media URI played to this channel, in order."""
        return [m for request in self.played for m in request]

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": "", "number": self.caller_id},
            "connected": {"name": "", "number": self.number},
            "accountcode": "",
            "dialplan": {
                "context": "default",
                "exten": "s",
                "priority": 1,
                "app_name": "Stasis" if self.in_stasis else "AppDial2",
                "app_data": ",".join([self.app, *self.args]) if self.in_stasis else "",
            },
            "creationtime": ari_time(self.created_at),
            "language": "en",
        }

    # -- the script ------------------------------------------------------------------------
    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay, callback))

    def dial(self, timeout: float | None) -> None:
        """The originate went out: it rings, then answers or ends, as its phone says."""
        phone = self.phone
        self._later(0, lambda: self._set_state("Ringing"))
        rings_out = phone.ring is not None and (timeout is None or phone.ring < timeout)
        if rings_out and phone.answers:
            self._later(phone.ring or 0, self.answer)
        elif rings_out:
            self._later(phone.ring or 0, lambda: self.end(phone.cause, by="network"))
        elif timeout is not None:
            self._later(timeout, lambda: self.end(NO_ANSWER, by="network"))

    def answer(self) -> None:
        """The phone picks up: the channel enters the Stasis application."""
        if not self.alive or self.in_stasis:
            return
        self.answered_at = datetime.now(UTC)
        self._set_state("Up")
        self.in_stasis = True
        self.ari.emit(self.app, "StasisStart", channel=self.snapshot(), args=self.args)
        if self.phone.hang_up_after is not None:
            self._later(self.phone.hang_up_after, self.hang_up)

    def continue_in_dialplan(self, context: str) -> None:
        """The engine sent the channel to the dialplan: it leaves the application."""
        self.continued.append(context)
        self.in_stasis = False
        self.ari.emit(self.app, "StasisEnd", channel=self.snapshot())
        if context != "ivr-amd":
            self._later(0, lambda: self.end(NORMAL_CLEARING, by="dialplan"))
        elif self.phone.amd_seconds is not None:
            self._later(self.phone.amd_seconds, self._back_from_detection)

    def _back_from_detection(self) -> None:
        """ivr-amd: AMD() has decided; Stasis(app,amd,AMDSTATUS,AMDCAUSE)."""
        if not self.alive:
            return
        self.in_stasis = True
        self.args = ["amd", *self.phone.amd]
        self.ari.emit(self.app, "StasisStart", channel=self.snapshot(), args=self.args)

    def press(self, digits: str) -> None:
        """The phone presses keys now."""
        for digit in digits:
            if not self.alive:
                return
            self.keys_pressed += digit
            self.ari.emit(
                self.app,
                "ChannelDtmfReceived",
                channel=self.snapshot(),
                digit=digit,
                duration_ms=120,
            )

    def hang_up(self, cause: int = NORMAL_CLEARING) -> None:
        """The phone hangs up."""
        if self.alive:
            self.ari.emit(self.app, "ChannelHangupRequest", channel=self.snapshot(), cause=cause)
            self.end(cause, by="phone")

    def end(self, cause: int, *, by: str) -> None:
        """The channel goes away: playbacks end, it leaves its bridge and the application."""
        if not self.alive:
            return
        for timer in self._timers:
            timer.cancel()
        for playback in list(self.playbacks.values()):
            self.ari.finish_playback(playback, "done")
        if self.bridge is not None:
            self.ari.leave_bridge(self)
        if self.in_stasis:
            self.in_stasis = False
            self.ari.emit(self.app, "StasisEnd", channel=self.snapshot())
        self.cause = cause
        self.hung_up_by = by
        self.destroyed_at = datetime.now(UTC)
        self.ari.channels.pop(self.id, None)
        self.ari.emit(
            self.app,
            "ChannelDestroyed",
            channel=self.snapshot(),
            cause=cause,
            cause_txt=CAUSE_TEXT.get(cause, "Unknown"),
        )

    def vanish(self) -> None:
        """Asterisk died: the channel is gone and nobody is told."""
        for timer in self._timers:
            timer.cancel()
        self.destroyed_at = datetime.now(UTC)
        self.hung_up_by = "crash"
        self.ari.channels.pop(self.id, None)

    def playback_started(self) -> None:
        if self.phone.press and not self._pressing:
            self._pressing = True
            for i, digit in enumerate(self.phone.press):
                delay = self.phone.press_delay + i * self.phone.key_gap
                self._later(delay, functools.partial(self.press, digit))

    def entered_bridge(self) -> None:
        if self.phone.hang_up_in_bridge_after is not None:
            self._later(self.phone.hang_up_in_bridge_after, self.hang_up)

    def _set_state(self, state: str) -> None:
        if self.alive and self.state != state:
            self.state = state
            self.ari.emit(self.app, "ChannelStateChange", channel=self.snapshot())


@dataclass(eq=False)
class _Subscriber:
    app: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    times: int | None  # None: until clear_failures()


@dataclass
class _Trigger:
    method: str
    path: str
    action: Callable[[], object]


@dataclass
class _Delay:
    method: str
    path: str
    seconds: float


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _no_content() -> web.Response:
    return web.Response(status=204)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VIA_HEADER = "X-Fake-Ari-Via"  # set on the request a RESTRequest becomes
# Its message_body (a mocked request has no payload).
_BODY_KEY = web.RequestKey("fake_ari_socket_body", str)


class FakeAri:
    """The fake Asterisk: REST, the event WebSocket, the phones, and controls for tests."""

    def __init__(
        self,
        *,
        user: str = "ivr-engine",
        password: str = "fake-ari-secret",
        playback_seconds: float = 0.02,
    ) -> None:
        self.user = user
        self.password = password
        self.playback_seconds = playback_seconds
        self.port = 0
        self.phones: dict[str, Phone] = {}
        self.channels: dict[str, FakeChannel] = {}  # those that exist now
        self.history: list[FakeChannel] = []  # every channel ever, in creation order
        self.bridges: dict[str, FakeBridge] = {}
        self.subscriptions: list[tuple[str, list[str]]] = []  # (app, event sources)
        self.event_filters: dict[str, set[str]] = {}  # app -> the event types it is sent
        self.history_bridges: dict[str, FakeBridge] = {}  # every bridge ever made, by id
        self.playbacks: dict[str, FakePlayback] = {}
        self.calls: list[RestCall] = []  # every REST call received
        self.events: list[dict[str, Any]] = []  # every event emitted
        self.lost_events: list[dict[str, Any]] = []  # those no WebSocket was open to receive
        self.websocket_connections = 0
        self.websocket_refusals = 0
        self._subscribers: set[_Subscriber] = set()
        self._failures: list[_Failure] = []
        self._triggers: list[_Trigger] = []
        self._delays: list[_Delay] = []
        self._refuse_websockets = False
        self._ignore_socket_requests = False
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._names = itertools.count(1)
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        """The ARI base URL, as ``ari_url`` in the engine's settings."""
        return f"http://127.0.0.1:{self.port}/ari"

    # -- serving ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/ari/events", self._events)
        r.add_get("/ari/asterisk/ping", self._ping)
        r.add_post("/ari/channels", self._originate)
        r.add_get("/ari/channels", self._list_channels)
        r.add_get("/ari/channels/{channel_id}", self._get_channel)
        r.add_delete("/ari/channels/{channel_id}", self._hangup)
        r.add_post("/ari/channels/{channel_id}/answer", self._answer)
        r.add_post("/ari/channels/{channel_id}/play/{playback_id}", self._play)
        r.add_post("/ari/channels/{channel_id}/moh", self._start_moh)
        r.add_delete("/ari/channels/{channel_id}/moh", self._stop_moh)
        r.add_post("/ari/channels/{channel_id}/variable", self._set_variable)
        r.add_post("/ari/channels/{channel_id}/continue", self._continue)
        r.add_get("/ari/playbacks/{playback_id}", self._get_playback)
        r.add_delete("/ari/playbacks/{playback_id}", self._stop_playback)
        r.add_get("/ari/bridges", self._list_bridges)
        r.add_get("/ari/bridges/{bridge_id}", self._get_bridge)
        r.add_post("/ari/bridges/{bridge_id}", self._create_bridge)
        r.add_post("/ari/bridges/{bridge_id}/addChannel", self._add_channel)
        r.add_delete("/ari/bridges/{bridge_id}", self._destroy_bridge)
        r.add_post("/ari/bridges/{bridge_id}/play", self._play_to_bridge)
        r.add_post("/ari/applications/{app}/subscription", self._subscribe)
        r.add_put("/ari/applications/{app}/eventFilter", self._event_filter)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        self._app = app

    async def close(self) -> None:
        await self.drop_websockets()
        for channel in list(self.channels.values()):
            channel.vanish()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- scripting the phones ----------------------------------------------------------------
    def phone(self, number: str, script: Phone) -> None:
        """How the phone at ``number`` behaves from its next call on."""
        self.phones[number] = script

    def answer(self, channel_id: str) -> None:
        """The phone ringing on ``channel_id`` answers now."""
        self.channels[channel_id].answer()

    def press(self, channel_id: str, digits: str) -> None:
        """The phone on ``channel_id`` presses keys now."""
        self.channels[channel_id].press(digits)

    def hang_up(self, channel_id: str, cause: int = NORMAL_CLEARING) -> None:
        """The phone on ``channel_id`` hangs up now."""
        self.channels[channel_id].hang_up(cause)

    def add_channel(self, channel_id: str, number: str, *, app: str) -> FakeChannel:
        """A call already up in ``app`` (left by an engine that stopped); no event."""
        channel = FakeChannel(
            self,
            channel_id,
            endpoint=f"PJSIP/{number}@ivr-trunk",
            phone=self.phones.get(number, Phone()),
            app=app,
            args=["outbound"],
        )
        channel.state, channel.in_stasis = "Up", True
        channel.answered_at = channel.created_at
        self.channels[channel_id] = channel
        self.history.append(channel)
        return channel

    def add_bridge(self, bridge_id: str, *channel_ids: str) -> FakeBridge:
        """A mixing bridge already holding ``channel_ids``; no event."""
        bridge = FakeBridge(bridge_id, "mixing")
        for channel_id in channel_ids:
            channel = self.channels[channel_id]
            channel.bridge = bridge
            bridge.channels.append(channel)
            bridge.apps.add(channel.app)
        self.bridges[bridge_id] = bridge
        return bridge

    # -- controls: breaking things -------------------------------------------------------------
    async def drop_websockets(self) -> None:
        """Close every event WebSocket now (the engine's client should reconnect)."""
        subscribers = list(self._subscribers)
        self._subscribers.clear()
        for sub in subscribers:
            await sub.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake ARI went away")
        self.bump()

    def refuse_websockets(self, refuse: bool = True) -> None:
        """While true, new event WebSockets are refused (503): events of the gap are lost."""
        self._refuse_websockets = refuse

    def ignore_socket_requests(self, ignore: bool = True) -> None:
        """Behave as an Asterisk older than 22.4: REST requests on the socket go unanswered."""
        self._ignore_socket_requests = ignore

    def fail(self, method: str, path: str, *, status: int = 500, times: int | None = 1) -> None:
        """The next ``times`` REST calls to ``path`` (a glob: ``/channels/*/play/*``) answer
        ``status`` instead of being carried out."""
        self._failures.append(_Failure(method, path, status, times))

    def clear_failures(self) -> None:
        self._failures.clear()

    def when(self, method: str, path: str, action: Callable[[], object]) -> None:
        """Run ``action`` just before carrying out the next REST call to ``path`` (a glob)."""
        self._triggers.append(_Trigger(method, path, action))

    def slow(self, method: str, path: str, seconds: float) -> None:
        """The answer to the next REST call to ``path`` (a glob) is made at once, as usual, but
        reaches the engine ``seconds`` later (a busy Asterisk, a slow network)."""
        self._delays.append(_Delay(method, path, seconds))

    async def go_away(self, *, lose_calls: bool = False) -> None:
        """Stop listening: connections are refused. ``lose_calls``: Asterisk died, and its
        channels, bridges and playbacks with it (no event tells anyone)."""
        self._refuse_websockets = True
        await self.drop_websockets()
        if lose_calls:
            for channel in list(self.channels.values()):
                channel.vanish()
            self.bridges.clear()
            self.playbacks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.bump()

    async def come_back(self) -> None:
        """Listen again, on the same port."""
        self._refuse_websockets = False
        await self.start()
        self.bump()

    # -- looking at what happened -----------------------------------------------------------
    def dialled(self, number: str) -> list[FakeChannel]:
        """Every channel the engine originated to ``number``, oldest first."""
        return [c for c in self.history if c.number == number]

    def channel(self, channel_id: str) -> FakeChannel:
        return next(c for c in reversed(self.history) if c.id == channel_id)

    def requests(self, method: str | None = None, path: str = "*") -> list[RestCall]:
        """The REST calls received, optionally only those of one method to ``path`` (a glob:
        ``/channels`` is the originate and the list, ``/channels/*`` anything below)."""
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and fnmatch.fnmatchcase(c.path, path)
        ]

    async def wait_until(
        self, predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = ""
    ) -> None:
        """Wait until ``predicate()`` holds; it is checked again at every change here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"fake ARI: still waiting after {timeout}s for {what}")
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def bump(self) -> None:
        """Something changed: wake whoever waits in wait_until."""
        self._changed.set()
        self._changed = asyncio.Event()

    def next_name(self) -> str:
        return f"ivr-trunk-{next(self._names):08x}"

    # -- events ------------------------------------------------------------------------------
    def emit(self, app: str, event_type: str, **fields: Any) -> None:
        event = {
            "type": event_type,
            "application": app,
            "timestamp": ari_time(),
            "asterisk_id": "fa:ke:00:00:00:01",
            **fields,
        }
        text = json.dumps(event)
        receivers = [sub for sub in self._subscribers if sub.app == app]
        for sub in receivers:
            if self._wants(app, event_type):
                sub.queue.put_nowait(text)
        # Applications that subscribed to this channel or bridge get it too (as themselves).
        for other in sorted(self._subscribed_apps(fields) - {app}):
            copy = json.dumps({**event, "application": other})
            for sub in self._subscribers:
                if sub.app == other:
                    if self._wants(other, event_type):
                        sub.queue.put_nowait(copy)
                    receivers.append(sub)
        self.events.append(event)
        if not receivers:
            self.lost_events.append(event)
        self.bump()

    def _wants(self, app: str, event_type: str) -> bool:
        allowed = self.event_filters.get(app)
        return allowed is None or event_type in allowed

    def _subscribed_apps(self, fields: dict[str, Any]) -> set[str]:
        sources = set()
        if isinstance(fields.get("channel"), dict):
            sources.add(f"channel:{fields['channel']['id']}")
        if isinstance(fields.get("bridge"), dict):
            sources.add(f"bridge:{fields['bridge']['id']}")
        if isinstance(fields.get("playback"), dict):
            sources.add(str(fields["playback"].get("target_uri", "")))
        return {
            app for app, subscribed in self.subscriptions for src in subscribed if src in sources
        }

    def finish_playback(self, playback: FakePlayback, state: str) -> None:
        if playback.timer is not None:
            playback.timer.cancel()
        self.playbacks.pop(playback.id, None)
        playback.channel.playbacks.pop(playback.id, None)
        playback.state = state
        self.emit(playback.channel.app, "PlaybackFinished", playback=playback.snapshot())

    def join_bridge(self, bridge: FakeBridge, channel: FakeChannel) -> None:
        if not channel.alive or channel.bridge is bridge or bridge.id not in self.bridges:
            return
        if channel.bridge is not None:
            self.leave_bridge(channel)
        channel.bridge = bridge
        bridge.channels.append(channel)
        bridge.apps.add(channel.app)
        self.emit(
            channel.app,
            "ChannelEnteredBridge",
            bridge=bridge.snapshot(),
            channel=channel.snapshot(),
        )
        channel.entered_bridge()

    def leave_bridge(self, channel: FakeChannel) -> None:
        bridge, channel.bridge = channel.bridge, None
        if bridge is None:
            return
        bridge.channels.remove(channel)
        self.emit(
            channel.app, "ChannelLeftBridge", bridge=bridge.snapshot(), channel=channel.snapshot()
        )

    # -- HTTP plumbing -------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path.removeprefix("/ari")
        call = RestCall(request.method, path, dict(request.query), datetime.now(UTC))
        call.via = request.headers.get(_VIA_HEADER, "http")
        if path != "/events":  # the WebSocket is counted in websocket_connections
            self.calls.append(call)
            self.bump()
        if not self._authorised(request):
            response: web.StreamResponse = _error(401, "Authentication required")
            response.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
        elif path == "/events":
            return await handler(request)
        elif (failure := self._take_failure(request.method, path)) is not None:
            response = _error(failure.status, "Internal Server Error (injected by the test)")
        else:
            for trigger in [t for t in self._triggers if self._matches(t, request.method, path)]:
                self._triggers.remove(trigger)
                trigger.action()
            response = await handler(request)
        call.status = response.status
        self.bump()
        for delay in [d for d in self._delays if self._matches(d, request.method, path)]:
            self._delays.remove(delay)
            await asyncio.sleep(delay.seconds)
        return response

    def _authorised(self, request: web.Request) -> bool:
        expected = f"{self.user}:{self.password}"
        if request.query.get("api_key") == expected:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            return base64.b64decode(token).decode() == expected
        except ValueError:
            return False

    @staticmethod
    def _matches(rule: _Failure | _Trigger | _Delay, method: str, path: str) -> bool:
        return rule.method == method and fnmatch.fnmatchcase(path, rule.path)

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if self._matches(failure, method, path):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    async def _events(self, request: web.Request) -> web.StreamResponse:
        app = request.query.get("app", "")
        if not app:
            return _error(400, "Missing params ['app']")
        if self._refuse_websockets:
            self.websocket_refusals += 1
            self.bump()
            return _error(503, "Service Unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sub = _Subscriber(app, ws)
        self._subscribers.add(sub)
        self.websocket_connections += 1
        self.bump()
        pump = asyncio.create_task(self._pump(sub), name="fake-ari-pump")
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT and not self._ignore_socket_requests:
                    # One at a time, in order, as Asterisk's session thread runs them.
                    await self._socket_request(sub, request, msg.data)
        finally:
            self._subscribers.discard(sub)
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            self.bump()
        return ws

    async def _socket_request(self, sub: _Subscriber, upgrade: web.Request, text: str) -> None:
        """Run one RESTRequest through the same routes and middleware as HTTP (in this task,
        as Asterisk's session thread does); answer on the socket."""
        try:
            message = json.loads(text)
        except ValueError:
            return  # Asterisk logs and drops what is not JSON
        reply: dict[str, Any] = {
            "type": "RESTResponse",
            "transaction_id": message.get("transaction_id", ""),
            "request_id": message.get("request_id", ""),
            "uri": message.get("uri", ""),
        }
        if message.get("type") != "RESTRequest":
            error = json.dumps({"message": "Unknown request type."})
            reply |= {"status_code": 400, "reason_phrase": "Bad request"}
            reply |= {"content_type": "application/json", "message_body": error}
            await sub.ws.send_str(json.dumps(reply))
            return
        headers = {_VIA_HEADER: "websocket"}
        if "Authorization" in upgrade.headers:
            headers["Authorization"] = upgrade.headers["Authorization"]
        params = [(q["name"], q["value"]) for q in message.get("query_strings", [])]
        if "api_key" in upgrade.query:
            params.append(("api_key", upgrade.query["api_key"]))
        url = URL.build(path=f"/ari/{message.get('uri', '')}").with_query(params)
        method = str(message.get("method", "GET"))
        assert self._app is not None
        found = await self._app.router.resolve(make_mocked_request(method, str(url)))
        request = make_mocked_request(
            method, str(url), headers=headers, match_info=dict(found), app=self._app
        )
        request[_BODY_KEY] = message.get("message_body") or ""
        try:
            response = await self._middleware(request, found.handler)
            status, reason = response.status, response.reason
            body = response.text if isinstance(response, web.Response) else None
        except web.HTTPException as exc:  # no such route (404), method not allowed (405)
            status, reason = exc.status, exc.reason
            body = json.dumps({"message": "Resource not found"})
        reply |= {"status_code": status, "reason_phrase": reason}
        if body:
            reply |= {"content_type": "application/json", "message_body": body}
        if not self._wants(sub.app, "RESTResponse"):
            return  # Asterisk passes replies through the application's event filter too
        try:
            await sub.ws.send_str(json.dumps(reply))
        except (ConnectionError, RuntimeError):
            pass  # the socket went meanwhile: the reply is lost, as with Asterisk

    @staticmethod
    async def _pump(sub: _Subscriber) -> None:
        while True:
            text = await sub.queue.get()
            try:
                await sub.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"asterisk_id": "fa:ke:00:00:00:01", "ping": "pong", "timestamp": ari_time()}
        )

    # -- channels ----------------------------------------------------------------------------
    async def _originate(self, request: web.Request) -> web.Response:
        q = request.query
        endpoint = q.get("endpoint", "")
        if not endpoint:
            return _error(400, "Endpoint must be specified")
        tech, _, resource = endpoint.partition("/")
        if not tech or not resource:
            return _error(400, "Invalid endpoint specified")
        app = q.get("app", "")
        if not app:
            return _error(400, "Application or extension must be specified")
        channel_id = q.get("channelId") or f"fake-{self.next_name()}"
        if channel_id in self.channels:
            return _error(409, "Channel with given unique ID already exists")
        phone = self.phones.get(number_of(endpoint), UNKNOWN_NUMBER)
        if phone.refuse_status is not None:
            return _error(phone.refuse_status, "Allocation failed")
        timeout = int(q.get("timeout", "30"))
        app_args = q.get("appArgs", "")
        channel = FakeChannel(
            self,
            channel_id,
            endpoint=endpoint,
            phone=phone,
            app=app,
            args=app_args.split(",") if app_args else [],
            caller_id=q.get("callerId", ""),
        )
        self.channels[channel_id] = channel
        self.history.append(channel)
        channel.dial(timeout if timeout > 0 else None)
        return web.json_response(channel.snapshot())

    async def _list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.snapshot() for c in self.channels.values()])

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return _error(404, "Channel not found")
        return web.json_response(channel.snapshot())

    async def _hangup(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return _error(404, "Channel not found")
        reason, code = request.query.get("reason", ""), request.query.get("reason_code", "")
        if reason and code:
            return _error(400, "The reason and reason_code can't both be specified")
        if code:
            if not code.isdigit():
                return _error(400, "Invalid reason for hangup reason code provided")
            cause = int(code)
        elif reason:
            if reason not in HANGUP_REASONS:
                return _error(400, "Invalid reason for hangup reason provided")
            cause = HANGUP_REASONS[reason]
        else:
            cause = NORMAL_CLEARING
        self.emit(
            channel.app, "ChannelHangupRequest", channel=channel.snapshot(), cause=cause, soft=True
        )
        channel.end(cause, by="engine")
        return _no_content()

    def _control(self, channel_id: str) -> tuple[FakeChannel | None, web.Response | None]:
        """A channel the application controls (find_control + channel_state_invalid)."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return None, _error(404, "Channel not found")
        if not channel.in_stasis:
            return None, _error(409, "Channel not in Stasis application")
        if channel.state in NOT_ANSWERED_STATES:
            return None, _error(412, "Channel in invalid state")
        return channel, None

    async def _answer(self, request: web.Request) -> web.Response:
        _, error = self._control(request.match_info["channel_id"])
        return error or _no_content()

    async def _play(self, request: web.Request) -> web.Response:
        channel, error = self._control(request.match_info["channel_id"])
        if channel is None:
            return error or _error(500, "no channel")
        media = [m for m in request.query.get("media", "").split(",") if m]
        if not media:
            return _error(400, "Missing params ['media']")
        playback_id = request.match_info["playback_id"]
        if playback_id in self.playbacks:
            return _error(500, "Failed to queue media for playback")
        language = request.query.get("lang", "en")
        playback = FakePlayback(playback_id, channel, media, language)
        self.playbacks[playback_id] = playback
        channel.playbacks[playback_id] = playback
        channel.played.append(media)
        loop = asyncio.get_running_loop()
        loop.call_soon(self._playback_started, playback)
        playback.timer = loop.call_later(
            self.playback_seconds, self.finish_playback, playback, "done"
        )
        response = web.json_response(playback.snapshot(), status=201)
        response.headers["Location"] = f"/playbacks/{playback_id}"
        return response

    def _playback_started(self, playback: FakePlayback) -> None:
        if playback.id in self.playbacks:
            playback.state = "playing"
            self.emit(playback.channel.app, "PlaybackStarted", playback=playback.snapshot())
            playback.channel.playback_started()

    async def _start_moh(self, request: web.Request) -> web.Response:
        channel, error = self._control(request.match_info["channel_id"])
        if channel is None:
            return error or _error(500, "no channel")
        channel.moh_class = request.query.get("mohClass", "default")
        channel.moh_started += 1
        return _no_content()

    async def _stop_moh(self, request: web.Request) -> web.Response:
        channel, error = self._control(request.match_info["channel_id"])
        if channel is None:
            return error or _error(500, "no channel")
        channel.moh_class = None
        return _no_content()

    async def _set_variable(self, request: web.Request) -> web.Response:
        name = request.query.get("variable", "")
        if not name:
            return _error(400, "Variable name is required")
        channel = self.channels.get(request.match_info["channel_id"])
        if channel is None:
            return _error(404, "Channel not found")
        if not channel.in_stasis:
            return _error(409, "Channel not in Stasis application")
        channel.variables[name] = request.query.get("value", "")
        return _no_content()

    async def _continue(self, request: web.Request) -> web.Response:
        channel, error = self._control(request.match_info["channel_id"])
        if channel is None:
            return error or _error(500, "no channel")
        loop = asyncio.get_running_loop()  # on the channel's thread, just after the answer
        loop.call_soon(channel.continue_in_dialplan, request.query.get("context", ""))
        return _no_content()

    # -- playbacks ---------------------------------------------------------------------------
    async def _get_playback(self, request: web.Request) -> web.Response:
        playback = self.playbacks.get(request.match_info["playback_id"])
        if playback is None:
            return _error(404, "Playback not found")
        return web.json_response(playback.snapshot())

    async def _stop_playback(self, request: web.Request) -> web.Response:
        playback = self.playbacks.get(request.match_info["playback_id"])
        if playback is None:
            return _error(404, "Playback not found")
        self.finish_playback(playback, "done")
        return _no_content()

    # -- bridges -----------------------------------------------------------------------------
    async def _list_bridges(self, request: web.Request) -> web.Response:
        return web.json_response([b.snapshot() for b in self.bridges.values()])

    async def _get_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bridge_id"])
        if bridge is None:
            return _error(404, "Bridge not found")
        return web.json_response(bridge.snapshot())

    async def _create_bridge(self, request: web.Request) -> web.Response:
        bridge_id = request.match_info["bridge_id"]
        bridge_type = request.query.get("type", "")
        bridge = self.bridges.get(bridge_id)
        if bridge is not None:  # "create or update" (ast_ari_bridges_create_with_id)
            if bridge_type:
                return _error(500, "Supplying a bridge type when updating a bridge is not allowed.")
            return web.json_response(bridge.snapshot())
        bridge = FakeBridge(bridge_id, bridge_type or "mixing")
        self.bridges[bridge_id] = self.history_bridges[bridge_id] = bridge
        return web.json_response(bridge.snapshot())

    async def _play_to_bridge(self, request: web.Request) -> web.Response:
        """Media to everyone in the bridge: recorded in ``bridge.played`` (no events)."""
        bridge = self.bridges.get(request.match_info["bridge_id"])
        if bridge is None:
            return _error(404, "Bridge not found")
        media = [m for m in request.query.get("media", "").split(",") if m]
        if not media:
            return _error(400, "Missing params ['media']")
        bridge.played.append(media)
        playback_id = request.query.get("playbackId", f"{bridge.id}-play")
        return web.json_response(
            {"id": playback_id, "media_uri": media[0], "target_uri": f"bridge:{bridge.id}"},
            status=201,
        )

    async def _event_filter(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(request[_BODY_KEY]) if _BODY_KEY in request else await request.json()
            allowed = {str(item["type"]) for item in body.get("allowed", [])}
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "Invalid event filter")
        app = request.match_info["app"]
        self.event_filters[app] = allowed
        return web.json_response({"name": app, "events_allowed": sorted(allowed)})

    async def _subscribe(self, request: web.Request) -> web.Response:
        """``eventSource=channel:ID,bridge:ID``: 422 when one of them does not exist (the
        fake sends every channel's events to every socket of its app anyway)."""
        sources = [s for s in request.query.get("eventSource", "").split(",") if s]
        if not sources:
            return _error(400, "Missing parameter eventSource")
        self.subscriptions.append((request.match_info["app"], sources))
        for source in sources:
            kind, _, name = source.partition(":")
            known = self.channels if kind == "channel" else self.bridges
            if kind not in ("channel", "bridge") or name not in known:
                return _error(422, "Event source does not exist")
        return web.json_response({"name": request.match_info["app"], "channel_ids": []})

    async def _add_channel(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bridge_id"])
        if bridge is None:
            return _error(404, "Bridge not found")
        ids = [c for c in request.query.get("channel", "").split(",") if c]
        if not ids:
            return _error(400, "Missing parameter channel")
        channels = []
        for channel_id in ids:
            channel = self.channels.get(channel_id)
            if channel is None:
                return _error(400, "Channel not found")
            if not channel.in_stasis:
                return _error(422, "Channel not in Stasis application")
            channels.append(channel)
        loop = asyncio.get_running_loop()
        for channel in channels:  # Asterisk does it on the channel's own thread, just after
            loop.call_soon(self.join_bridge, bridge, channel)
        return _no_content()

    async def _destroy_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.pop(request.match_info["bridge_id"], None)
        if bridge is None:
            return _error(404, "Bridge not found")
        for channel in list(bridge.channels):
            self.leave_bridge(channel)
        for app in bridge.apps:
            self.emit(app, "BridgeDestroyed", bridge=bridge.snapshot())
        return _no_content()
