"""Whom a request's address limit counts."""

from __future__ import annotations

import ipaddress

import pytest

from api.rate_limit import client_address

pytestmark = pytest.mark.unit

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "counted"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        # From anyone but a trusted proxy, X-Forwarded-For is a claim anybody can make.
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        # The nearest untrusted hop counts: what the client put first is not believed.
        ("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1"),
        ("10.1.2.3", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "garbage", "10.1.2.3"),
        # An IPv6 client counts by its /64.
        ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", None, "2001:db8:1:2::/64"),
        ("fd00::1", "2001:db8:7:7::5", "2001:db8:7:7::/64"),
        ("::ffff:203.0.113.5", None, "203.0.113.5"),
        ("testclient", None, "testclient"),
        (None, None, "unknown"),
    ],
)
def test_the_counted_address(peer: str | None, forwarded: str | None, counted: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == counted
