"""This machine's addresses on its local network: what a classmate types to join.

A server listening on every interface (``0.0.0.0`` or ``::``) can be reached at any
of the machine's addresses, but "0.0.0.0" is not one of them: a student needs the
address their network gave the machine.  No packet is sent to find it.
"""

from __future__ import annotations

import ipaddress
import socket

# Any routable address works: connect() on a UDP socket only picks the route (and so
# the local address it would leave from); nothing is sent.
_PROBES = {socket.AF_INET: "198.51.100.1", socket.AF_INET6: "2001:db8::1"}


def is_every_interface(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def lan_addresses(family: socket.AddressFamily = socket.AF_INET) -> list[str]:
    """This machine's non-loopback addresses of ``family``: the one its default route
    leaves from first, then any others its host name resolves to.  Empty when it has
    no network at all."""
    found: list[str] = []
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((_PROBES[family], 9))
            found.append(probe.getsockname()[0])
    except OSError:
        pass  # no route: no network, or none of this family
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_STREAM)
    except OSError:
        infos = []
    found += [info[4][0] for info in infos]
    usable = []
    for address in found:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not (ip.is_loopback or ip.is_unspecified or ip.is_link_local) and address not in usable:
            usable.append(address)
    return usable
