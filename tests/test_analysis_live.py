"""Real kernel shapes: capture a real chat on the loopback interface with dumpcap,
then check the analysis against tshark and against what the clients saw."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest

from analysis_helpers import TSHARK, assert_agrees_with_tshark
from tcpchatx.analysis import CLOSE_KINDS, analyze
from tcpchatx.client import ChatClient
from tcpchatx.protocol import Kind

DUMPCAP = shutil.which("dumpcap")
pytestmark = pytest.mark.skipif(DUMPCAP is None or TSHARK is None, reason="needs dumpcap and tshark")


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)


def frames_in(path, display_filter: str = "frame") -> int:
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True,
    ).stdout
    return len(out.split())


@pytest.fixture
def capture_lo(tmp_path):
    """Start dumpcap on lo for one port; yields a function that stops it and returns the file."""
    procs = []

    def start(port: int):
        path = tmp_path / "live.pcapng"
        proc = subprocess.Popen(
            [DUMPCAP, "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append(proc)
        wait_for(lambda: path.exists() and path.stat().st_size > 0 or proc.poll() is not None,
                 what="dumpcap to start")
        if proc.poll() is not None:
            pytest.skip(f"dumpcap cannot capture here: {proc.stderr.read().decode()[:200]}")

        def stop():
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            return path

        return path, stop

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_real_chat_on_loopback(start_server, capture_lo):
    server = start_server()
    path, stop = capture_lo(server.port)
    # A probe connection: once its packets are in the file, dumpcap is surely capturing.
    probe = ChatClient.open("127.0.0.1", server.port)
    probe.receive()
    probe.close()
    wait_for(lambda: frames_in(path) >= 3, what="the probe's packets in the capture")

    alice = ChatClient.connect("127.0.0.1", server.port, "alice", nodelay=True)
    bob = ChatClient.connect("127.0.0.1", server.port, "bob", nodelay=True)
    alice.receive_until(lambda line: "bob joined" in line.text)
    alice.send("hello bob")
    assert bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1].text == "hello bob"
    alice.send("/msg bob psst")
    assert bob.receive_until(lambda line: line.kind is Kind.PRIVATE)[-1].text == "psst"
    alice.send("/me waves at bob")
    assert bob.receive_until(lambda line: line.kind is Kind.ACTION)[-1].text == "waves at bob"
    alice.quit()
    bob.quit()
    wait_for(lambda: server.client_count() == 0, what="the server to forget its clients")
    # Every connection closed with two FINs: wait until the file holds all six.
    wait_for(lambda: frames_in(path, "tcp.flags.fin == 1") >= 6, what="the FINs in the capture")
    a = analyze(stop())

    assert_agrees_with_tshark(a, path)
    assert a.chat.server == ("127.0.0.1", server.port)
    nicks = sorted(a.chat.nick_of_conn.values())
    assert nicks == ["alice", "bob"]
    for conn in a.connections:
        assert conn.close_kind in CLOSE_KINDS
        assert conn.handshake_frames and conn.isn[0] is not None
    quitters = [c for c in a.connections if a.chat.nick_of_conn.get(c.id)]
    assert all(c.conn_state == "SF" for c in quitters)
    assert all(c.close_kind in ("four-way", "three-way") for c in quitters)
    hello = next(m for m in a.messages if m.text == "hello bob")
    assert [d.recipient for d in hello.deliveries] == ["bob"]
    assert 0 <= hello.deliveries[0].latency < 1.0
    psst = next(m for m in a.messages if m.kind == "private")
    assert (psst.sender, psst.to, [d.recipient for d in psst.deliveries]) == ("alice", "bob", ["bob"])
    waves = next(m for m in a.messages if m.kind == "action")
    assert (waves.sender, waves.text, [d.recipient for d in waves.deliveries]) == ("alice", "waves at bob", ["bob"])
    assert [x.id for x in a.lines if x.kind == "action"] == [waves.deliveries[0].line]
    # dumpcap writes nanosecond pcapng; the reader keeps the resolution
    assert set(a.packets.ts_tps) == {10**9}
