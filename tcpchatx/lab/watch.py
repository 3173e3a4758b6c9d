"""Watching the student's own sockets: capture what a ``with lab.watch(...)`` block puts
on the wire (live mode only), and fall back to a scenario where that is not possible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..analysis import analyze
from ..capture import LiveCapture
from ..scenarios import DEFAULT_HOST
from ..scenarios.staging import free_port
from .mode import current_mode, out_dir
from .runs import LabRun, run
from .say import _say, _shown
from .session import current_session


@dataclass
class Watch:
    """What a :func:`watch` block put on the wire (``run`` is None if it could not be captured)."""

    label: str
    port: int
    run: LabRun | None = None

    @property
    def packets(self) -> int | None:
        return None if self.run is None else len(self.run.analysis)


def pick_port() -> int:
    """A loopback port nobody listens on right now, for your own sockets."""
    return free_port(DEFAULT_HOST)


@contextmanager
def watch(port: int, label: str, mode: str | None = None) -> Iterator[Watch]:
    """Capture ``tcp port PORT`` while the ``with`` block runs; say how many packets it sent.

    Only in live mode: in rootless mode your notebook's sockets live outside the
    namespace, and in reference mode nothing is captured; the block still runs
    (the sockets are real), and the message says so.
    """
    mode = mode or current_mode()
    seen = Watch(label, port)
    if mode != "live":
        yield seen
        _say(f"{label}: done, but not captured (in {mode} mode only the scenarios are captured, "
             "not this notebook's own sockets).")
        return
    slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")
    with LiveCapture(port, out_dir() / f"watch-{slug}.pcapng", backend=current_session().backend) as capture:
        yield seen
    assert capture.result is not None
    analysis = analyze(capture.result.path)
    seen.run = LabRun(label, "live", capture.result.path, {"server": [DEFAULT_HOST, port]}, analysis)
    steps = ", ".join(f"{s}" for s in seen.run.packets["step"].tolist())
    _say(f"{label}: {len(analysis)} packet(s) on the wire" + (f": {steps}" if steps else "") + ".")


def handshake_run(connect: Watch) -> LabRun:
    """The capture to study a handshake in: the one ``connect`` watched (live mode), else the
    ``chat`` scenario, whose first connection opens the same way."""
    if connect.run is not None and len(connect.run.analysis.connections):
        _say(f"Using your own handshake: packets 1-3 of {_shown(connect.run.path)}.")
        return connect.run
    _say("Your connect() was not captured here, so we look at the chat scenario instead: "
         "its first connection (alice's) opens with the same three packets.")
    return run("chat")
