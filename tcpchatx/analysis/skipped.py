"""Frames that are not read as TCP, and why: counted by kind, never dropped in silence.

A capture made anywhere holds more than TCP over IP: ARP, UDP, a link type or a tunnel
we do not decode, fragments.  Each such frame keeps its row (frame numbers match
Wireshark's) with ``is_tcp`` False, and gets a *reason*: a kind (:class:`Skip`) and a
detail (the link type, the EtherType, the IP protocol...), packed into one integer so
that numpy can count them (:func:`reason`).  :func:`report` turns the counts into
words, for the summary and the JSON.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Skip(IntEnum):
    """Why a frame is not read as a TCP segment."""

    NONE = 0
    LINK_TYPE = 1  # detail: the link type, which we do not decode
    NOT_IP = 2  # detail: the EtherType (ARP, LLDP...: a protocol of its own, or one we do not know)
    LLC = 3  # detail: DSAP << 8 | SSAP, an 802.2 frame without SNAP
    PPP = 4  # detail: the PPP protocol inside PPPoE that is not IP
    MPLS = 5  # detail: the first nibble after the label stack (not 4 or 6: a pseudowire)
    TOO_DEEP = 6  # detail: the EtherType still left after as many headers as we unwrap
    TRUNCATED = 7  # detail: the layer cut short (2: link, 3: IP, 4: TCP)
    BAD_IP = 8  # detail: the version nibble, where the link said IPv4 or IPv6
    FRAGMENT = 9  # detail: the IP version (we do not reassemble fragments)
    TUNNEL = 10  # detail: the IP protocol, or UDP_TUNNEL | port (not decoded: named)
    NOT_TCP = 11  # detail: the IP protocol (UDP, ICMP...)
    BAD_TCP = 12  # detail: the data offset (under 5 words: no TCP header can be that short)


DETAIL_BITS = 32
UDP_TUNNEL = 1 << 16  # a tunnel over UDP, by its port: detail = UDP_TUNNEL | port


def reason(kind: Skip | int, detail) -> np.ndarray | int:
    """A kind and its detail as one integer (numpy arrays, or plain ints)."""
    return (int(kind) << DETAIL_BITS) + detail


def kind_of(code: int) -> Skip:
    return Skip(code >> DETAIL_BITS)


def detail_of(code: int) -> int:
    return code & ((1 << DETAIL_BITS) - 1)


def count(codes: np.ndarray) -> dict[int, int]:
    """How many frames have each reason (NONE left out)."""
    values, counts = np.unique(codes[codes != 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


# --------------------------------------------------------------------------- names


LINK_TYPES = {0: "BSD loopback", 1: "Ethernet", 6: "Token Ring", 9: "PPP", 10: "FDDI", 50: "PPP in HDLC",
              101: "raw IP", 104: "Cisco HDLC", 105: "802.11 Wi-Fi", 108: "OpenBSD loopback",
              113: "Linux cooked", 119: "802.11 with Prism header", 127: "802.11 with radiotap header",
              143: "DOCSIS", 147: "user 0", 163: "802.11 with AVS header", 192: "PPI", 195: "802.15.4",
              201: "Bluetooth HCI", 228: "raw IPv4", 229: "raw IPv6", 249: "netlink", 276: "Linux cooked v2"}
ETHERTYPES = {0x0806: "ARP", 0x8035: "RARP", 0x809B: "AppleTalk", 0x80F3: "AARP", 0x8137: "IPX",
              0x8863: "PPPoE discovery", 0x888E: "802.1X (EAPOL)", 0x88CC: "LLDP", 0x88F7: "PTP",
              0x8809: "slow protocols (LACP)", 0x88E5: "MACsec", 0x8902: "CFM", 0x88B5: "local experimental",
              0x9000: "loopback test", 0x22F0: "AVTP", 0x893A: "IEEE 1905", 0x88A4: "EtherCAT",
              0x8892: "PROFINET", 0x88E3: "MRP", 0x22EA: "SRP", 0x0842: "Wake-on-LAN", 0x8100: "802.1Q VLAN",
              0x88A8: "802.1ad QinQ", 0x8847: "MPLS", 0x8848: "MPLS multicast", 0x8864: "PPPoE session"}
IP_PROTOCOLS = {1: "ICMP", 2: "IGMP", 17: "UDP", 58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP",
                132: "SCTP", 33: "DCCP", 136: "UDP-Lite", 59: "IPv6 no next header"}
TUNNELS = {4: "IP in IP (IPv4 inside)", 41: "IPv6 in IP (6in4)", 47: "GRE", 50: "ESP (IPsec, encrypted)",
           51: "AH (IPsec)", 97: "EtherIP", 115: "L2TPv3", 137: "MPLS in IP", 143: "Ethernet in IPv6"}
UDP_TUNNELS = {4789: "VXLAN", 8472: "VXLAN (Linux's old port)", 6081: "Geneve", 2152: "GTP-U", 3544: "Teredo",
               1701: "L2TP", 4500: "IPsec NAT-T (ESP in UDP)", 4754: "GRE in UDP"}
LAYERS = {2: "the link header", 3: "the IP header", 4: "the TCP header"}

KIND_WORDS = {
    Skip.LINK_TYPE: "link type not decoded", Skip.NOT_IP: "not IP", Skip.LLC: "802.2 LLC without SNAP",
    Skip.PPP: "PPPoE, not IP", Skip.MPLS: "MPLS payload not IP", Skip.TOO_DEEP: "too many headers",
    Skip.TRUNCATED: "cut short", Skip.BAD_IP: "bad IP header", Skip.FRAGMENT: "IP fragment (not reassembled)",
    Skip.TUNNEL: "tunnel not decoded", Skip.NOT_TCP: "not TCP", Skip.BAD_TCP: "bad TCP header",
}


def _what(kind: Skip, detail: int) -> str:
    if kind is Skip.LINK_TYPE:
        return f"{LINK_TYPES.get(detail, 'link type')} ({detail})"
    if kind in (Skip.NOT_IP, Skip.TOO_DEEP):
        return f"{ETHERTYPES.get(detail, 'EtherType')} (0x{detail:04x})"
    if kind is Skip.LLC:
        return f"DSAP 0x{detail >> 8:02x}, SSAP 0x{detail & 0xFF:02x}"
    if kind is Skip.PPP:
        return f"PPP protocol 0x{detail:04x}"
    if kind is Skip.MPLS:
        return "a pseudowire (Ethernet over MPLS)" if detail == 0 else f"first nibble {detail}"
    if kind is Skip.TRUNCATED:
        return LAYERS.get(detail, f"layer {detail}")
    if kind is Skip.BAD_IP:
        return f"version nibble {detail}"
    if kind is Skip.FRAGMENT:
        return f"IPv{detail}"
    if kind is Skip.TUNNEL:
        if detail & UDP_TUNNEL:
            port = detail & 0xFFFF
            return f"{UDP_TUNNELS.get(port, 'UDP tunnel')} (UDP port {port})"
        return f"{TUNNELS.get(detail, 'IP protocol')} (IP protocol {detail})"
    if kind is Skip.NOT_TCP:
        return f"{IP_PROTOCOLS.get(detail, 'IP protocol')} ({detail})"
    if kind is Skip.BAD_TCP:
        return f"data offset {detail} words"
    return str(detail)


def report(counts: dict[int, int]) -> list[dict]:
    """The frames not read as TCP, one entry per reason, most frequent first:
    ``{"kind": "tunnel not decoded", "what": "GRE (IP protocol 47)", "frames": 3}``."""
    rows = []
    for code, frames in counts.items():
        kind = kind_of(code)
        rows.append({"kind": KIND_WORDS[kind], "what": _what(kind, detail_of(code)), "frames": frames})
    return sorted(rows, key=lambda row: (-row["frames"], row["kind"], row["what"]))


def sentence(counts: dict[int, int], limit: int = 6) -> str:
    """The report in one line: ``"3 GRE (IP protocol 47): tunnel not decoded; 2 ARP..."``."""
    rows = report(counts)
    shown = [f"{row['frames']:,} {row['what']}: {row['kind']}" for row in rows[:limit]]
    if len(rows) > limit:
        shown.append(f"{sum(row['frames'] for row in rows[limit:]):,} more of {len(rows) - limit} other kind(s)")
    return "; ".join(shown)
