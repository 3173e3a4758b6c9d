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
socket, the calls are real), and the block reports the packets that the same calls
put on the wire when they were made live for the reference captures
(``captures/own-sockets/watch-LABEL.pcapng``, made by :func:`record_own_sockets`), and
says so.  So notebook 01 reads true in every mode: three packets during ``connect``.

In live and rootless mode the block's packets become a :class:`~tcpchatx.lab.runs.LabRun`
and the same one-line report.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from socket import AF_INET, SOCK_STREAM

from ..analysis import analyze, write_annotated
from ..capture import CaptureResult, LiveCapture
from ..capture.namespace_sockets import NamespaceSockets
from ..references import CAPTURES
from ..scenarios import DEFAULT_HOST
from ..scenarios.staging import free_port
from .mode import current_mode, out_dir
from .printing import _shown, say
from .runs import LabRun, run
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


#: The reference captures of notebook 01's own socket calls (see record_own_sockets).
OWN_SOCKETS = CAPTURES / "own-sockets"


@contextmanager
def watch(port: int, label: str, mode: str | None = None) -> Iterator[Watch]:
    """Capture ``tcp port PORT`` while the ``with`` block runs; say how many packets it sent.

    Live mode captures loopback; rootless mode captures the namespace that the block's
    ``w.socket()`` are made in (see the module's docstring); in reference mode nothing is
    captured, the block still runs (the sockets are real), and the packets of the same
    calls made live for the reference captures are shown instead, as the message says.
    """
    mode = mode or current_mode()
    if mode not in ("live", "rootless"):
        seen = Watch(label, port)
        yield seen
        _use_reference(seen, mode)
        return
    with _captured(port, label, mode, out_dir()) as seen:
        yield seen


def _use_reference(seen: Watch, mode: str) -> None:
    """Reference mode: give ``seen`` the reference capture of the same calls, if there is one."""
    reference = OWN_SOCKETS / f"watch-{_slug(seen.label)}.pcapng"
    if not reference.exists():
        say(f"{seen.label}: done, but not captured (in {mode} mode only the scenarios are captured, "
             "not this notebook's own sockets).")
        return
    analysis = analyze(reference)
    port = analysis.connections[0].server[1] if len(analysis.connections) else seen.port
    seen.run = LabRun(seen.label, "reference", reference, {"server": [DEFAULT_HOST, port]}, analysis)
    say(f"{seen.label}: done; not captured in {mode} mode, but notebook 01's \"{seen.label}\" step, "
         f"recorded live for the reference captures ({_shown(reference)}), put {_packets_text(seen.run)}")


def _slug(label: str) -> str:
    """"socket, bind, listen" -> "socket-bind-listen", for a file name."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def _packets_text(lab_run: LabRun) -> str:
    """"3 packet(s) on the wire: SYN, SYN-ACK, ACK (handshake)." (the steps, in order)"""
    steps = ", ".join(f"{s}" for s in lab_run.packets["step"].tolist())
    return f"{len(lab_run.analysis)} packet(s) on the wire" + (f": {steps}" if steps else "") + "."


@contextmanager
def _captured(port: int, label: str, mode: str, out: Path) -> Iterator[Watch]:
    """The capture of one ``watch`` block (live or rootless), saved in ``out``."""
    session = current_session()
    path = out / f"watch-{_slug(label)}.pcapng"
    result: CaptureResult | None = None
    if mode == "live":
        seen = Watch(label, port)
        with LiveCapture(port, path, backend=session.backend) as capture:
            yield seen
        result = capture.result
    else:
        namespace = session.namespace_sockets()
        seen = Watch(label, port, namespace=namespace)
        namespace.start_capture(port, path, backend=session.backend)
        try:
            yield seen
        finally:  # saved even if the block raised, as in live mode
            result = namespace.stop_capture()
        if not session.own_sockets:
            say(f"{label}: done, but not captured: in rootless mode only the sockets made with "
                 "w.socket() (`with lab.watch(...) as w`) live in the namespace that is captured.")
            return
    assert result is not None
    seen.run = LabRun(label, mode, result.path, {"server": [DEFAULT_HOST, port]}, analyze(result.path))
    say(f"{label}: {_packets_text(seen.run)}")


def record_own_sockets(out: Path, mode: str, backend: str = "auto") -> list[Path]:
    """Make notebook 01's own socket calls under capture, for reference mode to show
    (``out/watch-LABEL.pcapng``, annotated): the same calls, in the same order, as its cells.
    ``backend`` captures them (this session's capture backend from here on)."""
    out.mkdir(parents=True, exist_ok=True)
    current_session().backend = backend
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch)
        port = pick_port(mode)
        with _captured(port, "socket, bind, listen", mode, raw) as w:
            listener = w.socket()
            listener.bind((DEFAULT_HOST, port))
            listener.listen()
        with _captured(port, "connect", mode, raw) as connect:
            client = connect.socket()
            client.connect((DEFAULT_HOST, port))
        with _captured(port, "accept", mode, raw):
            server_side, _ = listener.accept()
        for sock in (client, server_side, listener):
            sock.close()
        written = []
        for path in sorted(raw.glob("watch-*.pcapng")):
            final = out / path.name
            write_annotated(analyze(path), final)
            final.chmod(0o644)  # a shared lab file, as the other reference captures
            written.append(final)
    return written


def handshake_run(connect: Watch) -> LabRun:
    """The capture to study a handshake in: the one ``connect`` watched (live and rootless
    modes) or its reference capture (reference mode), else the ``chat`` scenario, whose
    first connection opens the same way."""
    if connect.run is not None and len(connect.run.analysis.connections):
        whose = "the reference capture's" if connect.run.mode == "reference" else "your own"
        say(f"Using {whose} handshake: packets 1-3 of {_shown(connect.run.path)}.")
        return connect.run
    say("Your connect() was not captured here, so we look at the chat scenario instead: "
         "its first connection (alice's) opens with the same three packets.")
    return run("chat")
