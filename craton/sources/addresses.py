"""Which network addresses the server's own requests (references over http(s), git sources and
references) may reach.

A tenant chooses the URLs Craton fetches, and Craton fetches them from inside the operator's
network with the server's own standing: a URL at loopback, a private network, link-local (cloud
metadata services live at 169.254.169.254) or one of this machine's own addresses would let a
tenant read what only the server can reach — another tenant's inventory from Craton's own API,
for one. So every address a host name resolves to must be a global unicast address that is not
one of this machine's, unless an operator lists its network in ``[sources] allowed_networks``.

The check is only sound if the connection goes to the address that was checked: a name that
resolves to a public address when checked and to 127.0.0.1 when connected ("DNS rebinding")
would slip through otherwise. :meth:`AddressPolicy.resolve` therefore returns the checked
addresses, and the fetcher connects to those and nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import psutil

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) → the addresses the name resolves to, as strings."""

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
LOOPBACK_NAMES = ("localhost",)
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
"""What a loopback name is taken to mean, without asking the resolver."""
OWN_ADDRESSES_TTL = 10.0
"""Seconds the list of this machine's addresses is reused before it is read again."""


class AddressNotAllowed(Exception):
    """A host resolves to (or is) an address the policy refuses."""


class NameNotResolved(Exception):
    """A host name has no address (or the resolver failed)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to through the system's resolver (/etc/hosts, DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise NameNotResolved(host) from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; ValueError naming the first bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network (CIDR such as 10.0.0.0/8)") from None
    return tuple(networks)


def canonical(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps: that is
    where a connection to it goes, so that is what is checked and connected to."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def literal_address(host: str) -> Address | None:
    """``host`` as an address when it is one — in any form the system's resolver reads as an
    address without asking DNS (``127.1``, ``0x7f000001``, ``[::1]``) — else None."""
    bare = host.strip("[]")
    try:
        return canonical(ipaddress.ip_address(bare))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return canonical(ipaddress.ip_address(infos[0][4][0]))


def is_loopback_name(host: str) -> bool:
    """``localhost`` and names below it (RFC 6761: they always mean this machine)."""
    name = host.rstrip(".").lower()
    return any(name == loopback or name.endswith("." + loopback) for loopback in LOOPBACK_NAMES)


def address_kind(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (``"loopback"``, ``"private"``, …);
    None when it is one."""
    address = canonical(address)
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in SHARED_ADDRESS_SPACE, "shared (carrier-grade NAT)"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (not address.is_global, "special-purpose"),
    ]
    for refused, kind in checks:
        if refused:
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        # 6to4 carries an IPv4 address that a relay (or this machine) connects to.
        embedded = address_kind(address.sixtofour)
        return f"6to4-embedded {embedded}" if embedded else None
    return None


def own_addresses() -> frozenset[Address]:
    """Every address of this machine's network interfaces."""
    found: set[Address] = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(canonical(ipaddress.ip_address(entry.address.split("%")[0])))
                except ValueError:
                    continue
    return frozenset(found)


class AddressPolicy:
    """The addresses outgoing requests may reach: public unicast addresses that are not this
    machine's, plus the networks an operator allowed."""

    def __init__(self, allowed: Iterable[str] = (), *, resolver: Resolver | None = None,
                 interfaces: Callable[[], frozenset[Address]] = own_addresses) -> None:
        self.allowed = parse_networks(allowed)
        self._resolver = resolver or system_resolver
        self._interfaces = interfaces
        self._own: tuple[float, frozenset[Address]] = (float("-inf"), frozenset())
        self._lock = threading.Lock()

    def problem(self, address: Address) -> str | None:
        """Why the server may not connect to ``address``; None when it may."""
        address = canonical(address)
        if any(address in network for network in self.allowed):
            return None
        kind = address_kind(address)
        if kind is not None:
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
        if address in self._own_addresses():
            return "an address of this server"
        return None

    def host_problem(self, host: str) -> str | None:
        """What can be said of ``host`` without asking DNS (checked when a URL is stored): a
        literal address the policy refuses, or a name that always means this machine."""
        address = literal_address(host)
        if address is not None:
            problem = self.problem(address)
            return f"{host} is {problem}" if problem else None
        if is_loopback_name(host) and self.problem(LOOPBACK) is not None:
            return f"{host} is this machine (a loopback address)"
        return None

    def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses to connect to for ``host``: every address it resolves to, each
        allowed. AddressNotAllowed when any is not (a name with one public and one private
        address is refused, not narrowed: it is not the tenant's to point inside);
        NameNotResolved when it has none."""
        address = literal_address(host)
        if address is not None:
            found = [address]
        elif is_loopback_name(host):
            found = [LOOPBACK]
        else:
            try:
                found = [canonical(ipaddress.ip_address(raw.split("%")[0]))
                         for raw in self._resolver(host, port)]
            except ValueError as error:
                raise NameNotResolved(host) from error
        if not found:
            raise NameNotResolved(host)
        if any(self.problem(candidate) is not None for candidate in found):
            raise AddressNotAllowed(host)
        return list(dict.fromkeys(found))

    def _own_addresses(self) -> frozenset[Address]:
        with self._lock:
            read_at, addresses = self._own
            if time.monotonic() - read_at > OWN_ADDRESSES_TTL:
                addresses = self._interfaces()
                self._own = (time.monotonic(), addresses)
            return addresses
