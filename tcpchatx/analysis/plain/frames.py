"""One frame at a time: from the link header to the TCP header, or the reason it is not TCP.

This is the version to read first.  :mod:`tcpchatx.analysis.link` and
:mod:`tcpchatx.analysis.ip` do the same for every frame at once with numpy, and a test
holds the two to the same answer on every capture.

A frame is a byte string and the link type of its interface.  We walk inwards:

1. the link header says where the next header starts and what it is (an EtherType,
   an address family, or nothing: raw IP);
2. while that is a wrapper (VLAN, VN-Tag, PBB, 802.2 LLC/SNAP, PPPoE, MPLS), step over
   it and read what it wraps;
3. the IP header: its version must be what the link said; IPv6 extension headers are
   stepped over; a fragment, a tunnel or another protocol ends the walk with a reason;
4. a TCP header at least 20 bytes long, inside the captured bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..skipped import TUNNELS, UDP_TUNNEL, UDP_TUNNELS, Skip, reason

ETHERNET, FDDI, RAW, LOOP, NULL, SLL, SLL2, IPV4_ONLY, IPV6_ONLY = 1, 10, 101, 108, 0, 113, 276, 228, 229
VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
IPV4, IPV6 = 0x0800, 0x86DD
VNTAG, PBB, PPPOE, MPLS = 0x8926, 0x88E7, 0x8864, (0x8847, 0x8848)
BY_NIBBLE = -2  # "IP; its version nibble says which"
LLC_SNAP = b"\xaa\xaa\x03"
IPV6_EXTENSIONS = (0, 43, 60, 135, 139, 140)


@dataclass(frozen=True)
class Layers:
    """Where one frame's headers start (offsets from its first byte), or why it is not TCP."""

    l3: int = 0
    version: int = 0  # 4, 6, or 0 (not IP)
    l4: int = 0
    protocol: int = 0
    l4_len: int = 0  # transport header + payload, as the IP header says (or the frame, for 0)
    length_from_frame: bool = False
    skip: int = 0  # skipped.reason(kind, detail); 0: a TCP segment


def u8(frame: bytes, at: int) -> int:
    return frame[at] if 0 <= at < len(frame) else 0


def u16(frame: bytes, at: int) -> int:
    return struct.unpack_from(">H", frame, at)[0] if 0 <= at <= len(frame) - 2 else 0


def decode_frame(frame: bytes, linktype: int, wire_length: int) -> Layers:
    """Decode one captured *frame* (its bytes), of an interface of *linktype*, that was
    *wire_length* bytes long on the wire."""
    where = link_header(frame, linktype)
    if isinstance(where, int):
        return Layers(skip=where)
    ethertype, at = where
    ethertype, at, skip = unwrap(frame, ethertype, at)
    if skip:
        return Layers(l3=at, skip=skip)
    return ip_header(frame, ethertype, at, wire_length)


def link_header(frame: bytes, linktype: int) -> tuple[int, int] | int:
    """(what follows, where) after the link header, or the reason to stop."""
    found = _link_header(frame, linktype)
    if not isinstance(found, int) and found[1] > len(frame):  # the link header runs past the frame
        return reason(Skip.TRUNCATED, 2)
    return found


def _link_header(frame: bytes, linktype: int) -> tuple[int, int] | int:
    if linktype == ETHERNET:
        return u16(frame, 12), 14
    if linktype == FDDI:  # 13 bytes of MAC header, then 802.2 LLC (some systems pad 3 bytes first)
        padded = frame[13:16] != LLC_SNAP and frame[16:19] == LLC_SNAP
        return 0, 16 if padded else 13  # 0: "a length": LLC follows
    if linktype == SLL:
        return u16(frame, 14), 16
    if linktype == SLL2:
        return u16(frame, 0), 20
    if linktype in (RAW, IPV4_ONLY, IPV6_ONLY):
        return BY_NIBBLE, 0
    if linktype in (NULL, LOOP):
        family = struct.unpack_from("<I", frame, 0)[0] if len(frame) >= 4 else 0
        if family > 0xFFFF:  # LOOP, or NULL from a host of the other byte order
            family = struct.unpack_from(">I", frame, 0)[0]
        if family in (2, 24, 28, 30):  # AF_INET, and AF_INET6 as BSDs number it
            return BY_NIBBLE, 4
        if len(frame) < 4:
            return reason(Skip.TRUNCATED, 2)
        return reason(Skip.NOT_IP, family & 0xFFFF)
    return reason(Skip.LINK_TYPE, linktype)


#: Bytes each wrapper needs before it can be read.
NEEDS = {**dict.fromkeys(VLAN_TAGS, 4), VNTAG: 6, PBB: 18, PPPOE: 8, **dict.fromkeys(MPLS, 4)}


def unwrap(frame: bytes, ethertype: int, at: int, rounds: int = 8) -> tuple[int, int, int]:
    """Step over the wrappers between the link and IP: (what is at ``at``, ``at``, a reason or 0)."""
    cut_short = reason(Skip.TRUNCATED, 2)
    for _ in range(rounds):
        needs = 3 if 0 <= ethertype <= 1535 else NEEDS.get(ethertype, 0)
        if at + needs > len(frame):
            return -1, at, cut_short
        if ethertype in VLAN_TAGS:
            ethertype, at = u16(frame, at + 2), at + 4
        elif ethertype == VNTAG:
            ethertype, at = u16(frame, at + 4), at + 6
        elif ethertype == PBB:  # the I-tag, then the customer's destination and source MACs
            ethertype, at = u16(frame, at + 16), at + 18
        elif 0 <= ethertype <= 1535:  # a length, not a type: 802.2 LLC
            if frame[at:at + 3] != LLC_SNAP:
                return -1, at, reason(Skip.LLC, u16(frame, at))
            if at + 8 > len(frame):
                return -1, at, cut_short
            ethertype, at = u16(frame, at + 6), at + 8
        elif ethertype == PPPOE:
            protocol = u16(frame, at + 6)
            if protocol not in (0x0021, 0x0057):
                return -1, at + 8, reason(Skip.PPP, protocol)
            ethertype, at = (IPV4 if protocol == 0x0021 else IPV6), at + 8
        elif ethertype in MPLS:
            for _ in range(8):  # labels, until the one marked "bottom of stack"
                if at + 4 > len(frame):
                    return -1, at, cut_short
                bottom = u8(frame, at + 2) & 1
                at += 4
                if bottom:
                    break
            else:
                continue  # a longer stack: the next round goes on popping
            nibble = u8(frame, at) >> 4
            if nibble not in (4, 6):
                return -1, at, reason(Skip.MPLS, nibble)
            ethertype = IPV4 if nibble == 4 else IPV6
        else:
            return ethertype, at, 0
    if ethertype in (*VLAN_TAGS, VNTAG, PBB, PPPOE, *MPLS):
        return -1, at, reason(Skip.TOO_DEEP, ethertype)
    return ethertype, at, 0


def ip_header(frame: bytes, ethertype: int, at: int, wire_length: int) -> Layers:
    """The IP header at ``at``, what it carries and where."""
    nibble = u8(frame, at) >> 4
    claimed = {IPV4: 4, IPV6: 6, BY_NIBBLE: nibble}.get(ethertype, 0)
    if at > len(frame) or (claimed and at >= len(frame)):
        return Layers(l3=at, skip=reason(Skip.TRUNCATED, 2))
    if claimed == 0:
        return Layers(l3=at, skip=reason(Skip.NOT_IP, max(ethertype, 0)))
    if nibble != claimed or nibble not in (4, 6):
        return Layers(l3=at, skip=reason(Skip.BAD_IP, nibble))
    if at + (20 if nibble == 4 else 40) > len(frame):
        return Layers(l3=at, skip=reason(Skip.TRUNCATED, 3))
    if nibble == 4:
        l4, protocol, length, from_frame, whole = ipv4(frame, at, wire_length)
    else:
        l4, protocol, length, from_frame, whole = ipv6(frame, at, wire_length)
    skip = transport_reason(frame, nibble, protocol, whole, l4)
    if skip == 0 and l4 + 20 > len(frame):
        skip = reason(Skip.TRUNCATED, 4)
    if skip == 0 and (u8(frame, l4 + 12) >> 4) < 5:
        skip = reason(Skip.BAD_TCP, u8(frame, l4 + 12) >> 4)
    return Layers(at, nibble, l4, protocol, length, from_frame and skip == 0, skip)


def ipv4(frame: bytes, at: int, wire_length: int) -> tuple[int, int, int, bool, bool]:
    """(transport header, protocol, its length, whether the length is the frame's, unfragmented)."""
    header = (frame[at] & 0x0F) * 4
    total = u16(frame, at + 2)
    from_frame = total == 0  # segmentation offload: the frame is the segment
    if from_frame:
        total = wire_length - at
    whole = (u16(frame, at + 6) & 0x3FFF) == 0  # no "more fragments", offset 0
    return at + header, frame[at + 9], total - header, from_frame, whole


def ipv6(frame: bytes, at: int, wire_length: int) -> tuple[int, int, int, bool, bool]:
    """The same for IPv6, stepping over its extension headers."""
    next_header, here = frame[at + 6], at + 40
    length = u16(frame, at + 4)
    from_frame = length == 0
    if from_frame:
        length = wire_length - here
    for _ in range(8):
        if next_header in IPV6_EXTENSIONS:
            size = (u8(frame, here + 1) + 1) * 8
        elif next_header == 51:  # AH counts 4-byte words, less two
            size = (u8(frame, here + 1) + 2) * 4
        elif next_header == 44:  # a fragment header: whole only if offset 0 and no more to come
            if u16(frame, here + 2) & 0xFFF9:
                return here, 44, length, from_frame, False
            size = 8
        else:
            break
        next_header, here, length = u8(frame, here), here + size, length - size
    return here, next_header, length, from_frame, True


def transport_reason(frame: bytes, version: int, protocol: int, whole: bool, l4: int) -> int:
    """Why the IP packet's payload is not a TCP segment (0 if it is one)."""
    if not whole:
        return reason(Skip.FRAGMENT, version)
    if protocol == 6:
        return 0
    if protocol in TUNNELS:
        return reason(Skip.TUNNEL, protocol)
    if protocol == 17:
        for port in (u16(frame, l4 + 2), u16(frame, l4)):  # the destination port first
            if port in UDP_TUNNELS:
                return reason(Skip.TUNNEL, UDP_TUNNEL | port)
    return reason(Skip.NOT_TCP, protocol)
