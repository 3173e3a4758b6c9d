"""Capture with Wireshark's dumpcap, started as a child process.

Theory of operation
-------------------
*Ready.* dumpcap prints ``Capturing on 'Loopback: lo'`` from ``main()`` *before* it
opens the device, so that line proves nothing. It prints ``File: <path>`` from
``capture_loop_start()`` only after the device is open, the BPF filter is attached and
the pcapng header has been flushed to disk. From then on the kernel queues every
matching packet for dumpcap, even before dumpcap reads it. So ``start()`` returns once
that line has arrived and the file exists.

*Flushed.* On Linux, libpcap hands packets to dumpcap in blocks of a ring buffer that
the kernel releases when full or after a timeout, and dumpcap writes its file in
batches. Stopping dumpcap with SIGINT abandons whatever the kernel has not released
yet: we measured a refused connect (SYN, RST) followed 1 ms later by SIGINT giving a
file with 0 of the 2 packets. So ``stop()`` first sends a *marker*: a UDP datagram
from and to a port we hold, matched by an extra clause of the capture filter. Packets
reach dumpcap in the order the kernel saw them, so once the marker is in the file,
every packet sent before ``stop()`` is too (measured: the marker shows up ~0.75 s
after it is sent). Only then do we send SIGINT, and finally copy the file without the
marker. Side effects: the filter recorded in the file shows the marker clause, and
dumpcap's closing statistics block counts the marker. (Markers only exist on loopback
interfaces; elsewhere the last fraction of a second may be lost.)

*Buffer.* Loopback carries segments of up to 64 KiB, so dumpcap's default 2 MiB
kernel buffer holds only ~30 of them: a burst from a busy chat server (benchmarks/
capture.py, 5 million deliveries/s) lost 639 of 9,823 packets with it.  We ask for
``BUFFER_MIB`` (dumpcap ``-B``), which lost none; the memory is only used while the
capture runs.

*Separate process group.* dumpcap runs in its own session, so a Ctrl-C typed in the
terminal reaches only Python, which then stops dumpcap in the order above. The price:
dumpcap does not die with Python by itself, so ``LiveCapture`` registers an ``atexit``
hook that aborts it if Python exits without calling ``stop()`` (only a SIGKILLed
Python can leave it running).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .backend import BackendStats
from .errors import CaptureError, CapturePermissionError
from .interfaces import is_loopback
from .output import remove_quietly
from .pcapng import MarkerWatch, copy_without_marker
from .tools import DUMPCAP_ENV, find_dumpcap

START_TIMEOUT = 15.0  # seconds for dumpcap to open the device
FLUSH_TIMEOUT = 10.0  # seconds for the marker to reach the file (measured: ~0.75 s)
EXIT_TIMEOUT = 10.0
BUFFER_MIB = 64  # dumpcap -B: the kernel buffer (see *Buffer* above)

_PERMISSION = re.compile(r"permission|not permitted|access is denied", re.IGNORECASE)
_NO_DEVICE = re.compile(r"no such device|no device named|doesn't exist|there is no", re.IGNORECASE)
_RECEIVED_DROPPED = re.compile(r"Packets received/dropped on interface .*?: (\d+)/(\d+)")


class DumpcapBackend:
    """One dumpcap process writing one capture file."""

    name = "dumpcap"

    def __init__(self, dumpcap: str | None = None, marker_to: str | None = None) -> None:
        """``marker_to``: on an interface other than loopback, an address across it to
        send the flush marker to (on loopback the marker goes to itself)."""
        self.dumpcap = dumpcap or find_dumpcap()
        self.marker_to = marker_to
        if self.dumpcap is None:
            raise CaptureError(
                "dumpcap is not installed. Install Wireshark (Debian/Ubuntu: "
                "`sudo apt install wireshark-common`) or use backend='scapy'."
            )
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._ready = threading.Event()
        self._capturing = False  # dumpcap said "File: ..."
        self._reader: threading.Thread | None = None
        self._marker: socket.socket | None = None
        self._raw: Path | None = None

    def start(self, interface: str, capture_filter: str, temporary: Path) -> None:
        """Start capturing; return only once dumpcap has the device open and filtered."""
        self._interface = interface
        self._temporary = temporary
        self._raw = temporary.with_name(temporary.name + ".raw")
        full_filter = capture_filter
        if is_loopback(interface) or self.marker_to:
            self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._marker.bind(("0.0.0.0" if self.marker_to else "127.0.0.1", 0))
            port = self._marker.getsockname()[1]
            self._marker_address = (self.marker_to or "127.0.0.1", port)
            full_filter = f"({capture_filter}) or (udp src port {port} and udp dst port {port})"
        command = [self.dumpcap, "-i", interface, "-f", full_filter, "-B", str(BUFFER_MIB),
                   "-w", str(self._raw), "-n", "-q"]
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                **_own_process_group(),
            )
        except OSError as exc:
            self.abort()
            raise CaptureError(f"cannot run dumpcap at {self.dumpcap!r} ({exc}); "
                               f"install Wireshark or fix {DUMPCAP_ENV}") from exc
        self._reader = threading.Thread(target=self._read_stderr, name="dumpcap-stderr", daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT):
            self.abort()
            raise CaptureError(f"dumpcap did not start capturing within {START_TIMEOUT:g} s: {self._stderr()}")
        if not self._capturing or not self._raw.exists():
            self._reader.join(EXIT_TIMEOUT)
            self.abort()
            raise self._start_error()

    def stop(self) -> BackendStats:
        """Flush (see the module docstring), stop dumpcap and leave the file at *temporary*."""
        assert self._proc is not None and self._raw is not None, "start() first"
        try:
            token = self._flush_through_marker()
            _interrupt(self._proc)
            try:
                self._proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                raise CaptureError(f"dumpcap did not stop within {EXIT_TIMEOUT:g} s") from exc
            if self._reader:
                self._reader.join(EXIT_TIMEOUT)
            if self._proc.returncode not in (0, -signal.SIGINT):
                raise CaptureError(f"dumpcap failed (exit {self._proc.returncode}): {self._stderr()}")
            packets = copy_without_marker(self._raw, self._temporary, token)
            return BackendStats(packets=packets, dropped=self._dropped())
        finally:
            self.abort()

    def abort(self) -> None:
        """Kill dumpcap if still running and remove its raw file (idempotent)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._marker is not None:
            self._marker.close()
            self._marker = None
        remove_quietly(self._raw)

    def _flush_through_marker(self) -> bytes | None:
        """Send the marker and wait until dumpcap has written it (None: no marker possible)."""
        if self._marker is None:
            return None
        assert self._proc is not None and self._raw is not None
        token = b"tcpchatx-flush-marker:" + os.urandom(16)
        watch = MarkerWatch(self._raw, token)
        deadline = time.monotonic() + FLUSH_TIMEOUT
        next_send = 0.0
        while not watch.seen():
            if time.monotonic() >= next_send:  # again every second, in case one was dropped
                self._marker.sendto(token, self._marker_address)
                next_send = time.monotonic() + 1.0
            if self._proc.poll() is not None:
                raise CaptureError(f"dumpcap exited while capturing: {self._stderr()}")
            if time.monotonic() > deadline:
                raise CaptureError(
                    f"dumpcap did not write the flush marker within {FLUSH_TIMEOUT:g} s, so the "
                    "capture may be missing its last packets; it was discarded. Is the machine overloaded?"
                )
            time.sleep(0.02)  # poll interval; dumpcap gets to the marker within a second
        return token

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace").strip("\r\n")
            self._lines.append(line)
            if line.startswith("File: "):
                self._capturing = True
                self._ready.set()
        self._ready.set()  # EOF: dumpcap exited; start() looks at why

    def _stderr(self) -> str:
        return "\n".join(line for line in self._lines if line.strip()) or "(no message)"

    def _start_error(self) -> CaptureError:
        text = self._stderr()
        if _PERMISSION.search(text):
            first = next((line for line in self._lines if _PERMISSION.search(line)), text)
            return CapturePermissionError(f"dumpcap: {first.removeprefix('dumpcap: ')}", self._interface)
        if _NO_DEVICE.search(text):
            return CaptureError(
                f"dumpcap cannot open interface {self._interface!r}: {text}\n"
                "List the interfaces with `dumpcap -D` and pass interface=..."
            )
        return CaptureError(f"dumpcap could not start: {text}")

    def _dropped(self) -> int | None:
        match = _RECEIVED_DROPPED.search("\n".join(self._lines))
        return int(match.group(2)) if match else None


def _own_process_group() -> dict:
    """Popen options that keep a terminal's Ctrl-C away from dumpcap."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Ask dumpcap to finish its file and exit, as Ctrl-C would."""
    if sys.platform == "win32":
        proc.send_signal(signal.CTRL_BREAK_EVENT)
    else:
        proc.send_signal(signal.SIGINT)
