"""The client behind a reverse proxy: believed only from a trusted peer."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from ivr_engine.web.access import mask
from ivr_engine.web.proxy import real_client

PROXIES = (ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "chain", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # nginx in front: the client it saw
        ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left part is forged
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two proxies of ours
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # only proxies: the left-most
        ("127.0.0.1", "", "127.0.0.1"),  # a trusted peer that says nothing
        ("127.0.0.1", "garbage, 203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, garbage", "127.0.0.1"),  # nothing left of garbage counts
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # an untrusted peer cannot pretend
    ],
)
def test_the_real_client(peer: str, chain: str, client: str) -> None:
    assert real_client(peer, chain, PROXIES) == client


def test_no_trusted_proxy_means_the_peer() -> None:
    assert real_client("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


def test_long_numbers_are_masked_in_logged_paths() -> None:
    assert mask("/api/v1/experts/+393331234567/requests") == "/api/v1/experts/…567/requests"
    assert mask("/api/v1/requests/123456") == "/api/v1/requests/123456"  # ids stay
