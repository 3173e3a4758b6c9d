"""Where the external programs live: dumpcap for capturing, unshare for namespaces.

Each can be overridden with an environment variable, which is how a lab machine with
an unusual install (or a test that wants a broken tool) points us elsewhere.
"""

from __future__ import annotations

import os
import shutil
import sys

DUMPCAP_ENV = "TCPCHATX_DUMPCAP"
UNSHARE_ENV = "TCPCHATX_UNSHARE"

# Wireshark's installers do not put dumpcap on PATH on Windows and macOS.
_DUMPCAP_ELSEWHERE = {
    "win32": [r"C:\Program Files\Wireshark\dumpcap.exe"],
    "darwin": ["/Applications/Wireshark.app/Contents/MacOS/dumpcap"],
}


def find_dumpcap() -> str | None:
    """Path of the dumpcap binary, or None if Wireshark's capture tool is not installed."""
    if os.environ.get(DUMPCAP_ENV):
        return os.environ[DUMPCAP_ENV]
    found = shutil.which("dumpcap")
    if found:
        return found
    for candidate in _DUMPCAP_ELSEWHERE.get(sys.platform, []):
        if os.path.exists(candidate):
            return candidate
    return None


def find_unshare() -> str | None:
    """Path of util-linux's unshare, or None."""
    return os.environ.get(UNSHARE_ENV) or shutil.which("unshare")
