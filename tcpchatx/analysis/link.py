"""The link layer of every packet at once: where its network (IP) header starts.

Link types: Ethernet (1, with one or two 802.1Q tags), Linux cooked SLL (113) and
SLL2 (276), raw IP (101, 228, 229), BSD loopback NULL (0, host byte order) and
LOOP (108, network byte order).  A Linux ``lo`` capture is Ethernet with zero MACs;
a macOS ``lo0`` capture is NULL.

Each link header says what it carries (an EtherType, or an address family), and
the IP header's first nibble says its version: a packet is IPv4 or IPv6 only when
both agree.  Where the link says just "IP" (raw IP, a loopback address family),
the nibble tells which.
"""

from __future__ import annotations

import numpy as np

from .capture_file import gather_u8, gather_u16, gather_u32, has_rows, rows_where

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 101, 108
LINKTYPE_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL2 = 113, 228, 229, 276
ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETHERTYPE_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8


def network_layer(data: np.ndarray, start: np.ndarray, linktype: np.ndarray):
    """Where the IP header starts, and its version (0 if the frame is not IP)."""
    n = len(start)
    l3 = np.zeros(n, dtype=np.int64)
    ethertype = np.full(n, -1, dtype=np.int64)  # 0 = "trust the IP version nibble"

    eth = rows_where(linktype == LINKTYPE_ETHERNET)
    if has_rows(eth):
        s = start[eth]
        etype = gather_u16(data, s + 12)
        header = np.full(len(s), 14, dtype=np.int64)
        for _ in range(2):  # a VLAN tag, or two (QinQ): each puts the real type 4 bytes on
            tagged = (etype == ETHERTYPE_VLAN) | (etype == ETHERTYPE_QINQ)
            if not tagged.any():
                break
            etype = np.where(tagged, gather_u16(data, s + header + 2), etype)
            header += 4 * tagged
        ethertype[eth] = etype
        l3[eth] = s + header
    sll = np.flatnonzero(linktype == LINKTYPE_SLL)
    if len(sll):
        ethertype[sll] = gather_u16(data, start[sll] + 14)
        l3[sll] = start[sll] + 16
    sll2 = np.flatnonzero(linktype == LINKTYPE_SLL2)
    if len(sll2):
        ethertype[sll2] = gather_u16(data, start[sll2])
        l3[sll2] = start[sll2] + 20
    raw = np.flatnonzero(np.isin(linktype, (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6)))
    ethertype[raw] = 0
    l3[raw] = start[raw]
    loop = np.flatnonzero(np.isin(linktype, (LINKTYPE_NULL, LINKTYPE_LOOP)))
    if len(loop):
        # The 4-byte address family: NULL is in the capturing host's byte order,
        # LOOP in network order; AF_INET is 2, AF_INET6 is 24, 28 or 30.
        family = gather_u32(data, start[loop], big_endian=False)
        family = np.where(family > 0xFFFF, gather_u32(data, start[loop]), family)
        ethertype[loop] = np.where(np.isin(family, (2, 24, 28, 30)), 0, -1)
        l3[loop] = start[loop] + 4

    nibble = gather_u8(data, l3) >> 4
    claimed = np.select(
        [ethertype == ETHERTYPE_IPV4, ethertype == ETHERTYPE_IPV6, ethertype == 0],
        [4, 6, nibble],
        0,
    )
    version = np.where((nibble == claimed) & ((claimed == 4) | (claimed == 6)), claimed, 0)
    return l3, version
