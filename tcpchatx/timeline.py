"""The server's event timeline: what the application did, and when.

Each event carries a wall-clock time (to line up with packet timestamps in a
capture) and a monotonic time (to measure intervals that a clock change cannot
distort).  A notebook reads ``server.timeline()`` beside the packets.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

DETAIL_CHARS = 200


@dataclass(slots=True)  # not frozen: the server makes one per line, and frozen costs 6x
class TimelineEvent:
    """One thing the server did.

    ``kind`` is one of: listening, accepted, nick-set, line-received, held (flood
    control keeps a line for later), released (and passes it on), queued, sent,
    behind (a client's queue passed the soft limit), caught-up (and emptied),
    dropped, closing, left, stopped.
    """

    wall: float
    mono: float
    kind: str
    client: int | None = None
    nick: str | None = None
    peer: tuple[str, int] | None = None
    detail: str = ""
    recipients: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


class Timeline:
    """A bounded, thread-safe list of events that a test or notebook can wait on."""

    def __init__(self, max_events: int = 100_000, on_event: Callable[[TimelineEvent], None] | None = None):
        self._events: deque[TimelineEvent] = deque(maxlen=max_events)
        # A plain lock under the condition: the server records on its busiest path, and
        # ``with`` on a bare lock is one C call, where a Condition's is two Python ones.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0  # threads in wait_for: only they need a notify
        self._on_event = on_event

    def record(self, kind: str, client: int | None = None, nick: str | None = None,
               peer: tuple[str, int] | None = None, detail: str = "",
               recipients: tuple[int, ...] = ()) -> TimelineEvent:
        # The server records every line it relays: this is on its busiest path.
        if len(detail) > DETAIL_CHARS:  # bounded memory per event, too
            detail = detail[: DETAIL_CHARS - 3] + "..."
        event = TimelineEvent(time.time(), time.monotonic(), kind, client, nick, peer, detail, recipients)
        with self._lock:
            self._events.append(event)
            if self._waiting:
                self._changed.notify_all()
        if self._on_event is not None:
            self._on_event(event)
        return event

    def record_each(self, kind: str, details: list[str], client: int | None = None,
                    nick: str | None = None, recipients: tuple[int, ...] = ()) -> None:
        """One event per detail, all at the same moment: the lines of one ``recv``, say.

        The same events as :meth:`record` called for each, and they stay together in
        the timeline; the server's busiest path pays for the clock and the lock once."""
        wall, mono = time.time(), time.monotonic()
        events = [TimelineEvent(wall, mono, kind, client, nick, None,
                                detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 3] + "...",
                                recipients)
                  for detail in details]
        with self._lock:
            self._events.extend(events)
            if self._waiting:
                self._changed.notify_all()
        if self._on_event is not None:
            for event in events:
                self._on_event(event)

    def events(self) -> list[TimelineEvent]:
        with self._lock:
            return list(self._events)

    def wait_for(
        self, predicate: Callable[[TimelineEvent], bool], timeout: float = 5.0
    ) -> TimelineEvent:
        """Block until an event matching ``predicate`` has been recorded; return it.

        Raises TimeoutError after ``timeout`` seconds: a poll with a deadline, not a sleep.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            self._waiting += 1
            try:
                while True:
                    for event in self._events:
                        if predicate(event):
                            return event
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"no matching timeline event within {timeout:.1f} s")
                    self._changed.wait(remaining)
            finally:
                self._waiting -= 1
