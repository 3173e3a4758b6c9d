"""Which way of capturing works on this machine: live, rootless or reference.

A notebook's first cell calls :func:`check_capture_mode` and prints its explanation,
so every student knows whether they are looking at their own packets or at the
shipped reference captures, and what would change that.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CaptureError
from .live import live_capture_available
from .rootless import rootless_available


@dataclass(frozen=True)
class CaptureModeCheck:
    """The chosen mode and the two checks behind it."""

    mode: str  # "live", "rootless" or "reference"
    live_reason: str
    rootless_reason: str

    def explain(self) -> str:
        if self.mode == "live":
            return f"Capture mode: live — {self.live_reason}."
        if self.mode == "rootless":
            return (f"Capture mode: rootless — no live capture here ({self.live_reason}), "
                    f"but {self.rootless_reason}, so captures run in a private namespace.")
        return (f"Capture mode: reference — no live capture ({self.live_reason}) and no rootless "
                f"capture ({self.rootless_reason}); using the reference captures in captures/. "
                "docs/capture.md explains how to enable live capture.")


def check_capture_mode(backend: str = "auto") -> CaptureModeCheck:
    """Try live capture on loopback, then the rootless namespace; fall back to reference."""
    try:
        live, live_reason = live_capture_available(backend)
    except (CaptureError, OSError) as exc:
        live, live_reason = False, str(exc)
    rootless, rootless_reason = rootless_available()
    mode = "live" if live else "rootless" if rootless else "reference"
    return CaptureModeCheck(mode, live_reason, rootless_reason)


def choose_capture_mode(backend: str = "auto") -> str:
    """``"live"``, ``"rootless"`` or ``"reference"``: the best capture mode available now."""
    return check_capture_mode(backend).mode
