"""What the kernel thinks: sample the TCP states of the lab's sockets while it runs.

A capture shows the *segments*; this module shows the *states* the two ends were in,
as the Linux kernel reports them in ``/proc/net/tcp`` and ``/proc/net/tcp6``::

    from tcpchatx.sockstate import SocketStateSampler
    with SocketStateSampler([server.port]) as sampler:
        ...                                 # run a scenario
    sampler.transitions_df()                # one row per state change of each socket

Theory of operation
-------------------
* Every line of ``/proc/net/tcp{,6}`` is one socket: local and remote address as hex
  (each 32-bit word in the machine's byte order), ports as big-endian hex, and the
  state as a hex code (:data:`STATE_CODES`).  :func:`parse_proc_net_tcp` turns that
  text into ``(local, remote, state)`` rows; :func:`sample_once` reads both files once.
* A :class:`SocketStateSampler` reads them again every ``interval`` seconds in a
  background thread and keeps **transitions only**: for each socket, identified by
  its ``(local, remote)`` endpoints, the list of ``(wall time, state)`` whenever the
  state changed.  A socket that disappears from the table gets a final ``CLOSED``
  (the kernel forgot it: fully closed, or TIME_WAIT expired).
* Both ends of a loopback connection are sockets on this machine, so both appear:
  the client's socket (local = client port, remote = server port) and the server's
  accepted socket (local = server port, remote = client port).  :func:`role` tells
  them apart from the ports alone.

Sampling, not tracing: a state that lasts less than one sampling period (on loopback
the handshake takes microseconds, so SYN_SENT and SYN_RECV are usually missed) may
never be seen, and a transition is stamped with the time it was *seen*, up to one
period after it happened.  The packets in a capture carry the exact times.  The
period is ``interval`` or the time one read of the table takes, whichever is longer:
the kernel walks its whole connection hash table for every read, which takes from a
fraction of a millisecond to several on a big machine or a VM (``sampler.period``
says what it was).  To *see* an intermediate state, let the scenario pause in it:
:meth:`SocketStateSampler.wait_for` blocks until the sampler has seen a state.

Linux only: macOS and Windows have no ``/proc``; :class:`SocketStateSampler` and
:func:`sample_once` raise :class:`NotImplementedError` there, and the notebooks show a
reference timeline instead.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

#: The kernel's state codes (include/net/tcp_states.h), as /proc/net/tcp writes them.
STATE_CODES: dict[int, str] = {
    0x01: "ESTABLISHED", 0x02: "SYN_SENT", 0x03: "SYN_RECV", 0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2", 0x06: "TIME_WAIT", 0x07: "CLOSE", 0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "NEW_SYN_RECV",
}

#: One line per state, defined once: the notebooks and the plots show these words.
STATE_MEANINGS: dict[str, str] = {
    "LISTEN": "A server socket waiting for connections (accept() takes them from here).",
    "SYN_SENT": "connect() sent a SYN and waits for the SYN-ACK.",
    "SYN_RECV": "A SYN arrived and was answered with a SYN-ACK; waiting for the final ACK.",
    "NEW_SYN_RECV": "Linux's lightweight SYN_RECV: a request socket not yet a full socket.",
    "ESTABLISHED": "The handshake is done: both sides may send data.",
    "FIN_WAIT1": "We closed (sent our FIN) and wait for its ACK.",
    "FIN_WAIT2": "Our FIN was acknowledged; we wait for the peer's FIN (we can still receive).",
    "CLOSE_WAIT": "The peer's FIN arrived; the application has not closed its side yet.",
    "LAST_ACK": "We received the peer's FIN and sent ours; waiting for the ACK of ours.",
    "CLOSING": "Both sides sent a FIN at the same time; waiting for the ACK of ours.",
    "TIME_WAIT": "The active closer's last state: it waits 2 MSL (60 s on Linux) so late "
                 "segments die and its last ACK can be resent.",
    "CLOSE": "Closed: no connection (the kernel is about to forget the socket).",
    "CLOSED": "Gone from the kernel's table: fully closed (or TIME_WAIT expired).",
}

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")
GONE = "CLOSED"  # our name for "the socket left the table"


class SocketKey(NamedTuple):
    """One socket, named by its two endpoints as the kernel sees them from this side."""

    local: tuple[str, int]
    remote: tuple[str, int]


def _address(hex_address: str) -> str:
    """``0100007F`` -> ``127.0.0.1``; IPv4-mapped IPv6 addresses become plain IPv4."""
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    raw = struct.pack(f"={len(words)}I", *words)  # each word is in host byte order
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _endpoint(text: str) -> tuple[str, int]:
    hex_address, hex_port = text.split(":")
    return _address(hex_address), int(hex_port, 16)


def parse_proc_net_tcp(text: str) -> list[tuple[SocketKey, str]]:
    """Parse the text of ``/proc/net/tcp`` or ``/proc/net/tcp6`` into (socket, state) rows."""
    rows = []
    for line in text.splitlines()[1:]:  # the first line is the column header
        fields = line.split()
        if len(fields) < 4:
            continue
        state = STATE_CODES.get(int(fields[3], 16), f"UNKNOWN_{fields[3]}")
        rows.append((SocketKey(_endpoint(fields[1]), _endpoint(fields[2])), state))
    return rows


def role(key: SocketKey, ports: Iterable[int]) -> str:
    """``listener``, ``server`` (an accepted socket) or ``client``, from the ports alone."""
    ports = set(ports)
    if key.local[1] in ports:
        return "listener" if key.remote[1] == 0 else "server"
    return "client"


def _require_linux() -> None:
    if not sys.platform.startswith("linux") or not Path(PROC_FILES[0]).exists():
        raise NotImplementedError(
            "socket-state sampling reads /proc/net/tcp, which only Linux has "
            f"(this is {sys.platform}). The notebook shows a reference timeline instead."
        )


def sample_once(ports: Iterable[int] | None = None, files: Iterable[str] = PROC_FILES) -> dict[SocketKey, str]:
    """The current kernel state of every TCP socket with a local or remote port in ``ports``
    (every TCP socket if ``ports`` is None)."""
    _require_linux()
    wanted = None if ports is None else set(ports)
    states: dict[SocketKey, str] = {}
    for name in files:
        try:
            text = Path(name).read_text()
        except FileNotFoundError:  # a kernel without IPv6
            continue
        for key, state in parse_proc_net_tcp(text):
            if wanted is None or key.local[1] in wanted or key.remote[1] in wanted:
                states[key] = state
    return states


class SocketStateSampler:
    """Sample the kernel's TCP states of the sockets on ``ports`` in a background thread.

    ``transitions`` maps each socket to ``[(wall time, state), ...]``, one entry per
    change (the first entry is the state it was first seen in).  Wall times are
    ``time.time()`` seconds, the same clock as packet timestamps in a capture.
    """

    def __init__(self, ports: Iterable[int], interval: float = 0.002) -> None:
        _require_linux()
        self.ports = tuple(ports)
        self.interval = interval
        self.transitions: dict[SocketKey, list[tuple[float, str]]] = {}
        self.started: float | None = None
        self.stopped: float | None = None
        self.samples = 0
        self.files: tuple[str, ...] = PROC_FILES
        self._current: dict[SocketKey, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()  # notified after every sample

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SocketStateSampler:
        """Take a first sample, then keep sampling in the background."""
        if self._thread is not None:
            raise RuntimeError("this sampler is already running")
        self._stop.clear()
        self.started = time.time()
        self.sample()  # the sockets that already exist are in the table before we return
        self.files = self._files_to_read()
        self._thread = threading.Thread(target=self._run, name="sockstate-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[SocketKey, list[tuple[float, str]]]:
        """Stop sampling (after one last sample); return the transitions."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
            self.stopped = time.time()
        return self.transitions

    def __enter__(self) -> SocketStateSampler:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _files_to_read(self) -> tuple[str, ...]:
        """Only the table of the listeners' family, when every listener on our ports is known.

        Each read walks the kernel's whole connection hash table, which can take
        milliseconds; an IPv4 listener only ever has IPv4 connections (and its clients
        connect over IPv4), so /proc/net/tcp6 need not be read at all.
        """
        listeners = [key for key, state in self._current.items() if state == "LISTEN"]
        if listeners and all(":" not in key.local[0] for key in listeners):
            in_tcp6 = any(":" in key.local[0] for key in self._current)
            return PROC_FILES if in_tcp6 else PROC_FILES[:1]
        return PROC_FILES

    @property
    def period(self) -> float | None:
        """The mean time between samples so far: ``interval``, or the time one read takes
        if that is longer (see the module docstring)."""
        end = self.stopped or time.time()
        return (end - self.started) / max(self.samples - 1, 1) if self.started else None

    def _run(self) -> None:
        # A polling loop is right here: we are sampling a table, not waiting for an event.
        # Fixed rate: if a read took longer than the interval, the next one starts at once.
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.sample()
            next_at = max(next_at + self.interval, time.monotonic())

    # ------------------------------------------------------------------ sampling

    def sample(self) -> None:
        """Read the table once and record what changed since the last read."""
        now_states = sample_once(self.ports, self.files)
        now = time.time()
        with self._changed:
            self.samples += 1
            for key, state in now_states.items():
                if self._current.get(key) != state:
                    self.transitions.setdefault(key, []).append((now, state))
            for key in self._current.keys() - now_states.keys():
                self.transitions[key].append((now, GONE))
            self._current = now_states
            self._changed.notify_all()

    def wait_for(self, state: str, local_port: int | None = None, remote_port: int | None = None,
                 timeout: float = 5.0) -> SocketKey:
        """Block until a socket with these ports has been seen in ``state``; return it.

        For scenarios that must let the kernel reach a state before the next step (for
        example: the server's FIN arrived, so the client sits in CLOSE_WAIT).  Raises
        TimeoutError after ``timeout`` seconds, or at once if the sampler is not running
        and the state was never seen.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for key, changes in self.transitions.items():
                    if ((local_port is None or key.local[1] == local_port)
                            and (remote_port is None or key.remote[1] == remote_port)
                            and any(s == state for _, s in changes)):
                        return key
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    raise TimeoutError(
                        f"no socket (local port {local_port}, remote port {remote_port}) "
                        f"seen in {state} within {timeout:g} s"
                    )
                self._changed.wait(remaining)

    # ------------------------------------------------------------------ results

    def states(self, key: SocketKey) -> list[str]:
        """The states ``key`` went through, in order (e.g. ESTABLISHED, FIN_WAIT2, TIME_WAIT)."""
        with self._changed:
            return [state for _, state in self.transitions.get(key, [])]

    def transitions_df(self):
        """One row per transition: socket, role, time, state and what the state means."""
        with self._changed:
            copy = {key: list(changes) for key, changes in self.transitions.items()}
        return transitions_df(copy, self.ports)


def transitions_df(transitions: dict[SocketKey, list[tuple[float, str]]], ports: Iterable[int]):
    """The transitions as a pandas table (columns below), ordered by time."""
    import pandas as pd

    ports = tuple(ports)
    rows = [
        {"local": key.local[0], "local_port": key.local[1],
         "remote": key.remote[0], "remote_port": key.remote[1],
         "role": role(key, ports), "time": wall, "state": state,
         "meaning": STATE_MEANINGS.get(state, "")}
        for key, changes in transitions.items() for wall, state in changes
    ]
    columns = ["local", "local_port", "remote", "remote_port", "role", "time", "state", "meaning"]
    return pd.DataFrame(rows, columns=columns).sort_values("time", kind="stable").reset_index(drop=True)
