"""What one notebook has chosen and done so far: its capture mode and its self-checks.

A notebook kernel is one lab session: the first cell chooses a capture mode, later
cells reuse it, and every :func:`~tcpchatx.lab.check` adds a verdict.  All of that
lives on one :class:`Session` object, made by the first call that needs it, never at
import: importing the lab changes nothing, and :func:`reset_session` starts afresh
(which is how the tests begin each test with no mode chosen and no checks counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Session:
    """The state of the lab in this process; every helper that remembers something keeps it here."""

    mode: str | None = None  # chosen by capture_mode(); None until then
    backend: str = "auto"  # the capture backend capture_mode() was given
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, "PASS"/"FAIL"/"SKIP"), in order


_current: Session | None = None  # made on first use by current_session()


def current_session() -> Session:
    """This process's lab session, made the first time it is asked for."""
    global _current
    if _current is None:
        _current = Session()
    return _current


def reset_session() -> None:
    """Forget the chosen mode and the self-checks: the next call starts a new session."""
    global _current
    _current = None
