"""Who is calling: the client's address, and whether an address is in a configured list.

One rule for the whole service (the admin API's rate limits and ``/metrics``):
``X-Forwarded-For`` counts only when the peer itself is a trusted proxy
(``FORWARDED_ALLOW_IPS``), and then its last untrusted hop is the client.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope


def is_listed(address: str, entries: tuple[str, ...]) -> bool:
    """``address`` equals an entry or lies in one of the networks listed; ``*`` lists all."""
    if "*" in entries or address in entries:
        return True
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    for item in entries:
        try:
            if parsed in ipaddress.ip_network(item, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_address(scope: Scope, trusted: tuple[str, ...]) -> str:
    """The peer, or the last untrusted hop of ``X-Forwarded-For`` when the peer is a proxy."""
    peer = scope["client"][0] if scope.get("client") else "unknown"
    if not is_listed(peer, trusted):
        return str(peer)
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for hop in ",".join(forwarded).split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_listed(hop, trusted):
            return hop
    return hops[0] if hops else str(peer)
