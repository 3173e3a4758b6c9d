"""The IPv4 and IPv6 headers of every packet at once: addresses, the protocol carried,
where the transport header starts and how long the transport part is.

IPv6 extension headers (hop-by-hop, routing, destination options; up to four) are
skipped to reach the transport header.  A fragment (IPv4 with MF set or an offset,
IPv6 with a fragment header) is marked: its transport header cannot be read whole.
Addresses come out as two 64-bit halves of an IPv6 address, an IPv4 address mapped
into IPv6 (``::ffff:a.b.c.d``), so both versions share one numbering.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .capture_file import gather, gather_u8, has_rows, rows_where

IPPROTO_TCP = 6
IPV6_EXTENSION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options

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


def ip_layer(data: np.ndarray, l3: np.ndarray, ip_version: np.ndarray) -> IpFields:
    """Read the IP header at ``l3`` of each packet, as its ``ip_version`` (from
    :func:`.link.network_layer`) says: 4, 6, or 0 (not IP: left at 0)."""
    n = len(l3)
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
        l4_len[v4] = ip["total_length"].astype(np.int64) - ihl
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
        for _ in range(4):  # skip hop-by-hop, routing and destination-options headers
            ext = np.isin(nxt, IPV6_EXTENSION_HEADERS)
            if not ext.any():
                break
            ext_len = (gather_u8(data, here + 1) + 1) * 8
            nxt = np.where(ext, gather_u8(data, here), nxt)
            length = np.where(ext, length - ext_len, length)
            here = np.where(ext, here + ext_len, here)
        unfragmented[v6] = nxt != 44  # 44: a fragment header
        protocol[v6] = nxt
        l4[v6] = here
        l4_len[v6] = length
    return IpFields(l4, protocol, l4_len, unfragmented, src_hi, src_lo, dst_hi, dst_lo)
