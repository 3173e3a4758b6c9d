"""The few ways a capture can fail, each with a message that says what to do next.

Students meet these errors in a notebook's first cell, so every message names the
concrete ways out instead of just repeating what the operating system said.
"""

from __future__ import annotations


class CaptureError(RuntimeError):
    """A capture could not be started, flushed or saved."""


class CapturePermissionError(CaptureError, PermissionError):
    """This user may not capture packets here.

    It is also a :class:`PermissionError`, so code that already handles the
    built-in exception keeps working.
    """

    def __init__(self, detail: str, interface: str = "lo") -> None:
        self.detail = detail.strip()
        super().__init__(permission_help(self.detail, interface))


class RootlessUnavailableError(CaptureError):
    """This machine cannot give us a private network namespace to capture in."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"Rootless capture is not available here: {reason}\n"
            "Fall back to the reference captures shipped in captures/ (every notebook can "
            "read them), or capture live as described in docs/capture.md."
        )


def permission_help(detail: str, interface: str = "lo") -> str:
    """Explain a refused capture and list every way out, most convenient first."""
    return (
        f"You do not have permission to capture packets on {interface!r} ({detail}).\n"
        "Ways out:\n"
        "  1. Let dumpcap capture for you (Debian/Ubuntu): `sudo dpkg-reconfigure wireshark-common`"
        " (answer Yes), then `sudo usermod -a -G wireshark $USER` and log in again;\n"
        "     or give dumpcap the capabilities directly:"
        " `sudo setcap cap_net_raw,cap_net_admin+eip $(which dumpcap)`.\n"
        "  2. Use the rootless mode: tcpchatx.capture.rootless.run_rootless(...) captures inside a"
        " private user+network namespace, no root needed (Linux).\n"
        "  3. Run as root (sudo) — fine on a lab VM, not on your own machine.\n"
        "  4. Skip live capture and open the reference captures shipped in captures/."
    )
