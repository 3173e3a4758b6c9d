"""TCP's inner state, as the kernel keeps it: ``getsockopt(TCP_INFO)`` on a socket.

A capture shows what went on the wire; the kernel also knows what the sender
thought: its congestion window (``snd_cwnd``, in segments) and slow-start threshold,
its smoothed RTT and variation, the retransmission timeout it computed, how many
segments are unacknowledged, SACKed or lost, and its congestion state.  Sampled
over time on the capture's clock (``time.time()``, the clock dumpcap stamps packets
with), these put numbers beside every packet.

:func:`tcp_info` reads one socket once; :class:`Sampler` reads some sockets every few
milliseconds on a thread of its own until stopped.  Linux only: other systems have
their own, different structure (macOS: ``TCP_CONNECTION_INFO``).
"""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
import sys
import time

from .sampling import Periodic

TCP_INFO = getattr(socket, "TCP_INFO", 11)
SIOCINQ, SIOCOUTQ = 0x541B, 0x5411  # bytes waiting to be read / not yet acknowledged (ioctl)

#: ``struct tcp_info`` (linux/tcp.h) up to ``snd_wnd``, field by field: (name, struct code).
FIELDS = (
    [(name, "B") for name in ("state", "ca_state", "retransmits", "probes", "backoff", "options",
                              "wscales", "flags")]
    + [(name, "I") for name in (
        "rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
        "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
        "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering",
        "rcv_rtt", "rcv_space", "total_retrans")]
    + [(name, "Q") for name in ("pacing_rate", "max_pacing_rate", "bytes_acked", "bytes_received")]
    + [(name, "I") for name in ("segs_out", "segs_in", "notsent_bytes", "min_rtt", "data_segs_in",
                                "data_segs_out")]
    + [(name, "Q") for name in ("delivery_rate", "busy_time", "rwnd_limited", "sndbuf_limited")]
    + [(name, "I") for name in ("delivered", "delivered_ce")]
    + [(name, "Q") for name in ("bytes_sent", "bytes_retrans")]
    + [(name, "I") for name in ("dsack_dups", "reord_seen", "rcv_ooopack", "snd_wnd")]
)
#: The congestion states of ``ca_state`` (linux/tcp.h, enum tcp_ca_state).
CA_STATES = ("Open", "Disorder", "CWR", "Recovery", "Loss")
#: Fields in microseconds (``rto``, ``rtt``...), which :func:`tcp_info` gives in seconds.
MICROSECONDS = ("rto", "ato", "rtt", "rttvar", "rcv_rtt", "min_rtt")
_LAYOUT = "=" + "".join(code for _, code in FIELDS)
#: How many times tcp_info reads TCP_INFO again when the send queue moved meanwhile.
SAME_QUEUE_ATTEMPTS = 10


def tcp_info(sock: socket.socket) -> dict[str, float | int | str]:
    """The kernel's view of one TCP socket now (the fields this kernel fills in), plus
    its send and receive queues in bytes (``send_queue``, ``receive_queue``)."""
    if not sys.platform.startswith("linux"):
        raise OSError(f"TCP_INFO as read here is Linux's; this is {sys.platform}")
    raw, send_queue = _one_moment(sock)
    values: dict[str, float | int | str] = {}
    offset = 0
    for name, code in FIELDS:
        size = struct.calcsize("=" + code)
        if offset + size > len(raw):
            break  # an older kernel: the fields it knows
        values[name] = struct.unpack_from("=" + code, raw, offset)[0]
        offset += size
    for name in MICROSECONDS:
        if name in values:
            values[name] = values[name] / 1e6
    values["ca_state_name"] = CA_STATES[values["ca_state"]] if values["ca_state"] < len(CA_STATES) else "?"
    values["send_queue"] = send_queue
    values["receive_queue"] = _queue(sock, SIOCINQ)
    return values


def _one_moment(sock: socket.socket) -> tuple[bytes, int]:
    """TCP_INFO and the send queue, as they were at one moment.

    The send queue comes from a second call (an ioctl), and a write or an ACK between
    the two would pair one moment's queue with another moment's ``notsent_bytes``: the
    bytes in flight (the queue less what is not sent yet) would be off by what was
    written or acknowledged meanwhile (once 40 KB, beyond the receiver's window, on a
    busy machine).  So the queue is read on both sides of TCP_INFO, again until it
    stood still (a write and an ACK of the same size in between would still pass
    unseen), at most SAME_QUEUE_ATTEMPTS times: then the last pair is taken."""
    for _ in range(SAME_QUEUE_ATTEMPTS):
        before = _queue(sock, SIOCOUTQ)
        raw = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, struct.calcsize(_LAYOUT))
        after = _queue(sock, SIOCOUTQ)
        if before == after:
            break
    return raw, after


def _queue(sock: socket.socket, request: int) -> int:
    fd = sock.fileno()
    if fd < 0:  # closed, perhaps by another thread meanwhile: an OSError, as getsockopt would raise
        raise OSError(errno.EBADF, "the socket is closed")
    return struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0]


class Sampler(Periodic):
    """Reads TCP_INFO of named sockets every ``interval`` seconds on its own thread.

    Use as a context manager around what should be watched; ``samples`` then holds
    one dict per reading: ``time`` (seconds since 1970, the capture's clock), ``name``
    and the fields.  A socket that was closed meanwhile is simply no longer read.
    """

    def __init__(self, sockets: dict[str, socket.socket], interval: float = 0.005) -> None:
        super().__init__(interval)
        self.sockets = sockets

    def sample_once(self) -> None:
        for name, sock in self.sockets.items():
            try:
                values = tcp_info(sock)
            except OSError:  # closed meanwhile
                continue
            self.samples.append({"time": time.time(), "name": name, **values})
