"""Flood control: how many lines a client may send, and how fast.

The room gives each client a token bucket and asks it about every line; a line
the bucket refuses is dropped, and too many refused in a row end the connection.
"""

from __future__ import annotations


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
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
