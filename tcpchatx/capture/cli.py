"""``tcpchatx capture``: record a port until Ctrl-C (or for a while) and say how it went.

The argument parsing lives in :mod:`tcpchatx.cli`; this is the part that does the work.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from .errors import CaptureError, CapturePermissionError
from .live import LiveCapture

_TICK = 0.5  # seconds; waiting in short steps keeps Ctrl-C responsive on Windows too


def capture_main(port: int, out: str, backend: str = "auto", duration: float | None = None) -> int:
    """Capture ``tcp port PORT`` on loopback into *out*; return a process exit status.

    Runs until Ctrl-C, or for *duration* seconds if given. Exit status 0 on success,
    2 when capture permission is missing (the message lists the ways out), 1 otherwise.
    """
    capture = LiveCapture(port, out, backend=backend)
    until = "Ctrl-C" if duration is None else f"{duration:g} s have passed or Ctrl-C"
    deadline = None if duration is None else time.monotonic() + duration
    never = threading.Event()
    previous = _treat_sigterm_as_ctrl_c()
    try:  # Ctrl-C at any point from here on still saves what was captured
        try:
            capture.start()
        except CapturePermissionError as exc:
            print(exc, file=sys.stderr)
            return 2
        except CaptureError as exc:
            print(f"tcpchatx capture: {exc}", file=sys.stderr)
            return 1
        print(f"Capturing '{capture.capture_filter}' on {capture.interface} ({capture.backend}) "
              f"into {capture.path} until {until}.", flush=True)
        while deadline is None or time.monotonic() < deadline:
            step = _TICK if deadline is None else max(0.0, min(_TICK, deadline - time.monotonic()))
            never.wait(step)
    except KeyboardInterrupt:
        if not capture.running:
            return 130  # interrupted before the capture began: nothing to save
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        result = capture.stop()
    except CaptureError as exc:
        print(f"tcpchatx capture: {exc}", file=sys.stderr)
        return 1
    dropped = "unknown" if result.dropped is None else result.dropped
    print(f"Packets captured: {result.packets}, dropped: {dropped}. Saved {result.path}", flush=True)
    return 0


def _treat_sigterm_as_ctrl_c() -> Any:
    """Make `kill PID` save the capture like Ctrl-C does; return the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)
