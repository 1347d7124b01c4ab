"""Where a request comes from, and whether it may deliver webhooks.

The source is the socket's remote address, unless that address is one of
`BOT_TRUSTED_PROXIES`: then it is the nearest address in `X-Forwarded-For`
that is not a trusted proxy itself (read from the right, since a client can
write anything on the left). Everything that needs a request's source (the
webhook allow-list, the access log, counts per source) asks `source_of`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from bot.config import Networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: Networks) -> bool:
    return any(address in network for network in networks)


def source_of(
    remote: str | None, headers: Mapping[str, str], trusted_proxies: Networks
) -> Address | None:
    """The request's source address; None when the socket's is not an IP address."""
    peer = _address(remote or "")
    if peer is None or not _within(peer, trusted_proxies):
        return peer
    forwarded = [p for p in headers.get("X-Forwarded-For", "").split(",") if p.strip()]
    for hop in reversed(forwarded):
        address = _address(hop)
        if address is None:
            return peer  # a hop we cannot read: believe nothing further left
        if not _within(address, trusted_proxies):
            return address
        peer = address
    return peer


def allowed(source: Address | None, allow_from: Networks) -> bool:
    """May this source POST /webhook? An empty list lets everyone in."""
    if not allow_from:
        return True
    return source is not None and _within(source, allow_from)
