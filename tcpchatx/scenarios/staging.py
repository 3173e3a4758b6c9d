"""Stage-managing the kernel: wait for TCP states, hold the server back, hide a FIN.

Some closes have a shape that depends on timing.  Linux delays the ACK of a FIN
(receiving a FIN switches a socket into delayed-ACK "pingpong" mode, for about
40 ms on loopback), so whether that ACK travels alone or rides on the next FIN
depends on how fast the application closes.  The stories never *sleep* to get
the shape they want; they wait for the kernel state that makes it certain:

* :func:`wait_tcp_state` polls ``/proc/net/tcp`` (with a deadline) until a socket
  reaches a state, e.g. ``FIN_WAIT2``: "its FIN was sent *and acknowledged*".
  Closed sockets are listed too, until they are gone.
* :class:`Gates` plugs into the server's ``on_event`` hook and holds the server's
  thread at a chosen timeline event (say, just before it answers EOF with its own
  FIN) until a condition holds.
* :func:`drop_incoming_fins` attaches a classic BPF socket filter that makes the
  kernel ignore segments carrying a FIN.  They are still on the wire (the capture
  records them); TCP simply retransmits them later.  This is how the simultaneous
  close story makes two FINs cross on a loopback where nothing is ever in flight.

Everything here is Linux-specific (``/proc/net/tcp``, ``SO_ATTACH_FILTER``); on other
systems :func:`wait_tcp_state` falls back to waiting :data:`FALLBACK_WAIT` seconds,
longer than any delayed ACK, and says so in the story's notes.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..timeline import TimelineEvent

Address = tuple[str, int]

#: The kernel's TCP states, as numbered in ``/proc/net/tcp`` (include/net/tcp_states.h).
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}
STATE_NUMBERS = {name: number for number, name in TCP_STATES.items()}
#: States in which a connection has nothing more to say on the wire.
SETTLED = frozenset({"TIME_WAIT", "CLOSE", None})
PROC_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
POLL_INTERVAL = 0.002  # seconds between two looks at /proc/net/tcp
FALLBACK_WAIT = 0.25  # seconds; longer than Linux's (200 ms), macOS's and Windows' delayed ACK
DEFAULT_TIMEOUT = 5.0


class StagingError(RuntimeError):
    """The kernel did not reach the state a story needs within the deadline."""


# --------------------------------------------------------------------------- /proc/net/tcp


def can_watch_tcp_states() -> bool:
    return PROC_TABLES[0].exists()


def _proc_address(text: str) -> Address:
    """``0100007F:1F90`` -> ("127.0.0.1", 8080); IPv6 addresses are four host-order words."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


class TcpSocket(NamedTuple):
    """One line of ``/proc/net/tcp``: a socket's state and its queues."""

    state: str
    unacked: int  # bytes sent (or queued) but not yet acknowledged (for LISTEN: the backlog)
    unread: int  # bytes received but not yet read by the application


def tcp_sockets(ipv6: bool | None = None) -> dict[tuple[Address, Address], TcpSocket]:
    """Every TCP socket of this network namespace: (local, remote) -> TcpSocket.

    ``ipv6`` True or False reads only that table (the kernel walks its whole
    connection table for each read, a few milliseconds).
    """
    sockets: dict[tuple[Address, Address], TcpSocket] = {}
    tables = PROC_TABLES if ipv6 is None else PROC_TABLES[1:] if ipv6 else PROC_TABLES[:1]
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            tx_queue, rx_queue = fields[4].split(":")
            state = TCP_STATES.get(int(fields[3], 16), fields[3])
            key = (_proc_address(fields[1]), _proc_address(fields[2]))
            sockets[key] = TcpSocket(state, int(tx_queue, 16), int(rx_queue, 16))
    return sockets


def tcp_socket(local: Address, remote: Address) -> TcpSocket | None:
    """The kernel's view of the socket (local -> remote), or None if there is none."""
    return tcp_sockets(ipv6=":" in local[0]).get((tuple(local), tuple(remote)))  # type: ignore[arg-type]


def tcp_state(local: Address, remote: Address) -> str | None:
    """The kernel state of the socket (local -> remote), or None if there is none."""
    found = tcp_socket(local, remote)
    return found.state if found else None


def poll(condition: Callable[[], bool], what: str, timeout: float = DEFAULT_TIMEOUT,
         cancelled: threading.Event | None = None) -> None:
    """Return once ``condition()`` holds; StagingError after ``timeout`` seconds (or if cancelled)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if cancelled is not None and cancelled.is_set():
            raise StagingError(f"cancelled while waiting for {what}")
        if time.monotonic() > deadline:
            raise StagingError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def wait_tcp_state(local: Address, remote: Address, states: Iterable[str | None],
                   timeout: float = DEFAULT_TIMEOUT, cancelled: threading.Event | None = None,
                   notes: list[str] | None = None) -> None:
    """Wait until the socket (local -> remote) is in one of ``states`` (None: gone).

    Without ``/proc/net/tcp`` we cannot look, so we wait :data:`FALLBACK_WAIT`
    seconds instead and add a line to ``notes``.
    """
    wanted = set(states)
    if not can_watch_tcp_states():
        if notes is not None:
            notes.append(f"no /proc/net/tcp: waited {FALLBACK_WAIT:g} s instead of watching "
                         f"{local[0]}:{local[1]} reach {'/'.join(map(str, wanted))}")
        time.sleep(FALLBACK_WAIT)
        return
    what = (f"the socket {local[0]}:{local[1]} -> {remote[0]}:{remote[1]} to reach "
            f"{' or '.join(map(str, wanted))}")
    try:
        poll(lambda: tcp_state(local, remote) in wanted, what, timeout, cancelled)
    except StagingError as error:
        raise StagingError(f"{error}; it is {tcp_state(local, remote)}") from None


def wait_acknowledged(local: Address, remote: Address, timeout: float = DEFAULT_TIMEOUT,
                      cancelled: threading.Event | None = None, notes: list[str] | None = None) -> None:
    """Wait until the peer has acknowledged every byte the socket (local -> remote) sent."""
    if not can_watch_tcp_states():
        if notes is not None:
            notes.append(f"no /proc/net/tcp: waited {FALLBACK_WAIT:g} s for an ACK instead of watching")
        time.sleep(FALLBACK_WAIT)
        return

    def acknowledged() -> bool:
        found = tcp_socket(local, remote)
        return found is not None and found.unacked == 0

    poll(acknowledged, f"the peer of {local[0]}:{local[1]} to acknowledge everything it sent",
         timeout, cancelled)


def wait_settled(pairs: Iterable[tuple[Address, Address]], timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until both ends of every connection have nothing more to send.

    A close is finished on the wire once each end is in TIME_WAIT, CLOSE or gone;
    before that a FIN may still be retransmitted, and the capture should hold it.
    """
    if not can_watch_tcp_states():
        time.sleep(FALLBACK_WAIT)
        return
    ends = [end for a, b in pairs for end in ((a, b), (b, a))]
    if not ends:
        return

    def settled() -> bool:
        sockets = tcp_sockets(ipv6=":" in ends[0][0][0])
        return all((sockets[end].state if end in sockets else None) in SETTLED for end in ends)

    poll(settled, "every connection of the story to finish closing", timeout)


#: Counters in Linux's ``struct tcp_info`` (linux/tcp.h) and their byte offsets (Linux 4.6+).
TCP_INFO_COUNTERS = {"segs_out": 136, "segs_in": 140, "data_segs_in": 152, "data_segs_out": 156}


def tcp_counter(sock: socket.socket, name: str) -> int | None:
    """One ``TCP_INFO`` counter of ``sock`` (e.g. ``segs_in``: segments received), or None
    where ``TCP_INFO`` is not available."""
    offset = TCP_INFO_COUNTERS[name]
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):
        return None
    return struct.unpack_from("I", info, offset)[0] if len(info) >= offset + 4 else None


# --------------------------------------------------------------------------- a socket filter

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)  # Linux values
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)


class _SockFilter(ctypes.Structure):  # struct sock_filter
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):  # struct sock_fprog
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


# A TCP socket's filter sees the segment from its TCP header on; byte 13 holds the flags.
_DROP_FIN = (_SockFilter * 4)(
    _SockFilter(0x30, 0, 0, 13),  # ldb [13]          A = TCP flags
    _SockFilter(0x45, 1, 0, 0x01),  # jset #0x01, drop   FIN bit set?
    _SockFilter(0x06, 0, 0, 0xFFFFFFFF),  # ret #-1     keep the whole segment
    _SockFilter(0x06, 0, 0, 0),  # drop: ret #0          ignore it
)
_DROP_FIN_PROGRAM = _SockFprog(len(_DROP_FIN), _DROP_FIN)


def drop_incoming_fins(sock: socket.socket) -> None:
    """Make the kernel ignore every segment with a FIN that arrives on ``sock``.

    The segment is on the wire and in the capture; the receiving TCP never sees it,
    exactly as if the network had lost it, so the sender retransmits it later.
    Any user may filter their own socket (no privileges needed). Linux only.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(_DROP_FIN_PROGRAM))
    except OSError as error:
        raise StagingError(f"cannot attach a socket filter here ({error}); "
                           "this story needs Linux") from None


def accept_fins_again(sock: socket.socket) -> None:
    """Remove the filter of :func:`drop_incoming_fins`."""
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, struct.pack("i", 0))


# --------------------------------------------------------------------------- holding the server


@dataclass
class _Gate:
    what: str
    matches: Callable[[TimelineEvent], bool]
    until: Callable[[threading.Event], None]  # returns when the server may go on
    used: bool = False


class Gates:
    """Hold the server's thread at chosen timeline events: a ChatServer ``on_event`` hook.

    ``gates.hold(what, matches, until)``: the first event for which ``matches(event)``
    is true makes the thread that recorded it call ``until(cancelled)`` before going
    on.  Events are recorded just *before* the server acts on them (a ``left`` event
    comes before the server's FIN, a ``line-received`` before the room answers), so a
    gate delays exactly that action.  The server may hold its room lock meanwhile, so
    ``until`` must only watch the kernel or an Event, and must return within seconds.
    Failures are collected in :attr:`errors` (a server thread must not raise).
    """

    def __init__(self) -> None:
        self._gates: list[_Gate] = []
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        self.errors: list[str] = []

    def hold(self, what: str, matches: Callable[[TimelineEvent], bool],
             until: Callable[[threading.Event], None]) -> None:
        with self._lock:
            self._gates.append(_Gate(what, matches, until))

    def __call__(self, event: TimelineEvent) -> None:
        with self._lock:
            gate = next((g for g in self._gates if not g.used and g.matches(event)), None)
            if gate is not None:
                gate.used = True
        if gate is None:
            return
        try:
            gate.until(self.cancelled)
        except Exception as error:  # noqa: BLE001 - reported by the story, not by a server thread
            self.errors.append(f"{gate.what}: {error}")

    def unused(self) -> list[str]:
        with self._lock:
            return [g.what for g in self._gates if not g.used]

    def cancel(self) -> None:
        """Let every held thread go at once (the story failed; we are cleaning up)."""
        self.cancelled.set()


def wait_event(flag: threading.Event, what: str,
               timeout: float = DEFAULT_TIMEOUT) -> Callable[[threading.Event], None]:
    """A gate condition: until ``flag`` is set (the story's main thread says so)."""

    def until(cancelled: threading.Event) -> None:
        poll(flag.is_set, what, timeout, cancelled)

    return until


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it; we let it go again)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
