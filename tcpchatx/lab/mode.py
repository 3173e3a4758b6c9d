"""The capture mode (live, rootless or reference), why it was chosen, and where new captures go.

A notebook's first cell calls :func:`capture_mode`; every later helper asks
:func:`current_mode`.  The choice is remembered on the lab's session (see
``session.py``), not in this module.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..capture import CaptureError, live_capture_available, rootless_available
from ..references import CAPTURES
from .display import show_tables_plainly
from .figures import show_figures_inline
from .printing import say
from .session import current_session

MODE_ENV = "TCPCHATX_CAPTURE_MODE"
OUT_ENV = "TCPCHATX_OUT"
MODES = ("live", "rootless", "reference")
#: What each mode means, in the words the first cell of every notebook prints.
MODE_MEANINGS = {
    "live": "you may capture on this machine's loopback, so the scenarios and the sockets "
            "you watch are captured here, live",
    "rootless": "you may not capture on this machine's loopback, but you may in a private network "
                "namespace: the scenarios and the sockets you watch run in one and are captured "
                "there; the packets are your own",
    "reference": "nothing is captured here: the notebooks open the reference captures shipped in "
                 "captures/, recorded with each scenario's default parameters",
}


def capture_mode(mode: str | None = None, backend: str = "auto", quiet: bool = False) -> str:
    """Choose how this notebook gets its packets; print which mode and why; return it.

    ``mode`` (or the environment variable ``TCPCHATX_CAPTURE_MODE``) asks for
    ``"live"``, ``"rootless"`` or ``"reference"``; without either, the best mode that
    works here is chosen.  A mode that was asked for but cannot work here is
    refused with its reason, and the best available one is used instead.

    As every notebook's first call, it is also where a notebook kernel starts to show
    Figures as images (:func:`~tcpchatx.lab.figures.show_figures_inline`) and tables in
    the lab's plain look (:func:`~tcpchatx.lab.display.show_tables_plainly`).
    """
    show_figures_inline()
    show_tables_plainly()
    asked, source = mode, "capture_mode(mode=...)"
    if asked is None and os.environ.get(MODE_ENV):
        asked, source = os.environ[MODE_ENV].strip().lower(), f"{MODE_ENV}={os.environ[MODE_ENV]}"
    if asked is not None and asked not in MODES:
        raise ValueError(f"the capture mode must be one of {', '.join(MODES)}, not {asked!r} "
                         f"(from {source})")
    lines: list[str] = []
    if asked == "reference":  # no tools needed, nothing to probe
        chosen, why = "reference", f"you asked for it ({source})"
    else:
        live_ok, live_why = _live_check(backend)
        rootless_ok, rootless_why = rootless_available()
        possible = {"live": (live_ok, live_why), "rootless": (rootless_ok, rootless_why)}
        if asked is not None and possible[asked][0]:
            chosen, why = asked, f"you asked for it ({source}); {possible[asked][1]}"
        else:
            if asked is not None:
                lines.append(f"You asked for {asked} capture ({source}), but it cannot work here: "
                             f"{possible[asked][1]}.")
            if live_ok:
                chosen, why = "live", live_why
            elif rootless_ok:
                chosen, why = "rootless", f"{live_why}; but {rootless_why}"
            else:
                chosen, why = "reference", (f"no live capture ({live_why}) and no rootless "
                                            f"capture ({rootless_why}); docs/capture.md says how "
                                            "to enable one")
    session = current_session()
    session.mode, session.backend = chosen, backend
    lines.append(f"Capture mode: {chosen} — {MODE_MEANINGS[chosen]}.")
    lines.append(f"Why: {why}.")
    if not quiet:
        say("\n".join(lines))
    return chosen


def _live_check(backend: str) -> tuple[bool, str]:
    try:
        return live_capture_available(backend)
    except (CaptureError, OSError) as exc:
        return False, str(exc)


def current_mode() -> str:
    """The mode chosen by :func:`capture_mode` (choosing one quietly if not done yet)."""
    return current_session().mode or capture_mode(quiet=True)


def out_dir() -> Path:
    """Where new captures go: ``TCPCHATX_OUT``, else ``out/`` here, else a temporary directory."""
    wanted = Path(os.environ.get(OUT_ENV) or "out").absolute()
    if wanted.resolve() == CAPTURES.resolve():
        raise ValueError(f"{wanted} holds the reference captures; choose another output directory")
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        if os.access(wanted, os.W_OK):
            return wanted
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"tcpchatx-lab-{os.getuid() if hasattr(os, 'getuid') else 0}"
    fallback.mkdir(exist_ok=True)
    return fallback
