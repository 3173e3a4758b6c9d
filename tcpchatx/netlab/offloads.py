"""Segments as they would be on a wire: the veth ends' offloads switched off.

Linux hands a veth large "super-segments" (TSO/GSO: up to 64 KB, cut into MTU-sized
segments only later, or never on a veth) and leaves checksums to be filled in by
the "hardware" (TX checksum offload).  A capture on the sender's end then shows
14,480-byte segments on a 1,500-byte link, which no student should have to explain.
So each veth end gets TSO, GSO, GRO and TX checksumming off, as
``ethtool -K DEV tso off gso off gro off tx off`` would do - by the same ioctl
(SIOCETHTOOL), so that no ethtool needs installing.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from .namespaces import inside
from .topology import SIDES, Side

SIOCETHTOOL = 0x8946
# ethtool's "set" commands (linux/ethtool.h), each with an ethtool_value of 0: off
OFFLOADS = {"tso": 0x1F, "gso": 0x24, "gro": 0x2C, "tx-checksum": 0x17}


def set_offload(interface: str, command: int, value: int) -> None:
    """One ethtool set command on *interface* in the current network namespace."""
    data = ctypes.create_string_buffer(struct.pack("II", command, value), 8)
    request = struct.pack("16sP16x", interface.encode(), ctypes.addressof(data))  # struct ifreq
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCETHTOOL, request)


def turn_off(sides: tuple[Side, ...] = SIDES) -> None:
    """Every offload of :data:`OFFLOADS` off, on both ends of every veth pair."""
    for side in sides:
        for command in OFFLOADS.values():
            set_offload(side.router_link, command, 0)
        with inside(side.namespace):
            for command in OFFLOADS.values():
                set_offload(side.host_link, command, 0)
