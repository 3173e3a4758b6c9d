"""The IPv4 and IPv6 headers of every packet at once: addresses, the protocol carried,
where the transport header starts and how long the transport part is.

IPv6 extension headers (hop-by-hop, routing, destination options, AH, mobility, HIP,
shim6; up to eight) are skipped to reach the transport header.  A fragment (IPv4 with
MF set or an offset, IPv6 with a fragment header that is not "atomic": offset 0 and
no more fragments) is marked: its transport header cannot be read whole.  Addresses
come out as two 64-bit halves of an IPv6 address, an IPv4 address mapped into IPv6
(``::ffff:a.b.c.d``), so both versions share one numbering.

*Total length 0.*  A capture made on the sending host sees a large segment before the
network card cuts it into packets (TCP segmentation offload), and Linux leaves its IP
length 0 (IPv6: payload length 0).  As Wireshark does, the length then comes from the
frame itself (its length on the wire, as the capture recorded it), and the packet is
marked (``length_from_frame``) so that its note can say why.

Every frame that is not a whole TCP segment gets its reason (:mod:`.skipped`): a
fragment, a tunnel we do not decode (named: GRE, IP in IP, VXLAN...), or another
protocol (UDP, ICMP...).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .capture_file import gather, gather_u8_within, gather_u16_within, has_rows, rows_where
from .skipped import TUNNELS, UDP_TUNNEL, UDP_TUNNELS, Skip, reason

IPPROTO_TCP, IPPROTO_UDP = 6, 17
IPV6_FRAGMENT, IPV6_AH = 44, 51
#: Extension headers whose length is (its second byte + 1) * 8: hop-by-hop, routing,
#: destination options, mobility, HIP, shim6.  AH counts in 4-byte words (+ 2).
IPV6_EXTENSION_HEADERS = (0, 43, 60, 135, 139, 140)
IPV6_EXTENSIONS_AT_MOST = 8

IPV4_HEADER = np.dtype([
    ("version_ihl", "u1"), ("tos", "u1"), ("total_length", ">u2"), ("id", ">u2"),
    ("fragment", ">u2"), ("ttl", "u1"), ("protocol", "u1"), ("checksum", ">u2"),
    ("src", ">u4"), ("dst", ">u4"),
])
IPV6_HEADER = np.dtype([
    ("version_class_flow", ">u4"), ("payload_length", ">u2"), ("next_header", "u1"),
    ("hop_limit", "u1"), ("src_hi", ">u8"), ("src_lo", ">u8"), ("dst_hi", ">u8"), ("dst_lo", ">u8"),
])
IPV4_MAPPED = 0xFFFF << 32  # ::ffff:a.b.c.d, so IPv4 and IPv6 addresses share one id space


class IpFields(NamedTuple):
    """What the IP layer says of each packet (0 where it is not IP)."""

    l4: np.ndarray  # int64: where the transport header starts in the file
    protocol: np.ndarray  # int64: the transport protocol (IPPROTO_TCP...)
    l4_len: np.ndarray  # int64: transport header + payload, as the IP header says
    unfragmented: np.ndarray  # bool
    src_hi: np.ndarray  # uint64: the high and low halves of the source address
    src_lo: np.ndarray
    dst_hi: np.ndarray  # uint64: and of the destination address
    dst_lo: np.ndarray
    length_from_frame: np.ndarray  # bool: the IP length was 0 (segmentation offload): the frame's used
    skip: np.ndarray  # int64: why it is not a TCP segment (skipped.reason), 0 if it is one


def ip_layer(data: np.ndarray, l3: np.ndarray, ip_version: np.ndarray,
             wire_end: np.ndarray | None = None, end: np.ndarray | None = None) -> IpFields:
    """Read the IP header at ``l3`` of each packet, as its ``ip_version`` (from
    :func:`.link.link_layer`) says: 4, 6, or 0 (not IP: left at 0).  ``wire_end`` is
    where each frame would end had all of it been captured (for a length of 0)."""
    n = len(l3)
    if wire_end is None:
        wire_end = np.full(n, np.iinfo(np.int64).max // 2)
    if end is None:  # where each frame's captured bytes end: nothing past it is read
        end = wire_end
    length_from_frame = np.zeros(n, dtype=bool)
    l4 = np.zeros(n, dtype=np.int64)
    protocol = np.zeros(n, dtype=np.int64)
    l4_len = np.zeros(n, dtype=np.int64)  # TCP header + payload, as the IP header says
    unfragmented = np.ones(n, dtype=bool)
    # Addresses as two 64-bit halves of an IPv6 address.
    src_hi, src_lo = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    dst_hi, dst_lo = np.zeros(n, np.uint64), np.zeros(n, np.uint64)

    v4 = rows_where(ip_version == 4)
    if has_rows(v4):
        ip = gather(data, l3[v4], IPV4_HEADER)
        ihl = (ip["version_ihl"] & 0x0F).astype(np.int64) * 4
        protocol[v4] = ip["protocol"]
        l4[v4] = l3[v4] + ihl
        total = ip["total_length"].astype(np.int64)
        offloaded = total == 0
        total = np.where(offloaded, wire_end[v4] - l3[v4], total)
        length_from_frame[v4] = offloaded
        l4_len[v4] = total - ihl
        unfragmented[v4] = (ip["fragment"] & 0x3FFF) == 0  # no MF flag, offset 0
        src_lo[v4] = ip["src"].astype(np.uint64) | IPV4_MAPPED
        dst_lo[v4] = ip["dst"].astype(np.uint64) | IPV4_MAPPED

    v6 = np.flatnonzero(ip_version == 6)
    if len(v6):
        ip = gather(data, l3[v6], IPV6_HEADER)
        src_hi[v6], src_lo[v6] = ip["src_hi"], ip["src_lo"]
        dst_hi[v6], dst_lo[v6] = ip["dst_hi"], ip["dst_lo"]
        nxt = ip["next_header"].astype(np.int64)
        here = l3[v6] + 40
        length = ip["payload_length"].astype(np.int64)
        offloaded = length == 0  # segmentation offload (or a jumbogram): the frame says
        length = np.where(offloaded, wire_end[v6] - here, length)
        length_from_frame[v6] = offloaded
        fragment = np.zeros(len(v6), dtype=bool)
        for _ in range(IPV6_EXTENSIONS_AT_MOST):
            plain = np.isin(nxt, IPV6_EXTENSION_HEADERS)
            ah = nxt == IPV6_AH
            atomic = nxt == IPV6_FRAGMENT
            if atomic.any():  # a fragment header with offset 0 and no more to come holds the whole packet
                offset_and_more = gather_u16_within(data, here + 2, end[v6])
                fragment |= atomic & ((offset_and_more & 0xFFF9) != 0)
                atomic &= ~fragment
            ext = plain | ah | atomic
            if not ext.any():
                break
            second = gather_u8_within(data, here + 1, end[v6])
            ext_len = np.select([plain, ah], [(second + 1) * 8, (second + 2) * 4], 8)
            nxt = np.where(ext, gather_u8_within(data, here, end[v6]), nxt)
            length = np.where(ext, length - ext_len, length)
            here = np.where(ext, here + ext_len, here)
        unfragmented[v6] = ~fragment
        protocol[v6] = np.where(fragment, IPV6_FRAGMENT, nxt)
        l4[v6] = here
        l4_len[v6] = length
    skip = _reasons(data, ip_version, protocol, unfragmented, l4, end)
    return IpFields(l4, protocol, l4_len, unfragmented, src_hi, src_lo, dst_hi, dst_lo, length_from_frame, skip)


def _reasons(data: np.ndarray, ip_version: np.ndarray, protocol: np.ndarray, unfragmented: np.ndarray,
             l4: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Why each IP packet is not a TCP segment: a fragment, a tunnel, another protocol."""
    skip = np.zeros(len(ip_version), dtype=np.int64)
    ip = ip_version > 0
    fragment = ip & ~unfragmented
    skip[fragment] = reason(Skip.FRAGMENT, ip_version[fragment].astype(np.int64))
    whole = ip & unfragmented & (protocol != IPPROTO_TCP)
    tunnel = whole & np.isin(protocol, list(TUNNELS))
    skip[tunnel] = reason(Skip.TUNNEL, protocol[tunnel])
    other = whole & ~tunnel
    skip[other] = reason(Skip.NOT_TCP, protocol[other])
    udp = np.flatnonzero(other & (protocol == IPPROTO_UDP))
    if len(udp):
        ports = np.stack([gather_u16_within(data, l4[udp] + 2, end[udp]),  # destination first
                          gather_u16_within(data, l4[udp], end[udp])])
        known = np.isin(ports, list(UDP_TUNNELS))
        by_port = known.any(axis=0)
        port = np.where(known[0], ports[0], ports[1])
        skip[udp[by_port]] = reason(Skip.TUNNEL, UDP_TUNNEL | port[by_port])
    return skip
