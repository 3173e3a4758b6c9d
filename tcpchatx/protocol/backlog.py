"""How far behind a client may fall before the server gives up on it.

Every copy for a client waits in that client's queue until its socket takes it.  A
client that reads slower than a burst arrives falls behind for a moment and catches
up; a client that stopped reading falls behind for good.  The server cannot see
which is which, only how long the queue has been long.

The rule is the one Redis uses for its clients' output buffers: a **soft limit** the
queue may pass for a short while (``grace`` seconds), and a **hard limit** it may
never pass, which bounds the memory one client can cost.  Past either, the client is
cut off as too slow, and nobody else waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BacklogLimits:
    soft_lines: int = 10_000
    soft_bytes: int = 256 * 1024
    hard_bytes: int = 4 * 1024 * 1024
    grace: float = 2.0  # seconds a queue may stay over the soft limit


class Backlog:
    """One client's queue length, watched over time.  Sans-IO: time is an argument."""

    def __init__(self, limits: BacklogLimits) -> None:
        self.limits = limits
        self.over_since: float | None = None  # when the queue last went over the soft limit

    def too_far_behind(self, lines: int, size: int, now: float) -> bool:
        """Call whenever the queue changes (and now and then): True means cut the client off."""
        limits = self.limits
        if size > limits.hard_bytes:
            return True
        if lines <= limits.soft_lines and size <= limits.soft_bytes:
            self.over_since = None  # caught up
            return False
        if self.over_since is None:
            self.over_since = now
        return now - self.over_since > limits.grace
