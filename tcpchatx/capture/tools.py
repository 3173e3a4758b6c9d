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

# Wireshark's installers do not put its tools on PATH on Windows and macOS.
_WIRESHARK_ELSEWHERE = {
    "win32": r"C:\Program Files\Wireshark\{}.exe",
    "darwin": "/Applications/Wireshark.app/Contents/MacOS/{}",
}


def find_wireshark_tool(name: str, env: str) -> str | None:
    """Path of one of Wireshark's programs (dumpcap, tshark), or None if missing.

    The environment variable ``env`` overrides the search (tests use it)."""
    if os.environ.get(env):
        return os.environ[env]
    found = shutil.which(name)
    if found:
        return found
    elsewhere = _WIRESHARK_ELSEWHERE.get(sys.platform)
    if elsewhere and os.path.exists(elsewhere.format(name)):
        return elsewhere.format(name)
    return None


def find_dumpcap() -> str | None:
    """Path of the dumpcap binary, or None if Wireshark's capture tool is not installed."""
    return find_wireshark_tool("dumpcap", DUMPCAP_ENV)


def find_unshare() -> str | None:
    """Path of util-linux's unshare, or None."""
    return os.environ.get(UNSHARE_ENV) or shutil.which("unshare")
