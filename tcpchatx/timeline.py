"""The server's event timeline: what the application did, and when.

Each event carries a wall-clock time (to line up with packet timestamps in a
capture) and a monotonic time (to measure intervals that a clock change cannot
distort).  A notebook reads ``server.timeline()`` beside the packets.
"""

from __future__ import annotations

import itertools
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


def _cut(detail: str) -> str:
    """A detail of at most DETAIL_CHARS characters: bounded memory per event."""
    return detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 3] + "..."


class Timeline:
    """A bounded, thread-safe list of events that a test or notebook can wait on.

    Events are kept as plain tuples and become :class:`TimelineEvent`\\ s when read.
    A server keeps up to ``max_events`` of them, and Python's cycle collector walks
    every object that could hold a reference cycle at each full collection: 100,000
    event objects made each one a pause of milliseconds for every client (the p99 of
    a busy server).  A tuple of numbers and strings is one the collector stops
    looking at after its first collection.
    """

    def __init__(self, max_events: int = 100_000, on_event: Callable[[TimelineEvent], None] | None = None):
        self._rows: deque[tuple] = deque(maxlen=max_events)  # TimelineEvent's fields, in order
        # A plain lock under the condition: the server records on its busiest path, and
        # ``with`` on a bare lock is one C call, where a Condition's is two Python ones.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0  # threads in wait_for: only they need a notify
        self._recorded = 0  # events ever recorded: where a reader of :meth:`since` is
        self._on_event = on_event

    def record(self, kind: str, client: int | None = None, nick: str | None = None,
               peer: tuple[str, int] | None = None, detail: str = "",
               recipients: tuple[int, ...] = ()) -> None:
        # The server records every line it relays: this is on its busiest path.
        row = (time.time(), time.monotonic(), kind, client, nick, peer, _cut(detail), recipients)
        with self._lock:
            self._rows.append(row)
            self._recorded += 1
            if self._waiting:
                self._changed.notify_all()
        if self._on_event is not None:
            self._on_event(TimelineEvent(*row))

    def record_each(self, kind: str, details: list[str], client: int | None = None,
                    nick: str | None = None, recipients: tuple[int, ...] = ()) -> None:
        """One event per detail, all at the same moment: the lines of one ``recv``, say.

        The same events as :meth:`record` called for each, and they stay together in
        the timeline; the server's busiest path pays for the clock and the lock once."""
        wall, mono = time.time(), time.monotonic()
        rows = [(wall, mono, kind, client, nick, None, _cut(detail), recipients) for detail in details]
        with self._lock:
            self._rows.extend(rows)
            self._recorded += len(rows)
            if self._waiting:
                self._changed.notify_all()
        if self._on_event is not None:
            for row in rows:
                self._on_event(TimelineEvent(*row))

    def events(self) -> list[TimelineEvent]:
        with self._lock:
            rows = list(self._rows)
        return [TimelineEvent(*row) for row in rows]

    def since(self, place: int) -> tuple[list[tuple], int]:
        """The events recorded after the first ``place`` ones, and the new place: for a
        reader that follows the timeline as it grows (the server's console), at the
        cost of one lock per look, whatever the rate of events.

        Each event comes as a tuple of :class:`TimelineEvent`'s fields (``TimelineEvent(*row)``
        makes one).  If more came than the timeline keeps, the oldest of them are gone:
        there are then fewer rows than the place moved by."""
        with self._lock:
            return self._newer_rows(place), self._recorded

    def _newer_rows(self, place: int) -> list[tuple]:
        """The rows recorded after the first ``place`` events that are still kept, oldest
        first; read from the newest end, so the cost is theirs only.  Caller holds the lock."""
        newer = list(itertools.islice(reversed(self._rows), min(self._recorded - place, len(self._rows))))
        newer.reverse()
        return newer

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
                checked = self._recorded - len(self._rows)  # those before the oldest kept are gone
                while True:
                    for row in self._newer_rows(checked):  # each event is asked once, oldest first
                        event = TimelineEvent(*row)
                        if predicate(event):
                            return event
                    checked = self._recorded
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"no matching timeline event within {timeout:.1f} s")
                    self._changed.wait(remaining)
            finally:
                self._waiting -= 1
