"""Who the client is, behind a reverse proxy.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the TCP peer is one of
``IVR_TRUSTED_PROXIES``: then the client is the right-most address of the chain that is not
a trusted proxy (each proxy appends the address it saw; anything to the left of an
untrusted hop may be forged by the client). From any other peer the headers are ignored
and the peer is the client, so a client talking to the engine directly cannot pretend to
be someone else, and behind an untrusted proxy everyone counts as the proxy (the sign-in
throttling then locks the proxy's address: configure the setting).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from ivr_engine.web.deps import DEPS
from ivr_engine.web.http import Handler

Network = IPv4Network | IPv6Network


def _parse(raw: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(raw.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address | None, proxies: Sequence[Network]) -> bool:
    return address is not None and any(address in net for net in proxies)


def real_client(peer: str | None, forwarded_for: str, proxies: Sequence[Network]) -> str | None:
    """The client's address given the TCP peer and its ``X-Forwarded-For`` (joined)."""
    if not proxies or not _trusted(_parse(peer or ""), proxies):
        return peer
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:  # garbage in the chain: trust nothing left of it
            return client
        client = str(address)
        if not _trusted(address, proxies):
            return client
    return client


@web.middleware
async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request as the client made it: its address and scheme, when a trusted proxy
    says so. The Host header is left alone (the CSRF check reads IVR_PUBLIC_URL)."""
    proxies = request.app[DEPS].settings.trusted_proxies
    peer = request.remote
    if not proxies or not _trusted(_parse(peer or ""), proxies):
        return await handler(request)
    chain = ",".join(request.headers.getall("X-Forwarded-For", []))
    client = real_client(peer, chain, proxies) or peer or ""
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    scheme = proto if proto in ("http", "https") else request.scheme
    if client == peer and scheme == request.scheme:
        return await handler(request)
    return await handler(request.clone(remote=client, scheme=scheme))
