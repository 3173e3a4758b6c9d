"""Reading something every few milliseconds on a thread of its own, until told to stop.

The lab samples the kernel's TCP state (:mod:`tcpchatx.tcpinfo`) and the router's
queue (:mod:`tcpchatx.netlab.queues`) while a story plays; both are a
:class:`Periodic`: ``sample_once()`` appends to ``samples``, once at the start, every
``interval`` seconds, and once more at the end.  Each sample carries ``time``
(``time.time()``: the clock dumpcap stamps packets with), so it lines up with a capture.
"""

from __future__ import annotations

import threading


class Periodic:
    """Calls :meth:`sample_once` every ``interval`` seconds inside a ``with`` block."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}", daemon=True)

    def sample_once(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()
        self.sample_once()  # the state at the end, too

    def __enter__(self):
        # The first sample is taken here, before the block runs: on a busy machine the
        # thread may start late, and the state at the start must come before what it watches.
        self.sample_once()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
