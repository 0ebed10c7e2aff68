"""Where the server may send what a client asked it to send (rest-hook notifications):
hosts on the public internet, not the operator's own network (server-side request forgery).

A Subscription names its endpoint, and the server POSTs to it with headers the subscriber
chose; without this rule an agency could make the server reach its loopback interface,
the cloud metadata address or hosts on the private network. Addresses are judged by what
they are (ipaddress: not global), after the forms of writing them that resolvers accept
(``127.1``, ``0x7f.1``, ``2130706433``, ``[::ffff:127.0.0.1]``, ``localhost.``).

Two checks: when the Subscription is written, an endpoint whose host is such an address or
a name of this host is refused (no DNS lookup inside the write); before each delivery the
name is resolved and every address it has must be public. Operators whose subscribers are
on their own network allow that with CASEBRIDGE_NOTIFY_ALLOW_PRIVATE_ENDPOINTS.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names that always mean this host (RFC 6761 reserves .localhost).
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class TargetRefused(ValueError):
    """The endpoint is inside the operator's network."""


def literal_address(host: str) -> Address | None:
    """The address a host names when it is written as one, in any form a resolver takes."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # The classic parser takes shorthand, octal and hexadecimal forms.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_internal(address: Address) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast or unspecified."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def _host(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise TargetRefused("the endpoint names no host")
    return host.lower()


def check_written(url: str) -> None:
    """At write time: refuse a host that is an internal address or a name of this host."""
    host = _host(url)
    name = host.rstrip(".")
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        raise TargetRefused(f"{host} is this host")
    address = literal_address(host)
    if address is not None and is_internal(address):
        raise TargetRefused(f"{host} is an address inside the operator's network")


def check_resolved(url: str) -> None:
    """Before a delivery: every address the host resolves to must be public."""
    host = _host(url)
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}") from exc
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if is_internal(address):
            raise TargetRefused(f"{host} resolves to {address}, inside the operator's network")


__all__ = ["TargetRefused", "check_resolved", "check_written", "is_internal", "literal_address"]
