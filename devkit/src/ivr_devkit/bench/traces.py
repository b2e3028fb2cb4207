"""Latencies where the phones see them: the SIPp traces of the expert and client phones, and
the bridge entries an ARI observer saw (with each channel's SIP Call-ID).

- key → client INVITE: the expert's key is pressed ``key_ms`` after its phone received the
  ACK (the scenario's pause) and counted when its last RFC 4733 packet leaves, 140 ms later;
  the client phone of the same pair receives the INVITE.
- client answer → bridge: the client phone sends 200 OK; the bridge holds both phones (the
  observer's ChannelEnteredBridge of the second one, Asterisk's own timestamp).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ivr_devkit.simphones import SipMessage

PRESS_MS = 140  # simphones.dtmf_pcap: the last packet of a press leaves 140 ms after the first
_NUMBER = re.compile(r"^INVITE sip:([^@;>]+)@")


@dataclass
class SipCall:
    number: str
    invite_at: datetime
    answered_at: datetime | None = None  # 200 OK sent
    ack_at: datetime | None = None


def calls(messages: Iterable[SipMessage]) -> dict[str, SipCall]:
    """A UAS phone's calls by Call-ID: who was called, when it rang, answered, got the ACK."""
    found: dict[str, SipCall] = {}
    for m in messages:
        if m.at is None:
            continue
        call = found.get(m.call_id)
        if m.direction == "received" and m.kind == "INVITE":
            hit = _NUMBER.match(m.first_line)
            if call is None and hit is not None:
                found[m.call_id] = SipCall(hit.group(1), m.at)
        elif call is None:
            continue
        elif m.direction == "sent" and m.kind == "200" and "INVITE" in m.cseq:
            call.answered_at = call.answered_at or m.at
        elif m.direction == "received" and m.kind == "ACK":
            call.ack_at = call.ack_at or m.at
    return found


@dataclass
class Bridged:
    """When a bridge first held two channels, and those channels' SIP Call-IDs."""

    at: datetime
    call_ids: set[str] = field(default_factory=set)


def bridged(entries: Iterable[tuple[str, str, datetime]]) -> list[Bridged]:
    """(bridge id, SIP Call-ID, entered at) → each bridge's moment of two channels."""
    by_bridge: dict[str, list[tuple[datetime, str]]] = {}
    for bridge_id, call_id, at in entries:
        by_bridge.setdefault(bridge_id, []).append((at, call_id))
    result = []
    for items in by_bridge.values():
        items.sort()
        if len(items) >= 2:
            result.append(Bridged(items[1][0], {c for _, c in items}))
    return result


@dataclass(frozen=True)
class Latencies:
    key_to_invite: list[float]  # seconds
    answer_to_bridge: list[float]


def latencies(
    experts: Mapping[str, SipCall],
    clients: Mapping[str, SipCall],
    bridges: Sequence[Bridged],
    partner: Mapping[str, str],  # client number -> expert number
    key_ms: int,
    since: datetime,
    until: datetime,
) -> Latencies:
    keys: dict[str, list[datetime]] = {}
    for call in experts.values():
        if call.ack_at is not None:
            keys.setdefault(call.number, []).append(
                call.ack_at + timedelta(milliseconds=key_ms + PRESS_MS)
            )
    for times in keys.values():
        times.sort()
    key_to_invite = []
    for call in clients.values():
        if not since <= call.invite_at <= until:
            continue
        times = keys.get(partner.get(call.number, ""), [])
        # The latest key before the INVITE (with room for SIPp's own timing).
        i = bisect.bisect_right(times, call.invite_at + timedelta(milliseconds=200))
        if i:
            key_to_invite.append((call.invite_at - times[i - 1]).total_seconds())
    answer_to_bridge = []
    for bridge in bridges:
        for call_id in bridge.call_ids:
            client = clients.get(call_id)
            if client is not None and client.answered_at is not None:
                if since <= client.answered_at <= until:
                    answer_to_bridge.append((bridge.at - client.answered_at).total_seconds())
    return Latencies(key_to_invite, answer_to_bridge)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
