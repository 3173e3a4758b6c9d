"""Two captures of the same connections, read side by side: which packet is which.

The lab network records every connection twice (docs/netlab.md): the *client view*,
captured on the client host's link, and the *server view*, captured on the server
host's.  A packet the client sends appears in the client view as it leaves, and in
the server view as it arrives - unless the router lost it.  Putting the two views
side by side shows what no single capture can: which packets the network lost.

Theory of operation
-------------------
1. **Read.**  Each view is read (:func:`tcpchatx.analysis.analyze`), and Wireshark's
   expert analysis runs over it (:mod:`tcpchatx.analysis.expert`).  Every TCP packet
   becomes a small :class:`Packet` record: from here on it is plain Python.
2. **Connections.**  The router does not translate addresses, so one connection has
   the same four-tuple (addresses and ports) in both views.  A four-tuple may hold
   several connections in turn (a port used again); those are paired by the
   client's initial sequence number when both views saw the SYN, else in order.
3. **Segments.**  A packet is the same in both views when its sender, sequence and
   acknowledgement numbers, flags, length, IP ID and TCP timestamp value all agree.
   The last two tell *copies* of a segment apart: Linux gives every packet of a
   connection the next IP ID, and a resend carries a new timestamp.  Packets that
   still look identical (IPv6 has no IP ID) are paired in order, first with first.
4. **Sides.**  Which view was captured next to a packet's sender?  Every router on
   the way lowers the IP TTL by one, so the copy with the higher TTL is the one seen
   before the router: that view is the sender's.  (When the TTLs agree, no router
   stood between the two captures, and the view that saw the packet first is taken.)
5. **Clocks.**  For each direction, the shortest time from one view to the other
   (a packet that waited in no queue) is the one-way delay plus the difference of
   the two capture clocks.  Assuming both ways take as long, half the difference of
   the two directions is the clocks' offset (as NTP estimates it).  Here both
   captures run on one machine: the offset is about 0, and the delays are the
   router's few microseconds.

It is the readable way, for lab-sized captures: a Python object per packet.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

from ..tcp_flags import ACK, FIN, SYN
from .capture_file import as_array, gather_u8, gather_u16
from .link import network_layer
from .run import analyze

Endpoint = tuple[str, int]  # (address, port)
VIEWS = ("client", "server")  # the two capture points, in the order explain() takes them


@dataclass(frozen=True)
class Packet:
    """One TCP packet of one view: what the pairing and the "why" need of it."""

    view: str  # "client" or "server": the capture it is in
    frame: int  # its frame number in that capture (1-based, as Wireshark counts)
    time: float  # seconds since 1970, on that capture's clock
    nanoseconds: int  # the same instant, exact: for comparisons made to the nanosecond, as Wireshark's
    conn: int  # connection id within that capture
    sender: Endpoint
    receiver: Endpoint
    seq: int  # raw sequence number
    ack: int  # raw acknowledgement number
    rel_seq: int  # relative to the sender's ISN, as Wireshark shows it
    rel_ack: int
    flags: int  # tcpchatx.tcp_flags bits
    length: int  # TCP payload bytes
    ip_id: int | None  # None: IPv6 has no IP ID
    ttl: int  # the IPv4 TTL or IPv6 hop limit
    tsval: int | None  # TCP timestamp value, None without the option
    sack: tuple[tuple[int, int], ...]  # SACK blocks (raw edges), empty without
    events: tuple[str, ...]  # the expert analysis's findings (analysis.plain.expert.EVENTS)

    @property
    def rel_end(self) -> int:
        """Just past the last sequence number it uses (SYN and FIN count one each)."""
        return self.rel_seq + self.length + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    @property
    def uses_sequence(self) -> bool:
        """It carries data, a SYN or a FIN: something the peer must acknowledge."""
        return self.rel_end > self.rel_seq

    def identity(self) -> tuple:
        """What is the same in both views for one copy of a packet (part 3)."""
        return (self.sender, self.receiver, self.seq, self.ack, self.flags, self.length, self.ip_id, self.tsval)


@dataclass
class ConnectionPair:
    """One connection as both views saw it."""

    client: Endpoint  # the originator's address and port
    server: Endpoint
    packets: dict[str, list[Packet]]  # view -> its packets of this connection, in capture order
    twin: dict[tuple[str, int], Packet] = field(default_factory=dict)  # (view, frame) -> the other copy
    near: dict[Endpoint, str] = field(default_factory=dict)  # sender -> the view captured next to it

    def twin_of(self, packet: Packet) -> Packet | None:
        """The same copy of ``packet`` in the other view, or None if that view lacks it."""
        return self.twin.get((packet.view, packet.frame))

    def sender_view(self, packet: Packet) -> str:
        return self.near.get(packet.sender, "client" if packet.sender == self.client else "server")

    def sent_by(self, sender: Endpoint, view: str) -> list[Packet]:
        """The packets ``sender`` sent, as ``view`` saw them."""
        return [p for p in self.packets[view] if p.sender == sender]


@dataclass
class Pairing:
    """The two views of the same connections, matched."""

    paths: dict[str, str]  # view -> capture path
    connections: list[ConnectionPair]
    only_in: dict[str, list[tuple[Endpoint, Endpoint]]]  # connections one view alone has
    transit: dict[str, float | None]  # side that sent -> least seconds to the other view
    clock_offset: float | None  # server view's clock minus client view's, estimated (part 5)


def pair_views(client_view: str | os.PathLike, server_view: str | os.PathLike) -> Pairing:
    """Read both captures and match their connections and packets (parts 1 to 5)."""
    paths = {"client": os.fspath(client_view), "server": os.fspath(server_view)}
    packets = {view: read_view(view, path) for view, path in paths.items()}
    connections, only_in = _pair_connections(packets)
    for pair in connections:
        _pair_segments(pair)
        _find_sides(pair)
    transit = {side: _least_transit(connections, side) for side in VIEWS}
    offset = None
    if transit["client"] is not None and transit["server"] is not None:
        offset = (transit["client"] - transit["server"]) / 2
    return Pairing(paths, connections, only_in, transit, offset)


# --------------------------------------------------------------------------- 1. read


def read_view(view: str, path: str | os.PathLike) -> list[Packet]:
    """Every tracked TCP packet of one capture, with its expert findings."""
    a = analyze(path)
    p, t, expert = a.packets, a.tracking, a.expert
    ip_id, ttl = _ip_id_and_ttl(p)
    out = []
    for row in np.flatnonzero(t.conn >= 0).tolist():
        options = p.tcp_options(row)
        out.append(Packet(
            view=view, frame=int(p.frame[row]), time=float(p.seconds(row)), nanoseconds=p.nanoseconds(row),
            conn=int(t.conn[row]),
            sender=(p.addresses[p.src[row]], int(p.sport[row])),
            receiver=(p.addresses[p.dst[row]], int(p.dport[row])),
            seq=int(p.seq[row]), ack=int(p.ack[row]), rel_seq=int(t.rel_seq[row]), rel_ack=int(t.rel_ack[row]),
            flags=int(p.flags[row]), length=int(p.payload_len[row]),
            ip_id=None if ip_id[row] < 0 else int(ip_id[row]), ttl=int(ttl[row]),
            tsval=options.get("tsval"), sack=tuple(options.get("sack", ())),
            events=tuple(expert.names(row)),
        ))
    return out


def _ip_id_and_ttl(p) -> tuple[np.ndarray, np.ndarray]:
    """Every frame's IP ID (-1 where there is none: IPv6, not IP) and TTL or hop limit.

    The packet columns leave these two out (the rest of the analysis needs neither),
    so they are read here from the IP header, which starts where the link layer ends.
    """
    data = as_array(p.buffer)
    l3, version = network_layer(data, p.index.data_offset, p.index.linktype)
    ip_id = np.where(version == 4, gather_u16(data, l3 + 4), -1)  # IPv4: bytes 4-5
    ttl = np.select([version == 4, version == 6], [gather_u8(data, l3 + 8), gather_u8(data, l3 + 7)], -1)
    return ip_id, ttl


# --------------------------------------------------------------------------- 2. connections


def _pair_connections(packets: dict[str, list[Packet]]):
    """Connections with the same four-tuple in both views (part 2)."""
    by_tuple: dict[str, dict[frozenset, list[list[Packet]]]] = {}
    for view, view_packets in packets.items():
        by_conn: dict[int, list[Packet]] = defaultdict(list)
        for packet in view_packets:
            by_conn[packet.conn].append(packet)
        tuples: dict[frozenset, list[list[Packet]]] = defaultdict(list)
        for conn in sorted(by_conn):  # in order of first packet
            first = by_conn[conn][0]
            tuples[frozenset((first.sender, first.receiver))].append(by_conn[conn])
        by_tuple[view] = tuples
    pairs, only_in = [], {view: [] for view in VIEWS}
    for four_tuple in by_tuple["client"].keys() | by_tuple["server"].keys():
        ours, theirs = by_tuple["client"].get(four_tuple, []), by_tuple["server"].get(four_tuple, [])
        matched, left = _match_in_turn(ours, theirs)
        for in_client, in_server in matched:
            client, server = _ends(in_client)
            pairs.append(ConnectionPair(client, server, {"client": in_client, "server": in_server}))
        for view, packet_lists in left.items():
            only_in[view] += [_ends(conn) for conn in packet_lists]
    pairs.sort(key=lambda pair: pair.packets["client"][0].frame)
    return pairs, only_in


def _match_in_turn(ours: list[list[Packet]], theirs: list[list[Packet]]):
    """Pair the connections of one four-tuple: by the client's ISN where both views saw
    a SYN, the others in order of appearance."""
    matched, left_ours, left_theirs = [], [], list(theirs)
    for conn in ours:
        isn = _client_isn(conn)
        same = next((other for other in left_theirs if isn is not None and _client_isn(other) == isn), None)
        if same is not None:
            matched.append((conn, same))
            left_theirs.remove(same)
        else:
            left_ours.append(conn)
    in_order = list(zip(left_ours, left_theirs))
    matched += in_order
    return matched, {"client": left_ours[len(in_order):], "server": left_theirs[len(in_order):]}


def _client_isn(conn: list[Packet]) -> int | None:
    """The sequence number of the connection's first SYN (the originator's ISN), if seen."""
    return next((p.seq for p in conn if p.flags & (SYN | ACK) == SYN), None)


def _ends(conn: list[Packet]) -> tuple[Endpoint, Endpoint]:
    """(originator, responder): the sender of the first SYN, or of the first packet."""
    first = next((p for p in conn if p.flags & (SYN | ACK) == SYN), conn[0])
    return first.sender, first.receiver


# --------------------------------------------------------------------------- 3. segments


def _pair_segments(pair: ConnectionPair) -> None:
    """Match each packet of one view to the same copy in the other (part 3)."""
    waiting: dict[tuple, deque[Packet]] = defaultdict(deque)
    for packet in pair.packets["server"]:
        waiting[packet.identity()].append(packet)
    for packet in pair.packets["client"]:
        copies = waiting.get(packet.identity())
        if copies:
            other = copies.popleft()  # identical copies: first with first
            pair.twin[packet.view, packet.frame] = other
            pair.twin[other.view, other.frame] = packet


# --------------------------------------------------------------------------- 4. sides


def _find_sides(pair: ConnectionPair) -> None:
    """For each end, the view captured next to it (part 4)."""
    for sender in (pair.client, pair.server):
        seen = [(p, pair.twin_of(p)) for p in pair.sent_by(sender, "client") if pair.twin_of(p)]
        if not seen:
            continue
        ttl_here = statistics.median(p.ttl for p, _ in seen)
        ttl_there = statistics.median(other.ttl for _, other in seen)
        if ttl_here != ttl_there:
            pair.near[sender] = "client" if ttl_here > ttl_there else "server"
        else:  # no router between the captures: the view that saw it first
            later_there = statistics.median(other.time - p.time for p, other in seen)
            pair.near[sender] = "client" if later_there >= 0 else "server"


# --------------------------------------------------------------------------- 5. clocks


def _least_transit(connections: list[ConnectionPair], side: str) -> float | None:
    """The shortest time from the ``side`` view to the other view, of packets sent on
    that side: the one-way delay plus the clocks' difference (part 5)."""
    delays = [pair.twin_of(p).time - p.time
              for pair in connections for p in pair.packets[side]
              if pair.sender_view(p) == side and pair.twin_of(p) is not None]
    return min(delays) if delays else None
