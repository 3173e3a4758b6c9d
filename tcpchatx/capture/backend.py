"""What every capture backend does, so ``LiveCapture`` can use any of them.

A backend captures one interface with one BPF filter into a file it is given, and
promises two things: ``start()`` returns only once matching packets are being recorded,
and ``stop()`` returns only once every packet sent before it is in that file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BackendStats:
    """What a backend reports when it stops."""

    packets: int  # packets in the finished file
    dropped: int | None  # packets the kernel or the tool had to drop (None: unknown)


class Backend(Protocol):
    name: str

    def start(self, interface: str, capture_filter: str, temporary: Path) -> None:
        """Begin capturing into *temporary*; raise CaptureError (or its subclasses) if not."""

    def stop(self) -> BackendStats:
        """Flush, stop, and leave the complete pcapng at *temporary*."""

    def abort(self) -> None:
        """Stop at once and release everything; the file's content no longer matters."""
