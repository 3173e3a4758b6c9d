"""Sockets made inside a private network namespace, for a process that cannot enter one.

    with NamespaceSockets() as sockets:
        listener = sockets.socket()                   # a plain socket.socket, made in there
        listener.bind(("127.0.0.1", 5000))
        listener.listen()
        sockets.start_capture(5000, "./mine.pcapng")
        client = sockets.socket()
        client.connect(("127.0.0.1", 5000))            # the namespace's loopback carries it
        ...
        print(sockets.stop_capture().packets)

Theory of operation
-------------------
*Why.* The rootless mode (:mod:`~tcpchatx.capture.rootless`) plays whole scenarios in
a child process inside ``unshare --user --map-root-user --net``, where an ordinary user
may capture. A notebook's *own* sockets cannot go there that way: a Jupyter kernel has
several threads, and a multi-threaded process may not join a user namespace.

*How.* Two facts make it possible anyway. A socket belongs for life to the network
namespace it was *created* in, whoever uses it later. And a file descriptor can be sent
to another process over a Unix socket (``SCM_RIGHTS``; ``socket.send_fds`` /
``socket.recv_fds``). So :meth:`NamespaceSockets.start` starts one small child
(:mod:`~tcpchatx.capture.namespace_sockets_child`) in a new namespace, holding one end of
a socket pair; :meth:`~NamespaceSockets.socket` asks it for a socket and receives the
descriptor; and :meth:`~NamespaceSockets.start_capture` asks it to capture its ``lo``,
which carries exactly the traffic of those sockets. Every socket from one
``NamespaceSockets`` shares its loopback, so they can talk to each other; nothing
outside can reach them. The messages are in
:mod:`~tcpchatx.capture.namespace_sockets_protocol`.

*No orphans.* The child serves until its end of the pair reports end-of-file: when
:meth:`~NamespaceSockets.close` closes ours, or when this process dies and the kernel
closes it. It is process 1 of its own PID namespace, so whatever it started (dumpcap)
dies with it. The sockets already handed out keep working after the child has gone;
they keep the namespace alive until the last one is closed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from socket import AF_INET, SOCK_STREAM
from typing import NoReturn

from .errors import CaptureError, RootlessUnavailableError
from .live import CaptureResult, pick_backend
from .namespace_sockets_protocol import (
    MAX_MESSAGE,
    MakeSocket,
    Reply,
    Request,
    StartCapture,
    StopCapture,
    encode_request,
    parse_reply,
)
from .output import resolve_output_path
from .rootless import rootless_available, unshare_command
from .tools import find_unshare

CHILD = "tcpchatx.capture.namespace_sockets_child"
REPLY_TIMEOUT = 60.0  # seconds; starting or stopping dumpcap takes about one
EXIT_TIMEOUT = 10.0  # seconds for the child to leave once its end of the pair closes


class NamespaceSocketsError(CaptureError):
    """The namespace's socket factory refused a request, or is not running any more."""


class NamespaceSockets:
    """A socket factory in one private user + network namespace, and captures of its ``lo``.

    Linux only, without any rights (as :func:`~tcpchatx.capture.rootless.run_rootless`).
    Use as a context manager, or call :meth:`start` and :meth:`close` yourself.
    Thread-safe: one request at a time.
    """

    def __init__(self, timeout: float = REPLY_TIMEOUT) -> None:
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._stderr = None  # the child's stderr, kept in a temporary file for error messages
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._channel is not None

    @property
    def pid(self) -> int | None:
        """The process id of the ``unshare`` that holds the namespace (the child runs under it)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> NamespaceSockets:
        """Start the child in a new namespace; return once its ``lo`` is up.

        Raises :class:`RootlessUnavailableError` (naming the fallback) if namespaces are off.
        """
        if self.running:
            raise NamespaceSocketsError("this socket factory is already running")
        available, reason = rootless_available()
        if not available:
            raise RootlessUnavailableError(reason)
        unshare = find_unshare()
        assert unshare is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = tempfile.TemporaryFile(prefix="tcpchatx-namespace-sockets-")
        try:
            # Its own session, as dumpcap: a Ctrl-C typed in the terminal is for Python only.
            self._process = subprocess.Popen(
                [*unshare_command(unshare), sys.executable, "-m", CHILD, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr, start_new_session=True)
        except OSError as exc:
            ours.close()
            self._last_words()  # none yet: this just closes the file
            raise NamespaceSocketsError(f"cannot run {unshare}: {exc}") from exc
        finally:
            theirs.close()  # the child's copy is the only one now: its exit is our end-of-file
        self._channel = ours
        with self._lock:
            try:
                hello, _ = self._receive("while starting")
            except BaseException:  # Ctrl-C while waiting, too: leave nothing running
                self._shut()
                raise
            if not hello.ok:
                self._broken(f"the namespace could not be set up: {hello.error}")
        return self

    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A new ``socket.socket(family, type, proto)``, created inside the namespace."""
        _, fds = self._ask(MakeSocket(int(family), int(type), int(proto)))
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise NamespaceSocketsError(f"the namespace sent {len(fds)} descriptors for one socket")
        return socket.socket(fileno=fds[0])

    def start_capture(self, port: int, out_path: str | os.PathLike[str], backend: str = "auto") -> Path:
        """Capture ``tcp port PORT`` on the namespace's ``lo`` into *out_path*; return its path.

        As :class:`~tcpchatx.capture.LiveCapture`: returns once packets are being recorded,
        and the file appears (whole) only when :meth:`stop_capture` returns.
        """
        path = resolve_output_path(out_path)
        self._ask(StartCapture(port, str(path), pick_backend(backend)))
        return path

    def stop_capture(self) -> CaptureResult:
        """Stop the capture; return what the file holds (every packet sent before this call)."""
        reply, _ = self._ask(StopCapture())
        assert reply.capture is not None
        return CaptureResult.from_dict(reply.capture)

    def close(self) -> None:
        """Close our end of the pair, so the child ends (abandoning any running capture)."""
        with self._lock:
            self._shut()

    def __enter__(self) -> NamespaceSockets:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"running under unshare pid {self.pid}" if self.running else "not running"
        return f"<NamespaceSockets {state}>"

    # ------------------------------------------------------------------ the exchange

    def _ask(self, request: Request) -> tuple[Reply, list[int]]:
        """Send *request*, return the reply and the descriptors beside it; raise if refused."""
        with self._lock:
            if self._channel is None:
                raise NamespaceSocketsError("this socket factory is not running; start() it first")
            try:
                try:
                    self._channel.send(encode_request(request))
                except OSError as exc:
                    self._broken(f"could not send {type(request).__name__} ({exc})")
                reply, fds = self._receive(f"to {type(request).__name__}")
            except NamespaceSocketsError:
                raise
            except BaseException:  # Ctrl-C mid-exchange: later replies would answer the wrong request
                self._shut()
                raise
        if not reply.ok:
            for fd in fds:
                os.close(fd)
            raise NamespaceSocketsError(f"inside the namespace, {type(request).__name__} failed: {reply.error}")
        return reply, fds

    def _receive(self, waiting: str) -> tuple[Reply, list[int]]:
        """The next reply and the descriptors beside it; *waiting* says for what, in errors."""
        assert self._channel is not None
        self._channel.settimeout(self.timeout)
        try:
            data, fds, flags, _ = socket.recv_fds(self._channel, MAX_MESSAGE, 1,
                                                  socket.MSG_CMSG_CLOEXEC)
        except TimeoutError:
            self._broken(f"no answer {waiting} within {self.timeout:g} s")
        except OSError as exc:
            self._broken(f"no answer {waiting} ({exc})")
        if not data:
            self._broken(f"no answer {waiting}")
        if flags & socket.MSG_CTRUNC:
            for fd in fds:
                os.close(fd)
            self._broken("the namespace sent more descriptors than asked for")
        try:
            return parse_reply(data), fds
        except ValueError as exc:
            self._broken(str(exc))

    def _shut(self) -> str:
        """Close our end, wait for the child to leave; how it left, in words. Holds the lock."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        status = self._end_child()
        said = self._last_words()
        how = ("never ran" if status is None else f"was killed by signal {-status}" if status < 0
               else f"exited with status {status}")
        return how + (f" and said:\n{said}" if said else "")

    def _broken(self, why: str) -> NoReturn:
        """The exchange cannot go on: stop the child, raise with its last words. Holds the lock."""
        raise NamespaceSocketsError(f"{why}: the socket factory in the namespace {self._shut()}")

    def _end_child(self) -> int | None:
        """Wait for the child to leave after our end closed; kill it if it will not."""
        if self._process is None:
            return None
        process, self._process = self._process, None
        try:
            return process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()  # unshare --kill-child passes the SIGKILL on to the child
            return process.wait()

    def _last_words(self) -> str:
        """What the child (or unshare) wrote to stderr, at most its last 2,000 characters."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip()
        self._stderr.close()
        self._stderr = None
        return said[-2000:]
