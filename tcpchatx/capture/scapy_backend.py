"""Capture with scapy's listening socket, in a thread of this process.

Theory of operation
-------------------
*Ready.* The socket is opened, filtered and bound inside ``start()`` itself, so the
kernel queues every matching packet from the moment ``start()`` returns; the reader
thread merely empties that queue.

*No double counting.* On Linux a packet socket sees each loopback packet twice: once
as it leaves (``PACKET_OUTGOING``) and once as it comes back in. scapy's
``L2ListenSocket`` keeps both, so a refused connect shows up as SYN, SYN, RST, RST.
libpcap (and so dumpcap) hides the outgoing copy on loopback; we do the same in the
kernel by prefixing the BPF filter with ``inbound``, which libpcap compiles to a test
of the packet type.

*Flushed.* ``stop()`` tells the thread to finish, and the thread then drains whatever
is still queued before closing the file, so every packet sent before ``stop()`` is in it.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from .backend import BackendStats
from .errors import CaptureError, CapturePermissionError
from .interfaces import is_loopback
from .pcapng import SNAPLEN, PcapngWriter

_SOL_PACKET = 263
_PACKET_STATISTICS = 6  # struct tpacket_stats { unsigned tp_packets, tp_drops; }
_QUEUE_BYTES = 4 << 20
_POLL = 0.05  # seconds the reader waits for packets before checking for stop()


class ScapyBackend:
    """A scapy listening socket plus a reader thread writing pcapng."""

    name = "scapy"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._sock: Any = None  # a scapy SuperSocket
        self._writer: PcapngWriter | None = None
        self.packets = 0

    def start(self, interface: str, capture_filter: str, temporary: Path) -> None:
        try:
            from scapy.all import conf
            from scapy.data import DLT_EN10MB
        except ImportError as exc:  # pragma: no cover - scapy is a dependency
            raise CaptureError("scapy is not installed: `pip install scapy`") from exc
        kernel_filter = capture_filter
        if sys.platform.startswith("linux") and is_loopback(interface):
            kernel_filter = f"inbound and ({capture_filter})"
        try:
            self._sock = conf.L2listen(iface=interface, filter=kernel_filter)
        except OSError as exc:
            if isinstance(exc, PermissionError) or exc.errno in (errno.EPERM, errno.EACCES):
                raise CapturePermissionError(f"scapy: {exc}", interface) from exc
            raise CaptureError(f"scapy cannot listen on {interface!r}: {exc}") from exc
        except Exception as exc:  # scapy says "Interface not found" or "Cannot set filter"
            raise CaptureError(
                f"scapy cannot listen on {interface!r} with filter {kernel_filter!r}: {exc}"
            ) from exc
        _enlarge_buffer(self._sock)
        _kernel_drops(self._sock)  # reading resets the counters: forget drops from before the filter
        linktype = conf.l2types.layer2num.get(getattr(self._sock, "LL", None), DLT_EN10MB)
        self._writer = PcapngWriter(temporary, linktype, interface, capture_filter,
                                    application="tcpchatx (scapy backend)")
        self._thread = threading.Thread(target=self._run, name="scapy-capture", daemon=True)
        self._thread.start()

    def stop(self) -> BackendStats:
        assert self._thread is not None, "start() first"
        self._stopping.set()
        self._thread.join()
        dropped = _kernel_drops(self._sock)
        self.abort()
        if self._error is not None:
            raise CaptureError(f"scapy capture failed: {self._error}") from self._error
        return BackendStats(packets=self.packets, dropped=dropped)

    def abort(self) -> None:
        """Stop reading and close everything, whatever state start() reached (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for part in (self._sock, self._writer):
            if part is not None:
                part.close()

    def _run(self) -> None:
        select = type(self._sock).select
        try:
            while not self._stopping.is_set():
                if select([self._sock], _POLL):
                    self._take_one()
            while select([self._sock], 0) and self._take_one():
                pass  # drain what the kernel queued before stop()
        except BaseException as exc:  # reported by stop()
            self._error = exc

    def _take_one(self) -> bool:
        """Move one queued packet to the file; False if there was none after all."""
        _layer, data, timestamp = self._sock.recv_raw(SNAPLEN)  # loopback's 64 KiB segments fit whole
        if data is None:
            return False
        assert self._writer is not None
        self._writer.write(data, timestamp)
        self.packets += 1
        return True


def _enlarge_buffer(sock: object) -> None:
    """Give the socket a 4 MiB queue, as dumpcap's ring has 2 MiB.

    scapy asks for 64 KiB, which holds only a couple of loopback's 64 KiB segments: a
    150 kB burst lost up to 6 of 30 packets before this. SO_RCVBUFFORCE passes the
    system limit (net.core.rmem_max) but needs CAP_NET_ADMIN; plain SO_RCVBUF is capped.
    """
    ins = getattr(sock, "ins", None)
    if not isinstance(ins, socket.socket):
        return
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            ins.setsockopt(socket.SOL_SOCKET, option, _QUEUE_BYTES)
            return
        except OSError:
            continue


def _kernel_drops(sock: object) -> int | None:
    """Packets the Linux kernel dropped for lack of buffer space (None elsewhere)."""
    ins = getattr(sock, "ins", None)
    if not sys.platform.startswith("linux") or not isinstance(ins, socket.socket):
        return None
    try:
        return struct.unpack("II", ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))[1]
    except OSError:
        return None
