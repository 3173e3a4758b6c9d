"""The link layer of every packet at once: where its network (IP) header starts.

Link types: Ethernet (1), FDDI (10), Linux cooked SLL (113) and SLL2 (276), raw IP
(101, 228, 229), BSD loopback NULL (0, host byte order) and LOOP (108, network byte
order).  A Linux ``lo`` capture is Ethernet with zero MACs; a macOS ``lo0`` capture is
NULL.

Inside an Ethernet frame (or an SLL one, or FDDI's 802.2 header), headers may be
stacked before IP.  Each says what follows it with an EtherType, so we unwrap them in
turn (:data:`UNWRAP_ROUNDS` at most), all frames at once:

- 802.1Q VLAN tags, 802.1ad QinQ (0x8100, 0x88a8, 0x9100): 4 bytes each;
- VN-Tag (0x8926, Cisco's fabric extender tag): 6 bytes;
- 802.1ah provider backbone bridging (0x88e7): a 4-byte I-tag and the customer's own
  two MAC addresses, 18 bytes;
- 802.2 LLC with SNAP (a *length* below 1536 where the EtherType would be, then
  ``aa aa 03``, a 3-byte OUI and the EtherType): 8 bytes; LLC without SNAP is not IP;
- PPPoE session (0x8864): 6 bytes, then PPP's protocol (0x0021 IPv4, 0x0057 IPv6);
- MPLS (0x8847, 0x8848): 4-byte labels until the one marked bottom of stack; what
  follows has no type, so its first nibble says IPv4 (4) or IPv6 (6), as Wireshark
  guesses too.  Anything else (an Ethernet pseudowire) is not decoded.

The IP header's first nibble must agree with what the link says (IPv4 or IPv6);
where the link says just "IP" (raw IP, a loopback address family), the nibble tells
which.  Every frame that does not reach an IP header gets a reason
(:mod:`.skipped`): the link type, the EtherType, the layer it was cut short in.

:mod:`.plain.frames` does the same one frame at a time: read it first.
"""

from __future__ import annotations

import numpy as np

from .capture_file import gather_u8, gather_u16, gather_u32, has_rows, rows_where
from .skipped import Skip, reason

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_FDDI, LINKTYPE_RAW, LINKTYPE_LOOP = 0, 1, 10, 101, 108
LINKTYPE_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_SLL2 = 113, 228, 229, 276
ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, ETHERTYPE_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
ETHERTYPE_QINQ_OLD, ETHERTYPE_VNTAG, ETHERTYPE_PBB = 0x9100, 0x8926, 0x88E7
ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST, ETHERTYPE_PPPOE = 0x8847, 0x8848, 0x8864
VLAN_TAGS = (ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD)
MAX_LENGTH_FIELD = 1535  # an EtherType field below 1536 is an 802.3 length: 802.2 LLC follows
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
UNWRAP_ROUNDS = 8  # headers unwrapped before IP at most (VLAN in PBB in QinQ...)
#: Bytes each wrapper needs before it can be read: VLAN, VN-Tag, PBB, LLC, PPPoE, an MPLS label.
WRAPPER_BYTES = (4, 6, 18, 3, 8, 4)
MPLS_LABELS = 8  # labels in one MPLS stack at most
FDDI_HEADER = 13  # frame control, destination and source addresses
FDDI_PADDING = 3  # some systems' FDDI captures put 3 bytes before the frame control
LLC_SNAP = (0xAA, 0xAA, 0x03)
#: A marker EtherType: "this much is known to be IP; its first nibble says which".
BY_NIBBLE = -2


def link_layer(data: np.ndarray, start: np.ndarray, end: np.ndarray, linktype: np.ndarray):
    """Where the IP header starts, its version (0 if the frame is not IP), and each
    frame's reason not to be (``skipped.reason``; 0 for IP)."""
    n = len(start)
    l3 = np.zeros(n, dtype=np.int64)
    ethertype = np.full(n, -1, dtype=np.int64)  # the EtherType before the payload at l3
    skip = np.zeros(n, dtype=np.int64)

    eth = rows_where(linktype == LINKTYPE_ETHERNET)
    if has_rows(eth):
        ethertype[eth] = gather_u16(data, start[eth] + 12)
        l3[eth] = start[eth] + 14
    fddi = np.flatnonzero(linktype == LINKTYPE_FDDI)
    if len(fddi):  # the 802.2 header follows the MAC header: LLC's own rules apply
        llc = start[fddi] + FDDI_HEADER
        padded = ~_is_snap(data, llc, end[fddi]) & _is_snap(data, llc + FDDI_PADDING, end[fddi])
        l3[fddi] = llc + FDDI_PADDING * padded
        ethertype[fddi] = 0  # "a length": 802.2 LLC follows
    sll = np.flatnonzero(linktype == LINKTYPE_SLL)
    if len(sll):
        ethertype[sll] = gather_u16(data, start[sll] + 14)
        l3[sll] = start[sll] + 16
    sll2 = np.flatnonzero(linktype == LINKTYPE_SLL2)
    if len(sll2):
        ethertype[sll2] = gather_u16(data, start[sll2])
        l3[sll2] = start[sll2] + 20
    raw = np.flatnonzero(np.isin(linktype, (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6)))
    ethertype[raw] = BY_NIBBLE
    l3[raw] = start[raw]
    loop = np.flatnonzero(np.isin(linktype, (LINKTYPE_NULL, LINKTYPE_LOOP)))
    if len(loop):
        # The 4-byte address family: NULL is in the capturing host's byte order,
        # LOOP in network order; AF_INET is 2, AF_INET6 is 24, 28 or 30.
        family = gather_u32(data, start[loop], big_endian=False)
        family = np.where(family > 0xFFFF, gather_u32(data, start[loop]), family)
        is_ip = np.isin(family, (2, 24, 28, 30))
        ethertype[loop] = np.where(is_ip, BY_NIBBLE, -1)
        skip[loop] = np.where(is_ip, 0, reason(Skip.NOT_IP, family & 0xFFFF))
        l3[loop] = start[loop] + 4
    known = np.isin(linktype, (LINKTYPE_ETHERNET, LINKTYPE_FDDI, LINKTYPE_SLL, LINKTYPE_SLL2, LINKTYPE_RAW,
                               LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_NULL, LINKTYPE_LOOP))
    skip[~known] = reason(Skip.LINK_TYPE, linktype[~known].astype(np.int64))
    cut = known & (l3 > end)  # the link header itself runs past the frame
    skip[cut] = reason(Skip.TRUNCATED, 2)
    ethertype[cut] = -1

    _unwrap(data, end, ethertype, l3, skip)

    nibble = np.where(l3 < end, gather_u8(data, l3) >> 4, 0)
    claimed = np.select([ethertype == ETHERTYPE_IPV4, ethertype == ETHERTYPE_IPV6, ethertype == BY_NIBBLE],
                        [4, 6, nibble], 0)
    version = np.where((nibble == claimed) & ((claimed == 4) | (claimed == 6)), claimed, 0)
    pending = skip == 0
    cut = pending & ((l3 > end) | ((claimed > 0) & (l3 >= end)))  # the link's headers run past the frame
    skip[cut] = reason(Skip.TRUNCATED, 2)
    pending &= ~cut
    not_ip = pending & (claimed == 0)
    skip[not_ip] = reason(Skip.NOT_IP, np.maximum(ethertype[not_ip], 0))
    bad = pending & (claimed > 0) & (version == 0)
    skip[bad] = reason(Skip.BAD_IP, nibble[bad])
    smallest = np.where(version == 6, 40, 20)  # the fixed IP header
    short = pending & (version > 0) & (l3 + smallest > end)
    skip[short] = reason(Skip.TRUNCATED, 3)
    version[skip != 0] = 0
    return l3, version, skip


def network_layer(data: np.ndarray, start: np.ndarray, linktype: np.ndarray):
    """Where the IP header starts, and its version (0 if the frame is not IP): the
    first two of :func:`link_layer`, for frames whose ends do not matter here."""
    l3, version, _ = link_layer(data, start, np.full(len(start), np.iinfo(np.int64).max), linktype)
    return l3, version


def _is_snap(data: np.ndarray, at: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether an 802.2 LLC header with SNAP (``aa aa 03``) starts at each position (and
    lies whole before ``end``)."""
    return ((gather_u8(data, at) == LLC_SNAP[0]) & (gather_u8(data, at + 1) == LLC_SNAP[1])
            & (gather_u8(data, at + 2) == LLC_SNAP[2]) & (at + 3 <= end))


def _unwrap(data: np.ndarray, end: np.ndarray, ethertype: np.ndarray, l3: np.ndarray, skip: np.ndarray) -> None:
    """Unwrap the headers between the link and IP (in place): at the end, each frame's
    ``ethertype`` says what is at ``l3``, or ``skip`` why it is not IP."""
    for _ in range(UNWRAP_ROUNDS):
        t, at = ethertype, l3
        groups = [np.flatnonzero(np.isin(t, VLAN_TAGS)), np.flatnonzero(t == ETHERTYPE_VNTAG),
                  np.flatnonzero(t == ETHERTYPE_PBB), np.flatnonzero((t >= 0) & (t <= MAX_LENGTH_FIELD) & (skip == 0)),
                  np.flatnonzero(t == ETHERTYPE_PPPOE),
                  np.flatnonzero((t == ETHERTYPE_MPLS) | (t == ETHERTYPE_MPLS_MULTICAST))]
        if not any(len(rows) for rows in groups):
            return
        # A wrapper cut short by the end of the frame ends the walk (an LLC header needs
        # its 3 bytes to say whether SNAP follows; an MPLS label is 4 bytes).
        for k, (rows, needs) in enumerate(zip(groups, WRAPPER_BYTES, strict=True)):
            short = at[rows] + needs > end[rows]
            if short.any():
                skip[rows[short]] = reason(Skip.TRUNCATED, 2)
                t[rows[short]] = -1
                groups[k] = rows[~short]
        vlan, vntag, pbb, llc, pppoe, mpls = groups
        # Read every header before moving any frame on: each frame is in one group.
        for rows, type_at, length in ((vlan, 2, 4), (vntag, 4, 6), (pbb, 16, 18)):
            if len(rows):
                t[rows] = gather_u16(data, at[rows] + type_at)
                at[rows] += length
        if len(llc):
            snap = _is_snap(data, at[llc], end[llc])
            cut = snap & (at[llc] + 8 > end[llc])  # SNAP's OUI and EtherType cut short
            skip[llc[cut]] = reason(Skip.TRUNCATED, 2)
            t[llc[cut]] = -1
            snap &= ~cut
            with_snap, without = llc[snap], llc[~snap & ~cut]
            skip[without] = reason(Skip.LLC, gather_u16(data, at[without]))
            t[without] = -1
            t[with_snap] = gather_u16(data, at[with_snap] + 6)
            at[with_snap] += 8
        if len(pppoe):
            protocol = gather_u16(data, at[pppoe] + 6)
            t[pppoe] = np.select([protocol == PPP_IPV4, protocol == PPP_IPV6], [ETHERTYPE_IPV4, ETHERTYPE_IPV6], -1)
            other = pppoe[(protocol != PPP_IPV4) & (protocol != PPP_IPV6)]
            skip[other] = reason(Skip.PPP, protocol[(protocol != PPP_IPV4) & (protocol != PPP_IPV6)])
            at[pppoe] += 8
        if len(mpls):
            _pop_labels(data, end, mpls, t, at, skip)
    wrapped = np.flatnonzero(np.isin(ethertype, (*VLAN_TAGS, ETHERTYPE_VNTAG, ETHERTYPE_PBB, ETHERTYPE_PPPOE,
                                                 ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST)) & (skip == 0))
    skip[wrapped] = reason(Skip.TOO_DEEP, ethertype[wrapped])
    ethertype[wrapped] = -1


def _pop_labels(data: np.ndarray, end: np.ndarray, rows: np.ndarray, t: np.ndarray, at: np.ndarray,
                skip: np.ndarray) -> None:
    """Step over each MPLS stack at ``at[rows]``; guess what follows by its first nibble."""
    here = at[rows].copy()
    open_ = np.ones(len(rows), dtype=bool)  # still inside the stack
    cut = np.zeros(len(rows), dtype=bool)
    for _ in range(MPLS_LABELS):
        cut |= open_ & (here + 4 > end[rows])
        open_ &= ~cut
        bottom = (gather_u8(data, here + 2) & 1) == 1
        here += 4 * open_
        open_ &= ~bottom
        if not open_.any():
            break
    skip[rows[cut]] = reason(Skip.TRUNCATED, 2)
    nibble = np.where(here < end[rows], gather_u8(data, here) >> 4, 0)
    t[rows] = np.select([cut, open_, nibble == 4, nibble == 6], [-1, ETHERTYPE_MPLS, ETHERTYPE_IPV4, ETHERTYPE_IPV6], -1)
    other = ~cut & ~open_ & (nibble != 4) & (nibble != 6)
    skip[rows[other]] = reason(Skip.MPLS, nibble[other])
    at[rows] = here
