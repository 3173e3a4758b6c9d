"""Sockets made in a private namespace and handed to this process: NamespaceSockets.

Everything runs for real: the child under ``unshare``, the descriptors over the socket
pair, dumpcap on the namespace's loopback; as root and as the user ``nobody``. The
captures are read twice, by our analysis and by tshark.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_capture_rootless import as_nobody, run_as_nobody

from tcpchatx.analysis import analyze
from tcpchatx.capture import (
    CaptureError,
    NamespaceSockets,
    NamespaceSocketsError,
    RootlessUnavailableError,
    rootless_available,
)
from tcpchatx.capture.namespace_sockets_protocol import (
    BadRequest,
    MakeSocket,
    Reply,
    StartCapture,
    StopCapture,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)
from tcpchatx.capture.tools import UNSHARE_ENV, find_dumpcap

REPO = Path(__file__).resolve().parents[1]
TSHARK = shutil.which("tshark")
GREETING = b"hello from inside the namespace\n"

namespaces = pytest.mark.skipif(not rootless_available()[0] or find_dumpcap() is None,
                                reason="needs user namespaces and dumpcap")


def host_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The processes *pid* started (from its main thread, as subprocess does)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that does not reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until_gone(pids: list[int], seconds: float = 15.0) -> list[int]:
    """Poll until none of *pids* runs (or the deadline); the ones still running."""
    deadline = time.monotonic() + seconds
    while [pid for pid in pids if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


def tshark_segments(path: Path) -> list[tuple[str, bytes]]:
    """(flags as hex, payload) of each TCP packet, as Wireshark reads them."""
    done = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "tcp.flags", "-e", "tcp.payload"],
                          capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
    return [(flags, bytes.fromhex(payload.replace(":", ""))) for flags, payload in rows]


# --------------------------------------------------------------------------- the messages (no I/O)


def test_every_request_survives_the_trip():
    for request in (MakeSocket(2, 1, 0), StartCapture(5000, "/tmp/x.pcapng", "dumpcap"), StopCapture()):
        assert parse_request(encode_request(request)) == request
    assert parse_request(b'{"op": "socket", "family": 10, "type": 2}') == MakeSocket(10, 2, 0)
    reply = Reply(ok=True, capture={"packets": 3})
    assert parse_reply(encode_reply(reply)) == reply


@pytest.mark.parametrize(("data", "words"), [
    (b"\xff not json", "this is not JSON"),
    (b"[1, 2]", "one JSON object, not list"),
    (b'{"op": "fly"}', "unknown request 'fly'; the requests are socket, capture, stop"),
    (b'{"family": 2}', "unknown request None"),
    (b'{"op": "socket", "type": 1}', "the 'socket' request needs 'family'"),
    (b'{"op": "capture", "port": true, "path": "/x"}', "'port' must be int, not True"),
    (b'{"op": "capture", "port": 5000.5, "path": "/x"}', "'port' must be int, not 5000.5"),
    (b'{"op": "stop", "now": 1}', "the 'stop' request has no field 'now'"),
])
def test_a_bad_request_is_refused_with_a_sentence(data, words):
    with pytest.raises(BadRequest) as refused:
        parse_request(data)
    assert words in str(refused.value)


def test_a_reply_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="not a reply from the namespace"):
        parse_reply(b'{"ok": true, "fd": 3}')


# --------------------------------------------------------------------------- as root


@namespaces
@pytest.mark.skipif(TSHARK is None, reason="needs tshark")
def test_sockets_from_the_namespace_talk_and_are_captured(tmp_path):
    port = host_free_port()  # free out here too: the refused connect below proves the namespace
    with NamespaceSockets() as sockets:
        listener = sockets.socket()
        assert isinstance(listener, socket.socket) and listener.family == socket.AF_INET
        listener.bind(("127.0.0.1", port))
        listener.listen()
        path = sockets.start_capture(port, tmp_path / "mine.pcapng")
        assert path == tmp_path / "mine.pcapng" and not path.exists()  # whole, or not at all
        client = sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(("127.0.0.1", port))
        with socket.socket() as outsider, pytest.raises(ConnectionRefusedError):
            outsider.connect(("127.0.0.1", port))  # this machine's loopback has no such listener
        server_side, _ = listener.accept()
        client.sendall(GREETING)
        assert server_side.recv(1024) == GREETING
        for sock in (client, server_side, listener):
            sock.close()
        result = sockets.stop_capture()
    assert result.path == path and result.backend == "dumpcap" and result.dropped == 0

    analysis = analyze(path)
    assert len(analysis) == result.packets
    assert len(analysis.connections) == 1  # the outsider's SYN went over another loopback
    assert analysis.packets_df()["step"].tolist()[:3] == ["SYN", "SYN-ACK", "ACK (handshake)"]
    seen = tshark_segments(path)
    assert [flags for flags, _ in seen[:3]] == ["0x0002", "0x0012", "0x0010"]
    assert b"".join(payload for _, payload in seen) == GREETING
    assert sum(int(flags, 16) & 0x01 for flags, _ in seen) == 2  # both FINs


@namespaces
def test_a_bad_request_gets_the_childs_words_and_the_child_serves_on(tmp_path):
    with NamespaceSockets() as sockets:
        with pytest.raises(NamespaceSocketsError, match=r"inside the namespace, MakeSocket failed: "
                                                        r"OSError: .*Address family not supported"):
            sockets.socket(family=12345)
        with pytest.raises(NamespaceSocketsError, match="StopCapture failed: RuntimeError: no capture is running"):
            sockets.stop_capture()
        with pytest.raises(NamespaceSocketsError, match="BadRequest: the 'capture' request's 'port' must be int"):
            sockets.start_capture(5000.5, tmp_path / "never.pcapng")
        with pytest.raises(NamespaceSocketsError, match="port must be an integer from 1 to 65535"):
            sockets.start_capture(0, tmp_path / "never.pcapng")
        sockets.start_capture(5000, tmp_path / "once.pcapng")
        with pytest.raises(NamespaceSocketsError, match="a capture of port 5000 is already running"):
            sockets.start_capture(5001, tmp_path / "twice.pcapng")
        assert sockets.stop_capture().packets == 0
        with sockets.socket(socket.AF_INET6, socket.SOCK_DGRAM) as still_served:
            assert still_served.type == socket.SOCK_DGRAM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.pcapng"]  # no temporary file left
    assert issubclass(NamespaceSocketsError, CaptureError)


@namespaces
def test_close_ends_the_child_and_the_sockets_keep_working():
    sockets = NamespaceSockets().start()
    unshare = sockets.pid
    child = children(unshare)
    assert len(child) == 1 and alive(child[0])
    listener = sockets.socket()
    listener.bind(("127.0.0.1", 5000))
    listener.listen()
    client = sockets.socket()
    client.connect(("127.0.0.1", 5000))
    server_side, _ = listener.accept()
    sockets.close()
    assert not sockets.running and not alive(unshare) and wait_until_gone(child) == []
    client.sendall(GREETING)  # the namespace lives on in its sockets
    assert server_side.recv(1024) == GREETING
    for sock in (client, server_side, listener):
        sock.close()
    with pytest.raises(NamespaceSocketsError, match="not running; start"):
        sockets.socket()
    sockets.close()  # twice is fine


@namespaces
def test_the_child_ends_when_its_parent_dies_mid_capture(tmp_path):
    """SIGKILL the parent (no close(), no atexit): the kernel closes its end of the pair,
    the child sees end-of-file, abandons the capture and exits; dumpcap goes with it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", f"""
import sys
from tcpchatx.capture import NamespaceSockets
sockets = NamespaceSockets().start()
sockets.start_capture(5000, {str(tmp_path / "unfinished.pcapng")!r})
print(sockets.pid, flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        unshare = int(parent.stdout.readline())
        child = children(unshare)
        dumpcap = children(child[0])
        assert len(child) == 1 and len(dumpcap) == 1
        assert "dumpcap" in Path(f"/proc/{dumpcap[0]}/cmdline").read_text()
    finally:
        parent.kill()
        parent.wait()
    assert wait_until_gone([unshare, *child, *dumpcap]) == []
    assert list(tmp_path.iterdir()) == []  # no capture, no temporary file


@namespaces
def test_a_dead_child_is_a_clear_error():
    sockets = NamespaceSockets().start()
    child = children(sockets.pid)
    os.kill(child[0], signal.SIGKILL)
    # Whether the request finds the pair already closed or waits for an answer that never
    # comes depends on how soon unshare follows its child out; either way it says so.
    with pytest.raises(NamespaceSocketsError, match=r"(no answer to|could not send) MakeSocket\b.*: the socket "
                                                    r"factory in the namespace (was killed|exited)"):
        sockets.socket()  # (unshare passes the SIGKILL on as its own exit, or says why it cannot)
    assert not sockets.running
    sockets.close()


@pytest.mark.parametrize("unshare", ["/bin/false", "/nonexistent/unshare"])
def test_without_namespaces_start_names_the_fallback(monkeypatch, unshare):
    monkeypatch.setenv(UNSHARE_ENV, unshare)
    with pytest.raises(RootlessUnavailableError, match="reference captures"):
        NamespaceSockets().start()


# --------------------------------------------------------------------------- as nobody


@as_nobody
@pytest.mark.skipif(TSHARK is None or find_dumpcap() is None, reason="needs tshark and dumpcap")
def test_nobody_gets_sockets_and_a_capture_from_the_namespace(shared_dir):
    outcome = run_as_nobody(f"""
import json, os, socket
from tcpchatx.capture import NamespaceSockets, rootless_available
ok, why = rootless_available()
if not ok:
    print(json.dumps({{"skip": why}}))
    raise SystemExit
with NamespaceSockets() as sockets:
    listener = sockets.socket()
    listener.bind(("127.0.0.1", 5000))
    listener.listen()
    sockets.start_capture(5000, "{shared_dir}/nobody.pcapng")
    client = sockets.socket()
    client.connect(("127.0.0.1", 5000))
    server_side, _ = listener.accept()
    client.sendall({GREETING!r})
    received = server_side.recv(1024)
    for sock in (client, server_side, listener):
        sock.close()
    result = sockets.stop_capture()
    unshare = sockets.pid
print(json.dumps({{"capture": result.to_dict(), "received": received.decode(), "uid": os.getuid(),
                   "unshare_left": os.path.exists(f"/proc/{{unshare}}")}}))
""", cwd=shared_dir)
    if "skip" in outcome:
        pytest.skip(f"user namespaces unavailable here: {outcome['skip']}")
    path = shared_dir / "nobody.pcapng"
    assert outcome["uid"] != 0 and outcome["received"] == GREETING.decode()
    assert outcome["capture"]["path"] == str(path) and not outcome["unshare_left"]
    assert path.stat().st_uid == outcome["uid"]  # the file belongs to the user
    analysis = analyze(path)
    assert len(analysis) == outcome["capture"]["packets"] and len(analysis.connections) == 1
    assert analysis.packets_df()["step"].tolist()[:3] == ["SYN", "SYN-ACK", "ACK (handshake)"]
    seen = tshark_segments(path)
    assert [flags for flags, _ in seen[:3]] == ["0x0002", "0x0012", "0x0010"]
    assert b"".join(payload for _, payload in seen) == GREETING
    assert sorted(p.name for p in shared_dir.iterdir()) == ["nobody.pcapng"]

