"""The guard: every refused address class, spelled every way a URL can spell it, refused
before any connection; schemes, ports, user-info and allowed hosts; the named private hosts
and the test switch. No server is needed: a refused fetch never connects (a resolver that
fails the test if asked proves it where a name is involved)."""

from __future__ import annotations

import ipaddress

import pytest

from origin.errors import SourceRefused, SourceUnavailable
from origin.fetch import Limits, Policy, classify, fetch
from origin.fetch.guard import check_address, wire_name
from origin.settings import Settings, SettingsError

LIMITS = Limits(connect_timeout=1, total_timeout=3, max_bytes=1_000_000)
ANY_PORT = Policy(ports=frozenset({80, 443, 8080}))


async def never_resolve(host: str, port: int) -> list[ipaddress.IPv4Address]:
    raise AssertionError(f"{host} must be refused without a lookup")


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("http://0.0.0.0/", "unspecified"),  # imgproxy's CVE-2025-24354
        ("http://0.0.0.0:8080/x.jpg", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://127.0.0.1/", "loopback"),
        ("http://127.255.255.254/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped or IPv4-compatible"),
        ("http://[::ffff:7f00:1]/", "IPv4-mapped or IPv4-compatible"),
        ("http://[::ffff:8.8.8.8]/", "IPv4-mapped or IPv4-compatible"),
        ("http://[::127.0.0.1]/", "IPv4-mapped or IPv4-compatible"),
        ("http://[64:ff9b::127.0.0.1]/", "loopback"),  # NAT64
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of the metadata address
        ("http://[64:ff9b:1::808:808]/", "reserved"),  # local-use NAT64: refused whole
        ("http://[fec0::1]/", "reserved"),  # old site-local
        ("http://[3fff::1]/", "reserved"),  # documentation (RFC 9637)
        ("http://192.0.0.9/", "reserved"),  # the IETF protocol block, all of it
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "loopback"),  # Teredo of 127.0.0.1
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd00:ec2::254]/", "private"),  # AWS's IPv6 metadata address
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.64.0.1/", "shared"),  # CGNAT
        ("http://100.127.255.254/", "shared"),
        ("http://224.0.0.1/", "multicast"),
        ("http://239.255.255.250/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://192.0.2.1/", "reserved"),  # documentation
        ("http://198.18.0.1/", "reserved"),  # benchmarking
        ("http://0.1.2.3/", "reserved"),  # "this network"
        ("http://[2001:db8::1]/", "reserved"),
    ],
)
async def test_every_refused_class_is_refused_before_connecting(url: str, found: str) -> None:
    with pytest.raises(SourceRefused, match=f"a {found} address") as refused:
        await fetch(url, ANY_PORT, LIMITS, resolve=never_resolve)
    assert refused.value.status == 400 and refused.value.code == "source_refused"


@pytest.mark.parametrize(
    "url",
    [
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://localhost/",
        "http://LocalHost/",
    ],
)
async def test_numeric_and_named_spellings_of_loopback_are_refused(url: str) -> None:
    """The system resolver reads inet_aton's forms (hex, octal, one number, short forms):
    whatever it answers is what is checked."""
    with pytest.raises(SourceRefused, match="a loopback address"):
        await fetch(url, ANY_PORT, LIMITS)


async def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    async def private(host: str, port: int) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address("10.1.2.3")]

    with pytest.raises(SourceRefused, match=r"media\.example\.com resolves to a private"):
        await fetch("https://media.example.com/a.jpg", ANY_PORT, LIMITS, resolve=private)


async def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    async def mixed(host: str, port: int) -> list[ipaddress._BaseAddress]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("fd00::5")]

    with pytest.raises(SourceRefused, match="private"):
        await fetch("https://mixed.example.com/a.jpg", ANY_PORT, LIMITS, resolve=mixed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.jpg", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com:70/_x", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///a.jpg", "no host"),
        ("http://user:pw@example.com/a.jpg", "user name or password"),
        ("http://user@example.com/a.jpg", "user name or password"),
        ("http://example.com:22/a.jpg", "port 22 is not fetched"),
        ("https://example.com:6379/", "port 6379 is not fetched"),
        ("http://[::1/", "not a valid URL"),
        ("http://xn--media-.example.com/", "neither a host name nor an IP address"),
        ("http://[v1.x:y.attacker.com]/", "neither a host name nor an IP address"),
        ("http://[2606:4700::1%25lo]/", "neither a host name nor an IP address"),
        ("http://a..b.example/", "neither a host name nor an IP address"),
    ],
)
async def test_schemes_ports_and_user_info(url: str, message: str) -> None:
    with pytest.raises(SourceRefused, match=message):
        await fetch(url, Policy(), LIMITS, resolve=never_resolve)


def test_configured_names_compare_as_the_wire_spells_them() -> None:
    assert wire_name(" Media.Example.COM ") == "media.example.com"
    assert wire_name("bücher.example") == "xn--bcher-kva.example"
    assert wire_name("*.Bücher.example") == "*.xn--bcher-kva.example"
    policy = Policy(hosts=(wire_name("bücher.example"),))
    assert policy.host_allowed("xn--bcher-kva.example")


async def test_a_bad_idna_label_is_an_answer_not_a_crash() -> None:
    """yarl cannot decode ``xn--a``; the fetcher never asks it to (it reads ``raw_host``),
    so the name is simply looked up, and not found."""

    async def nxdomain(host: str, port: int) -> list[ipaddress.IPv4Address]:
        raise OSError("Name or service not known")

    with pytest.raises(SourceUnavailable, match="could not be resolved"):
        await fetch("http://xn--a.com/", ANY_PORT, LIMITS, resolve=nxdomain)


async def test_the_allowed_hosts_are_exact_names_or_subdomains() -> None:
    policy = Policy(hosts=("media.example.com", "*.cdn.example.net"))
    assert policy.host_allowed("media.example.com")
    assert policy.host_allowed("a.b.cdn.example.net")
    assert not policy.host_allowed("cdn.example.net")
    assert not policy.host_allowed("evilmedia.example.com")
    assert not policy.host_allowed("media.example.com.evil.org")
    with pytest.raises(SourceRefused, match="not in the allowed hosts"):
        await fetch("https://other.example.org/a.jpg", policy, LIMITS, resolve=never_resolve)


def test_named_private_hosts_reach_private_networks_and_nothing_else() -> None:
    policy = Policy(private_hosts=frozenset({"media.internal"}))
    for ok in ("10.0.0.7", "192.168.3.4", "fd12::7", "100.64.1.1", "127.0.0.1"):
        check_address("media.internal", ipaddress.ip_address(ok), policy)
    for refused in ("169.254.169.254", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::ffff:10.0.0.7"):
        with pytest.raises(SourceRefused):
            check_address("media.internal", ipaddress.ip_address(refused), policy)
    with pytest.raises(SourceRefused):
        check_address("other.internal", ipaddress.ip_address("10.0.0.7"), policy)


def test_the_test_switch_lets_loopback_through_and_nothing_else() -> None:
    policy = Policy(allow_loopback=True)
    check_address("localhost", ipaddress.ip_address("127.0.0.1"), policy)
    check_address("localhost", ipaddress.ip_address("::1"), policy)
    for refused in ("0.0.0.0", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "::"):
        with pytest.raises(SourceRefused):
            check_address("x", ipaddress.ip_address(refused), policy)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700::6810:84e5", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_production_refuses_the_test_switch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "IMGORIGIN_ENV": "production",
        "JWT_SECRET": "j" * 40,
        "URL_SIGNING_KEYS": "k1:" + "s" * 40,
        "SECRETS_FILE": str(tmp_path / "secrets.json"),
        "FETCH_ALLOW_LOOPBACK_FOR_TESTS": "1",
    }
    with pytest.raises(SettingsError, match="FETCH_ALLOW_LOOPBACK_FOR_TESTS"):
        Settings.from_environ(env)
    del env["FETCH_ALLOW_LOOPBACK_FOR_TESTS"]
    assert not Settings.from_environ(env).fetch_allow_loopback_for_tests
