"""What one notebook has chosen and done so far: its capture mode, its self-checks, the
codes its tables have explained, and (rootless mode) the namespace its own sockets are made in.

A notebook kernel is one lab session: the first cell chooses a capture mode, later
cells reuse it, and every :func:`~tcpchatx.lab.check` adds a verdict.  All of that
lives on one :class:`Session` object, made by the first call that needs it, never at
import: importing the lab changes nothing, and :func:`reset_session` starts afresh
(which is how the tests begin each test with no mode chosen and no checks counted).
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field

from ..capture.namespace_sockets import NamespaceSockets


@dataclass
class Session:
    """The state of the lab in this process; every helper that remembers something keeps it here."""

    mode: str | None = None  # chosen by capture_mode(); None until then
    backend: str = "auto"  # the capture backend capture_mode() was given
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, "PASS"/"FAIL"/"SKIP"), in order
    # Rootless mode: the one namespace this notebook's own sockets are made in (lab.watch),
    # started on first use; one for the whole session, so that its sockets can talk.
    sockets: NamespaceSockets | None = None
    own_sockets: int = 0  # how many sockets Watch.socket() has made in it
    legends_shown: set[str] = field(default_factory=set)  # codes a table's legend has explained
    tables_shown: int = 0  # tables drawn so far: each gets its own HTML id

    def namespace_sockets(self) -> NamespaceSockets:
        """The session's socket factory in a private namespace, started the first time."""
        if self.sockets is None or not self.sockets.running:
            self.close()  # one that died: forget it
            self.sockets = NamespaceSockets().start()
            atexit.register(self.sockets.close)  # tidy; its child would also end with us
        return self.sockets

    def close(self) -> None:
        """End the namespace's socket factory, if one was started (its sockets keep working)."""
        if self.sockets is not None:
            atexit.unregister(self.sockets.close)
            self.sockets.close()
            self.sockets = None


_current: Session | None = None  # made on first use by current_session()


def current_session() -> Session:
    """This process's lab session, made the first time it is asked for."""
    global _current
    if _current is None:
        _current = Session()
    return _current


def reset_session() -> None:
    """Forget the chosen mode and the self-checks, and end the session's namespace:
    the next call starts a new session."""
    global _current
    if _current is not None:
        _current.close()
    _current = None
