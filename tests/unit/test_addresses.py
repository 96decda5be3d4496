"""The address policy of the server's own requests (craton.sources.addresses): which addresses a
reference or git source may reach, in every form an address can be written, and the [sources]
options that set it."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from craton.config import ConfigError, load_settings
from craton.sources.addresses import (
    AddressNotAllowed,
    AddressPolicy,
    NameNotResolved,
    address_kind,
    literal_address,
    own_addresses,
)

ip = ipaddress.ip_address


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "shared (carrier-grade NAT)"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "private"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "6to4-embedded loopback"),
    ("8.8.8.8", None),
    ("::ffff:8.8.8.8", None),
    ("2606:4700::1111", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    """Loopback, link-local, private (RFC 1918, fc00::/7), shared, unspecified, multicast and
    reserved addresses — also written as IPv4-mapped IPv6 or inside 6to4 — are not public;
    public unicast addresses are."""
    assert address_kind(ip(address)) == kind


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.1", "0x7f000001", "2130706433",
                                  "017700000001", "[::1]", "::ffff:127.0.0.1",
                                  "[::ffff:7f00:1]"])
def test_every_spelling_of_loopback_is_an_address(host: str) -> None:
    """The short, hexadecimal, decimal and octal forms the system's resolver reads as
    addresses (without asking DNS) are taken as the address they are."""
    address = literal_address(host)
    assert address is not None and address.is_loopback, host
    assert AddressPolicy().host_problem(host) == f"{host} is a loopback address"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "localhost.", "db.localhost"])
def test_localhost_names_are_refused_without_asking_dns(host: str) -> None:
    """localhost and names below it mean this machine whatever DNS says."""
    assert AddressPolicy().host_problem(host) == f"{host} is this machine (a loopback address)"
    with pytest.raises(AddressNotAllowed):
        AddressPolicy(resolver=lambda name, port: ["8.8.8.8"]).resolve(host, 80)
    assert AddressPolicy(["127.0.0.0/8"]).host_problem(host) is None


def test_names_are_not_judged_until_they_are_resolved() -> None:
    """A host name is not refused when stored (what it resolves to can change); it is checked
    each time it is resolved."""
    assert literal_address("vars.example.com") is None
    assert AddressPolicy().host_problem("vars.example.com") is None


def test_allowed_networks_let_their_addresses_through() -> None:
    """An operator's allowed network admits its addresses (also IPv4-mapped) and no others."""
    policy = AddressPolicy(["10.20.0.0/16", "fd00::/64"])
    assert policy.problem(ip("10.20.3.4")) is None
    assert policy.problem(ip("::ffff:10.20.3.4")) is None
    assert policy.problem(ip("fd00::2")) is None
    assert policy.problem(ip("10.21.0.1")) == "a private address"
    assert policy.problem(ip("127.0.0.1")) == "a loopback address"


def test_the_servers_own_addresses_are_refused() -> None:
    """Every address of this machine's interfaces is refused, even a public one (a service
    bound to 0.0.0.0 answers on it). The interfaces are injected for the public case only: no
    interface here has a public address."""
    public = ip("8.8.8.8")
    policy = AddressPolicy(interfaces=lambda: frozenset({public}))
    assert policy.problem(public) == "an address of this server"
    assert policy.problem(ip("8.8.4.4")) is None
    real = AddressPolicy()
    mine = own_addresses()
    assert ip("127.0.0.1") in mine
    for address in mine:
        assert real.problem(address) is not None, address


def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    """A name with one public and one private address is refused, not narrowed to the public
    one; a name without addresses does not resolve."""
    policy = AddressPolicy(resolver=lambda name, port: ["8.8.8.8", "10.0.0.1"])
    with pytest.raises(AddressNotAllowed):
        policy.resolve("mixed.example", 443)
    public = AddressPolicy(resolver=lambda name, port: ["8.8.8.8", "::ffff:8.8.4.4"])
    assert public.resolve("public.example", 443) == [ip("8.8.8.8"), ip("8.8.4.4")]
    with pytest.raises(NameNotResolved):
        AddressPolicy(resolver=lambda name, port: []).resolve("nothing.example", 443)


def test_the_system_resolver_is_used_by_default() -> None:
    """Without an injected resolver, names go to the system's: "nosuch.invalid" never
    resolves (RFC 6761), and this machine's own name resolves to one of its addresses."""
    with pytest.raises(NameNotResolved):
        AddressPolicy().resolve("nosuch.invalid", 80)
    try:
        socket.getaddrinfo(socket.gethostname(), 80)
    except socket.gaierror:
        pytest.skip("this machine's name does not resolve here")
    with pytest.raises(AddressNotAllowed):
        AddressPolicy().resolve(socket.gethostname(), 80)


@pytest.mark.parametrize(("option", "value", "words"), [
    ("ALLOWED_NETWORKS", "10.0.0.0/8,not-a-net", "allowed_networks: 'not-a-net'"),
    ("FILE_ROOTS", "/srv/{tenant_name}", "placeholder other than {tenant}"),
    ("FILE_ROOTS", "relative/{tenant}", "not an absolute path"),
])
def test_sources_options_are_checked_at_start(option: str, value: str, words: str) -> None:
    """A network that does not parse, or a root with an unknown placeholder or a relative path,
    stops start-up naming the option (a typo must not leave a network open or closed)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"CRATON_SOURCES_{option}": value})
    assert words in str(caught.value)


def test_sources_options_are_read() -> None:
    settings = load_settings(environ={
        "CRATON_SOURCES_ALLOWED_NETWORKS": "10.0.0.0/8, fd00::/8",
        "CRATON_SOURCES_FILE_ROOTS": "/srv/shared,/srv/tenants/{tenant}/vars"})
    assert settings.sources.allowed_networks == ("10.0.0.0/8", "fd00::/8")
    assert settings.file_roots == ("/srv/shared", "/srv/tenants/{tenant}/vars")
