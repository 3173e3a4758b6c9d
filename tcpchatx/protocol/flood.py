"""Flood control: how many lines a client may send, and how fast.

The room gives each client a token bucket and asks it about every line.  A line the
bucket has no token for is *held*, in order, and passed on when a token comes (what
IRC servers call fakelag): a burst is delayed, never lost.  Only a client whose
held lines pass a hard limit is disconnected.
"""

from __future__ import annotations

#: Rounding slack: a token due at time t is there at t, whatever float addition says.
EPSILON = 1e-9


class TokenBucket:
    """Flood control: ``burst`` lines at once, then ``rate`` lines per second.

    Time comes in as an argument (seconds, monotonic), so tests need no clock.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0 - EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until :meth:`allow` would say yes (0: it would now)."""
        tokens = self._tokens
        if self._last is not None:
            tokens = min(self.burst, tokens + (now - self._last) * self.rate)
        return 0.0 if tokens >= 1.0 - EPSILON else (1.0 - tokens) / self.rate
