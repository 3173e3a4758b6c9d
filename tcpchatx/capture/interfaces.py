"""Which network interface carries 127.0.0.1 traffic on this platform.

Loopback has a different name everywhere: ``lo`` on Linux, ``lo0`` on macOS and the
BSDs, and on Windows a virtual adapter that only exists when Npcap was installed with
"Support loopback traffic" (see docs/capture.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .errors import CaptureError
from .tools import find_dumpcap

NPCAP_LOOPBACK = r"\Device\NPF_Loopback"
_IFF_LOOPBACK = 0x8  # from <net/if.h>


def loopback_interface() -> str:
    """Return the capture name of the loopback interface, or explain how to get one."""
    if sys.platform.startswith("linux"):
        return "lo"
    if sys.platform == "darwin" or "bsd" in sys.platform:
        return "lo0"
    if sys.platform == "win32":
        return _windows_loopback()
    raise CaptureError(
        f"Do not know the loopback interface of platform {sys.platform!r}; "
        "pass interface=... explicitly (see `dumpcap -D`)."
    )


def is_loopback(interface: str) -> bool:
    """True if *interface* is a loopback interface (Linux asks the kernel's flags)."""
    flags = Path("/sys/class/net") / interface / "flags"
    try:
        return bool(int(flags.read_text(), 16) & _IFF_LOOPBACK)
    except (OSError, ValueError):
        return interface in ("lo", "lo0", NPCAP_LOOPBACK) or "loopback" in interface.lower()


def loopback_from_interface_list(listing: str) -> str | None:
    """Pick the loopback entry from ``dumpcap -D`` output.

    Lines look like ``1. \\Device\\NPF_Loopback (Adapter for loopback traffic capture)``
    on Windows and ``3. lo (Loopback)`` on Linux; the description is in brackets.
    """
    for line in listing.splitlines():
        match = re.match(r"\s*\d+\.\s+(\S+)(?:\s+\((.*)\))?\s*$", line)
        if match and "loopback" in (match.group(2) or match.group(1)).lower():
            return match.group(1)
    return None


def _windows_loopback() -> str:
    """Find Npcap's loopback adapter via dumpcap, then scapy, then the usual name."""
    dumpcap = find_dumpcap()
    if dumpcap:
        listing = subprocess.run(
            [dumpcap, "-D"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
        found = loopback_from_interface_list(listing)
        if found:
            return found
    try:
        from scapy.all import conf

        for iface in conf.ifaces.values():
            if "loopback" in (iface.description or "").lower():
                return iface.network_name
    except ImportError:
        pass
    if dumpcap is None:
        return NPCAP_LOOPBACK
    raise CaptureError(
        "No loopback adapter found. Reinstall Npcap (https://npcap.com) and tick "
        "'Support loopback traffic (\"Npcap Loopback Adapter\" will be created)'."
    )
