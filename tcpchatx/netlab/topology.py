"""The lab's network, as data: a client network, a router, a server network.

::

    client namespace            router (the user namespace itself)          server namespace
    10.77.1.2 [c1] ---veth--- [c0] 10.77.1.1      10.77.2.1 [s0] ---veth--- [s1] 10.77.2.2

Every address lives in namespaces the lab creates itself, so no packet can leave
the machine.  The router forwards between its two veth ends - its kernel, or the
relay (:mod:`tcpchatx.netlab.relay`) when a story scripts delay and loss; a rate
limit and its buffer sit on those ends, one per direction.

:func:`commands` says how to build it, as ``ip`` commands (iproute2, as on every
Linux); :func:`build` runs them.  Run inside a user, network and mount namespace
(see :mod:`tcpchatx.netlab.child`), they need no root: the user namespace's root
may create network namespaces, veth pairs and routes, and mount the small tmpfs
where ``ip netns`` keeps its names.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

NETNS_DIR = "/run/netns"


@dataclass(frozen=True)
class Side:
    """One end network: its namespace, and the veth pair joining it to the router."""

    namespace: str  # "client" or "server"
    address: str  # the host's address in its namespace
    router_address: str  # the router's address on this side
    host_link: str  # the veth end in the namespace
    router_link: str  # the veth end in the router
    prefix: int = 24

    @property
    def host_mac(self) -> str:
        return mac_for(self.address)

    @property
    def router_mac(self) -> str:
        return mac_for(self.router_address)


def mac_for(address: str) -> str:
    """The lab's MAC address for an IPv4 address: 02:00 and the address's four bytes
    (02: a locally administered address).  Fixed addresses make captures alike run to
    run, and tell the relay where each frame goes without asking ARP."""
    return "02:00:" + ":".join(f"{int(byte):02x}" for byte in address.split("."))


CLIENT = Side("client", "10.77.1.2", "10.77.1.1", "c1", "c0")
SERVER = Side("server", "10.77.2.2", "10.77.2.1", "s1", "s0")
SIDES = (CLIENT, SERVER)


def commands(sides: tuple[Side, ...] = SIDES) -> list[list[str]]:
    """The ``ip`` commands that build the network, in order (run as the namespace's root)."""
    out = [["ip", "link", "set", "lo", "up"]]
    for side in sides:
        ns = side.namespace
        out += [
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", side.router_link, "address", side.router_mac, "type", "veth",
             "peer", "name", side.host_link, "address", side.host_mac, "netns", ns],
            ["ip", "addr", "add", f"{side.router_address}/{side.prefix}", "dev", side.router_link],
            ["ip", "link", "set", side.router_link, "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", ns, "addr", "add", f"{side.address}/{side.prefix}", "dev", side.host_link],
            ["ip", "-n", ns, "link", "set", side.host_link, "up"],
            ["ip", "-n", ns, "route", "add", "default", "via", side.router_address],
        ]
    return out


class TopologyError(RuntimeError):
    """The network could not be built; the message names the command and what it said."""


def build(sides: tuple[Side, ...] = SIDES) -> None:
    """Build the network in the current (user, network, mount) namespace."""
    subprocess.run(["mount", "-t", "tmpfs", "tcpchatx-netns", "/run"], check=True, capture_output=True)
    subprocess.run(["mkdir", "-p", NETNS_DIR], check=True)
    for command in commands(sides):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TopologyError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    with open("/proc/sys/net/ipv4/ip_forward", "w") as forwarding:  # the router routes
        forwarding.write("1")
