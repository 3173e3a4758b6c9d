"""Capture one TCP port on loopback into a pcapng file: ``LiveCapture``.

    with LiveCapture(5000, "join.pcapng") as capture:
        ...  # run the chat
    print(capture.result.packets, "packets in", capture.result.path)

``start()`` returns only when packets are really being captured, and ``stop()``
returns only when every packet sent before it is in the file (each backend module
explains how). The file appears at its destination only when complete.
"""

from __future__ import annotations

import atexit
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .backend import Backend
from .dumpcap import DumpcapBackend
from .errors import CaptureError
from .interfaces import loopback_interface
from .output import publish, remove_quietly, resolve_output_path, temporary_sibling
from .scapy_backend import ScapyBackend
from .tools import find_dumpcap

BACKENDS = ("auto", "dumpcap", "scapy")


@dataclass(frozen=True)
class CaptureResult:
    """What a finished capture produced."""

    path: Path
    packets: int  # packets in the file
    dropped: int | None  # packets lost for lack of buffer space; None if the backend cannot tell
    backend: str  # "dumpcap" or "scapy"
    interface: str
    capture_filter: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureResult:
        return cls(**{**data, "path": Path(data["path"])})


def capture_filter_for(port: int, extra_filter: str | None = None) -> str:
    """The BPF filter for one TCP port: both directions, so refused connects (RST) too."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an integer from 1 to 65535, not {port!r}")
    base = f"tcp port {port}"
    return f"{base} and ({extra_filter})" if extra_filter else base


def pick_backend(backend: str = "auto") -> str:
    """Resolve "auto": dumpcap where Wireshark is installed, scapy otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "auto":
        return "dumpcap" if find_dumpcap() else "scapy"
    return backend


class LiveCapture:
    """Capture ``tcp port PORT`` on the loopback interface into *out_path* (pcapng).

    A bare file name goes into ``captures/`` under the current directory. Use as a
    context manager, or call :meth:`start` and :meth:`stop` yourself.
    """

    def __init__(self, port: int, out_path: str | os.PathLike[str], backend: str = "auto",
                 interface: str | None = None, extra_filter: str | None = None,
                 marker_to: str | None = None) -> None:
        """``marker_to`` (dumpcap only): capturing on an interface other than loopback,
        an address across it; ``stop()`` sends a marker there and waits until dumpcap
        has written it, so that no packet sent before ``stop()`` is lost."""
        if marker_to and backend == "scapy":
            raise ValueError("marker_to needs the dumpcap backend")
        self.marker_to = marker_to
        self.port = port
        self.capture_filter = capture_filter_for(port, extra_filter)
        self.backend = pick_backend(backend)
        self.out_path = out_path
        self.interface = interface
        self.path: Path | None = None  # the absolute destination, known once started
        self.result: CaptureResult | None = None
        self._engine: Backend | None = None
        self._temporary: Path | None = None

    @property
    def running(self) -> bool:
        return self._engine is not None

    def start(self) -> LiveCapture:
        """Begin capturing; return once packets are really being recorded."""
        if self._engine is not None:
            raise CaptureError("this capture is already running")
        self.interface = self.interface or loopback_interface()
        engine: Backend = DumpcapBackend(marker_to=self.marker_to) if self.backend == "dumpcap" else ScapyBackend()
        self.path = resolve_output_path(self.out_path)
        self._temporary = temporary_sibling(self.path)
        try:
            engine.start(self.interface, self.capture_filter, self._temporary)
        except BaseException:  # including Ctrl-C while the backend was starting
            engine.abort()
            remove_quietly(self._temporary)
            raise
        self._engine = engine
        atexit.register(self.abort)  # Python exiting without stop(): no orphan, no temp file
        return self

    def stop(self) -> CaptureResult:
        """Flush, stop and move the finished file into place; return what it holds."""
        if self._engine is None or self._temporary is None:
            raise CaptureError("this capture is not running; call start() first")
        engine, self._engine = self._engine, None
        atexit.unregister(self.abort)
        assert self.path is not None and self.interface is not None
        try:
            stats = engine.stop()
            publish(self._temporary, self.path)
        finally:
            remove_quietly(self._temporary)
        self.result = CaptureResult(self.path, stats.packets, stats.dropped, self.backend,
                                    self.interface, self.capture_filter)
        return self.result

    def abort(self) -> None:
        """Stop without saving anything (the destination is left untouched)."""
        atexit.unregister(self.abort)
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.abort()
            remove_quietly(self._temporary)

    def __enter__(self) -> LiveCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        # Saved even if the body raised: the packets up to a failure are the ones to study.
        self.stop()


def live_capture_available(backend: str = "auto", interface: str | None = None) -> tuple[bool, str]:
    """Can this process capture on loopback right now? Returns (yes/no, why)."""
    backend = pick_backend(backend)
    interface = interface or loopback_interface()
    if backend == "dumpcap":
        dumpcap = find_dumpcap()
        assert dumpcap is not None
        # -L opens the device just as a capture would, then lists its link types.
        probe = subprocess.run([dumpcap, "-L", "-i", interface], capture_output=True,
                               text=True, timeout=30, check=False)
        if probe.returncode == 0:
            return True, f"dumpcap can capture on {interface}"
        first = next((line for line in probe.stderr.splitlines() if line.strip()), "no message")
        said = first.removeprefix("dumpcap: ").rstrip(".")
        return False, f"{_refusal_in_words(first, interface)}; dumpcap said: \"{said}\""
    try:
        from scapy.all import conf

        conf.L2listen(iface=interface).close()
    except OSError as exc:
        return False, f"{_refusal_in_words(str(exc), interface)}; scapy said: \"{exc}\""
    return True, f"scapy can capture on {interface}"


def _refusal_in_words(message: str, interface: str) -> str:
    """Why a capture was refused, said for a student rather than by the capture tool."""
    if "not permitted" in message or "ermission denied" in message:
        return (f"you may not capture on {interface} (that needs root, the wireshark group, "
                "or capture rights for dumpcap)")
    return f"capturing on {interface} failed"
