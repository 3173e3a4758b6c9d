"""Watching the student's own sockets: capture what a ``with lab.watch(...)`` block puts
on the wire, and fall back to a scenario where that is not possible.

    port = lab.pick_port()
    with lab.watch(port, "connect") as w:
        client = w.socket()                   # socket.socket(AF_INET, SOCK_STREAM)
        client.connect(("127.0.0.1", port))   # say: "connect: 3 packet(s) on the wire: ..."

Theory of operation
-------------------
*Live mode* captures this machine's loopback, so every socket is seen; ``w.socket()``
is a plain ``socket.socket(...)``.

*Rootless mode* cannot capture this machine's loopback, and a notebook kernel cannot
enter a namespace itself (it has several threads).  So the session keeps one socket
factory in a private namespace (:class:`~tcpchatx.capture.NamespaceSockets`, started
by the first ``watch`` or :func:`pick_port`): ``w.socket()`` is created in there and
handed back to the notebook, still a real ``socket.socket``, and the block's capture
runs on that namespace's own loopback.  All the ``w.socket()`` of one notebook share
that namespace, so a listener made in one block accepts the client made in the next;
:func:`pick_port` picks a port free in there.  A plain ``socket.socket()`` lives
outside the namespace: it is neither captured nor able to reach the others (until the
notebook has made a ``w.socket()``, a block says it was not captured).

*Reference mode* captures nothing: the block still runs (``w.socket()`` is a plain
socket, the calls are real) and the message says so.

In live and rootless mode the block's packets become a :class:`~tcpchatx.lab.runs.LabRun`
and the same one-line report.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from socket import AF_INET, SOCK_STREAM

from ..analysis import analyze
from ..capture import CaptureResult, LiveCapture
from ..capture.namespace_sockets import NamespaceSockets
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
    namespace: NamespaceSockets | None = field(default=None, repr=False)  # rootless mode only

    @property
    def packets(self) -> int | None:
        return None if self.run is None else len(self.run.analysis)

    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A new ``socket.socket(family, type, proto)``, made where this block's capture sees it."""
        if self.namespace is None:
            return socket.socket(family, type, proto)
        made = self.namespace.socket(family, type, proto)
        current_session().own_sockets += 1
        return made


def pick_port(mode: str | None = None) -> int:
    """A loopback port nobody listens on right now, for your own sockets (in rootless mode:
    free inside the namespace that ``w.socket()`` makes them in)."""
    if (mode or current_mode()) == "rootless":
        with current_session().namespace_sockets().socket() as probe:
            probe.bind((DEFAULT_HOST, 0))
            return probe.getsockname()[1]
    return free_port(DEFAULT_HOST)


@contextmanager
def watch(port: int, label: str, mode: str | None = None) -> Iterator[Watch]:
    """Capture ``tcp port PORT`` while the ``with`` block runs; say how many packets it sent.

    Live mode captures loopback; rootless mode captures the namespace that the block's
    ``w.socket()`` are made in (see the module's docstring); in reference mode nothing is
    captured, the block still runs (the sockets are real) and the message says so.
    """
    mode = mode or current_mode()
    session = current_session()
    if mode not in ("live", "rootless"):
        yield Watch(label, port)
        _say(f"{label}: done, but not captured (in {mode} mode only the scenarios are captured, "
             "not this notebook's own sockets).")
        return
    slug = "".join(ch if ch.isalnum() else "-" for ch in label.lower()).strip("-")
    out = out_dir() / f"watch-{slug}.pcapng"
    result: CaptureResult | None = None
    if mode == "live":
        seen = Watch(label, port)
        with LiveCapture(port, out, backend=session.backend) as capture:
            yield seen
        result = capture.result
    else:
        namespace = session.namespace_sockets()
        seen = Watch(label, port, namespace=namespace)
        namespace.start_capture(port, out, backend=session.backend)
        try:
            yield seen
        finally:  # saved even if the block raised, as in live mode
            result = namespace.stop_capture()
        if not session.own_sockets:
            _say(f"{label}: done, but not captured: in rootless mode only the sockets made with "
                 "w.socket() (`with lab.watch(...) as w`) live in the namespace that is captured.")
            return
    assert result is not None
    analysis = analyze(result.path)
    seen.run = LabRun(label, mode, result.path, {"server": [DEFAULT_HOST, port]}, analysis)
    steps = ", ".join(f"{s}" for s in seen.run.packets["step"].tolist())
    _say(f"{label}: {len(analysis)} packet(s) on the wire" + (f": {steps}" if steps else "") + ".")


def handshake_run(connect: Watch) -> LabRun:
    """The capture to study a handshake in: the one ``connect`` watched (live and rootless
    modes), else the ``chat`` scenario, whose first connection opens the same way."""
    if connect.run is not None and len(connect.run.analysis.connections):
        _say(f"Using your own handshake: packets 1-3 of {_shown(connect.run.path)}.")
        return connect.run
    _say("Your connect() was not captured here, so we look at the chat scenario instead: "
         "its first connection (alice's) opens with the same three packets.")
    return run("chat")
