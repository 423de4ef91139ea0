"""What the guarded fetcher refuses before it connects: URLs and addresses.

A URL must be ``http``/``https`` with a host, no user-info, and a port the caller allows.
Its host is resolved once; the fetch is refused when *any* address it resolves to is not a
public unicast address (``classify``), and otherwise connects only to those addresses
(origin.fetch.client pins them), so a second DNS answer can never be used.

Refused classes (IPv4 and IPv6): unspecified (``0.0.0.0/8``, ``::``), loopback, private
(RFC 1918, ULA ``fc00::/7``), link-local (``169.254/16`` — the cloud metadata address —
and ``fe80::/10``), shared (CGNAT ``100.64/10``), multicast, and the IANA special-purpose
and reserved ranges (documentation, benchmarking, ``240/4``, broadcast…). An IPv6 address
that carries an IPv4 one — IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d`` —
is refused whatever it carries (ask for the IPv4 address); NAT64 (``64:ff9b::/96``,
``64:ff9b:1::/48``), 6to4 (``2002::/16``) and Teredo addresses are judged by the IPv4
address inside them.

Two exceptions, both explicit: hosts the operator names in ``FETCH_PRIVATE_HOSTS`` may
resolve to loopback, private and shared addresses (never unspecified, link-local, multicast
or reserved); and a test-only switch (``FETCH_ALLOW_LOOPBACK_FOR_TESTS``, refused in
production) lets loopback through so that tests can reach servers on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from yarl import URL

from origin.errors import SourceRefused
from origin.errors import shown as show

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: IPv4 in the last 32 bits
# Refused whatever Python's tables say (they vary by version): the whole IETF protocol block,
# old site-local, the new documentation prefix, local-use NAT64 (its IPv4 address may sit
# anywhere in the address, RFC 6052).
ALWAYS_RESERVED = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.0.0/24", "fec0::/10", "3fff::/20", "64:ff9b:1::/48", "2001:db8::/32")
)
# what FETCH_PRIVATE_HOSTS may reach; the other classes stay refused for every host
NAMED_PRIVATE_CLASSES = frozenset({"loopback", "private", "shared"})


@dataclass(frozen=True)
class Policy:
    """What one caller lets the fetcher reach: ports, hosts (empty: any public host; an
    entry ``*.example.com`` covers its subdomains), the names that may resolve to private
    addresses, and the test switch."""

    ports: frozenset[int] = frozenset({80, 443})
    hosts: tuple[str, ...] = ()
    private_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_loopback: bool = False  # tests only: origin.settings refuses it in production

    @classmethod
    def configured(
        cls,
        *,
        ports: Iterable[int],
        hosts: Iterable[str] = (),
        private_hosts: Iterable[str] = (),
        allow_loopback: bool = False,
    ) -> Policy:
        """A policy from configured names, each spelled as ``raw_host`` spells it (lower
        case, IDNA) once, here: the fetch compares them as they are."""
        return cls(
            ports=frozenset(ports),
            hosts=tuple(wire_name(h) for h in hosts),
            private_hosts=frozenset(wire_name(h) for h in private_hosts),
            allow_loopback=allow_loopback,
        )

    def host_allowed(self, host: str) -> bool:
        if not self.hosts:
            return True
        return any(
            host == entry or (entry.startswith("*.") and host.endswith(entry[1:]))
            for entry in self.hosts
        )


def classify(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (a class name), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried(address)
        if isinstance(carried, str):
            return carried
        if carried is not None:
            return classify(carried)
    if address.is_unspecified:
        return "unspecified"
    if any(address in net for net in ALWAYS_RESERVED):
        return "reserved"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "shared"
    if address.is_private and _is_plain_private(address):
        return "private"
    if address.is_reserved or address.is_private or not address.is_global:
        return "reserved"
    return None


# The ranges a private network uses (RFC 1918, ULA); the other private ones are special-purpose.
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
ULA = ipaddress.ip_network("fc00::/7")


def _is_plain_private(address: Address) -> bool:
    """RFC 1918 or ULA."""
    if isinstance(address, ipaddress.IPv4Address):
        return any(address in network for network in RFC1918)
    return address in ULA


MAPPED = "IPv4-mapped or IPv4-compatible"


def _carried(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | str | None:
    """The IPv4 address an IPv6 one carries (NAT64, 6to4, Teredo); for the mapped and
    compatible forms, refused whatever they carry, their class name; None when it carries
    none."""
    if address.ipv4_mapped is not None:
        return MAPPED
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # ::a.b.c.d, not :: or ::1
        return MAPPED
    if address in NAT64:
        return ipaddress.IPv4Address(packed[12:])
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def check_address(host: str, address: Address, policy: Policy) -> None:
    """Refuse ``address`` (one of ``host``'s) unless it is public, or allowed for the host."""
    found = classify(address)
    if found is None:
        return
    if found == "loopback" and policy.allow_loopback:
        return
    if found in NAMED_PRIVATE_CLASSES and host in policy.private_hosts:
        return
    raise SourceRefused(
        f"the host {show(host, 80)} resolves to a {found} address, which is never fetched "
        "(docs/fetching.md)"
    )


def check_url(url: URL, policy: Policy) -> str:
    """Scheme, user-info, host and port of one URL (the first or a redirect's); the host as
    it goes on the wire (``raw_host``: lower case, IDNA-encoded), which every later check,
    the lookup and the pin use."""
    if url.scheme not in ("http", "https"):
        raise SourceRefused(f"only http and https URLs are fetched, not {show(url.scheme)!r}")
    host = url.raw_host
    if not host:
        raise SourceRefused("the URL has no host")
    if not (HOST_NAME.fullmatch(host) or plain_address(host)):
        raise SourceRefused(f"{show(host, 80)!r} is neither a host name nor an IP address")
    if url.user is not None or url.password is not None:
        raise SourceRefused("URLs with a user name or password are not fetched")
    if url.port not in policy.ports:
        allowed = ", ".join(str(p) for p in sorted(policy.ports))
        raise SourceRefused(f"port {url.port} is not fetched (allowed: {allowed})")
    if not policy.host_allowed(host):
        raise SourceRefused(f"the host {show(host, 80)} is not in the allowed hosts")
    return host


# A DNS name as it goes on the wire: labels of letters, digits and hyphens (IDNA already
# applied), an optional final dot. Anything else — an IPvFuture literal ``[v1.x:y]``, a zone
# id ``%25eth0``, a ``:`` that is not part of an IPv6 address — is refused: aiohttp would
# take a host with a ``:`` for an address and connect without asking the pinned resolver.
HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?",
    re.ASCII,
)


def plain_address(host: str) -> Address | None:
    """``host`` as an IP address in standard notation, without a zone id; else None."""
    if "%" in host:
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def wire_name(host: str) -> str:
    """A configured host name as ``raw_host`` spells it (lower case, IDNA), for comparing."""
    name = host.strip().lower()
    prefix = "*." if name.startswith("*.") else ""
    try:
        return prefix + (URL.build(scheme="http", host=name[len(prefix) :]).raw_host or name)
    except ValueError:  # UnicodeError among them
        return name
