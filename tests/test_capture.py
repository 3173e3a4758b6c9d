"""Live capture on loopback: complete, exact, atomic — with both backends, for real.

These tests need capture permission (root, or dumpcap's capabilities); without it
they are skipped and tests/test_capture_rootless.py covers the unprivileged paths.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpchatx.capture import (
    CaptureError,
    LiveCapture,
    live_capture_available,
    loopback_interface,
)
from tcpchatx.capture.cli import capture_main
from tcpchatx.capture.interfaces import loopback_from_interface_list
from tcpchatx.capture.output import resolve_output_path
from tcpchatx.capture.pcapng import PcapngWriter, copy_without_marker
from tcpchatx.capture.selftest import exchange_lines, refused_connect, tcp_segments
from tcpchatx.capture.tools import find_dumpcap

BACKENDS = ["dumpcap", "scapy"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not live_capture_available("scapy")[0]
    or find_dumpcap() is None,
    reason="needs Linux, dumpcap, and permission to capture on lo",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flags(path: Path) -> list[str]:
    return [flag for flag, _payload in tcp_segments(path)]


# --- the capture is exact: every segment once, none missing ----------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_connect_is_exactly_syn_then_rst(tmp_path, backend):
    # The SYN is sent the instant start() returns and the RST just before stop():
    # both are in the file only if start() is really ready and stop() really flushes.
    for attempt in range(3):
        port = free_port()
        capture = LiveCapture(port, tmp_path / f"refused{attempt}.pcapng", backend=backend).start()
        assert refused_connect(port)["refused"]
        result = capture.stop()
        assert flags(result.path) == ["S", "RA"]
        assert result.packets == 2
        assert result.dropped == 0
        assert (result.backend, result.interface) == (backend, "lo")
        assert result.capture_filter == f"tcp port {port}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_exchange_has_every_segment_exactly_once(tmp_path, backend):
    port = free_port()
    lines = ["alpha", "bravo", "charlie"]
    with LiveCapture(port, tmp_path / "exchange.pcapng", backend=backend) as capture:
        assert exchange_lines(port, lines)["echoed"] == lines
    segments = tcp_segments(capture.result.path)
    seen = [flag for flag, _ in segments]
    assert seen[:3] == ["S", "SA", "A"]  # the handshake, once
    assert seen.count("S") == 1 and seen.count("SA") == 1
    assert sum("F" in flag for flag in seen) == 2  # one FIN from each side
    assert seen[-1] == "A"  # the last ACK of the teardown made it too
    payloads = [payload for _, payload in segments if payload]
    for line in lines:  # once from the client, once echoed back
        assert payloads.count(f"{line}\n".encode()) == 2
    assert capture.result.packets == len(segments)
    assert "" not in seen  # no stray non-TCP packet (the flush marker is removed)


def test_both_backends_record_the_same_packets(tmp_path):
    port = free_port()
    with LiveCapture(port, tmp_path / "d.pcapng", backend="dumpcap") as by_dumpcap, \
            LiveCapture(port, tmp_path / "s.pcapng", backend="scapy") as by_scapy:
        exchange_lines(port, ["same", "packets", "big" * 50_000])  # 150 kB: 64 KiB segments
    from scapy.utils import rdpcap

    dumpcap_packets = [bytes(p) for p in rdpcap(str(by_dumpcap.result.path))]
    scapy_packets = [bytes(p) for p in rdpcap(str(by_scapy.result.path))]
    assert scapy_packets == dumpcap_packets
    assert by_scapy.result.packets == by_dumpcap.result.packets == len(dumpcap_packets)
    assert by_scapy.result.dropped == by_dumpcap.result.dropped == 0
    assert max(map(len, scapy_packets)) > 60_000  # whole 64 KiB loopback segments, not cut short


def test_a_plain_scapy_socket_on_lo_sees_every_packet_twice():
    """The measured fact behind the scapy backend's 'inbound' filter."""
    from scapy.all import conf

    port = free_port()
    sock = conf.L2listen(iface="lo", filter=f"tcp port {port}")
    try:
        refused_connect(port)
        seen = []
        while select.select([sock], [], [], 0)[0]:
            seen.append(sock.recv())
    finally:
        sock.close()
    assert [str(p["TCP"].flags) for p in seen] == ["S", "S", "RA", "RA"]


def test_extra_filter_narrows_the_capture(tmp_path):
    port = free_port()
    with LiveCapture(port, tmp_path / "syn.pcapng", extra_filter="tcp[tcpflags] & tcp-syn != 0") as capture:
        refused_connect(port)
    assert flags(capture.result.path) == ["S"]
    assert capture.result.capture_filter == f"tcp port {port} and (tcp[tcpflags] & tcp-syn != 0)"


# --- the file appears whole or not at all --------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_destination_appears_only_when_complete(tmp_path, backend):
    port = free_port()
    destination = tmp_path / "atomic.pcapng"
    capture = LiveCapture(port, destination, backend=backend).start()
    refused_connect(port)
    assert not destination.exists()
    in_progress = [p.name for p in tmp_path.iterdir()]
    assert in_progress and all(name.startswith(".atomic.pcapng.") for name in in_progress)
    capture.stop()
    assert [p.name for p in tmp_path.iterdir()] == ["atomic.pcapng"]


def test_a_dumpcap_that_dies_leaves_no_file(tmp_path):
    port = free_port()
    capture = LiveCapture(port, tmp_path / "crash.pcapng", backend="dumpcap").start()
    refused_connect(port)
    os.kill(capture._engine._proc.pid, signal.SIGKILL)  # dumpcap crashes mid-capture
    with pytest.raises(CaptureError, match="dumpcap exited while capturing"):
        capture.stop()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_interface_fails_cleanly(tmp_path, backend):
    with pytest.raises(CaptureError, match="dumpcap -D|cannot listen"):
        LiveCapture(free_port(), tmp_path / "x.pcapng", backend=backend, interface="nosuch0").start()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_dumpcap_is_reported_not_crashed_on(tmp_path, monkeypatch):
    monkeypatch.setenv("TCPCHATX_DUMPCAP", str(tmp_path / "no-dumpcap"))
    with pytest.raises(CaptureError, match="cannot run dumpcap.*TCPCHATX_DUMPCAP"):
        LiveCapture(free_port(), tmp_path / "x.pcapng", backend="dumpcap").start()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_abort_discards_the_capture(tmp_path):
    capture = LiveCapture(free_port(), tmp_path / "gone.pcapng").start()
    capture.abort()
    assert list(tmp_path.iterdir()) == []
    assert not capture.running


def test_capture_is_saved_even_if_the_body_raises(tmp_path):
    port = free_port()
    with pytest.raises(RuntimeError, match="scenario broke"):
        with LiveCapture(port, tmp_path / "partial.pcapng"):
            refused_connect(port)
            raise RuntimeError("scenario broke")
    assert flags(tmp_path / "partial.pcapng") == ["S", "RA"]


# --- small pieces ----------------------------------------------------------------------------


def test_bare_file_name_goes_into_captures_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_output_path("join.pcapng") == tmp_path / "captures" / "join.pcapng"
    assert (tmp_path / "captures").is_dir()
    assert resolve_output_path("./here.pcapng") == tmp_path / "here.pcapng"
    assert resolve_output_path("sub/dir/x.pcapng") == tmp_path / "sub" / "dir" / "x.pcapng"
    with pytest.raises(IsADirectoryError):
        resolve_output_path(tmp_path / "captures")


def test_bad_arguments_are_refused_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="port"):
        LiveCapture(70000, tmp_path / "x.pcapng")
    with pytest.raises(ValueError, match="backend"):
        LiveCapture(5000, tmp_path / "x.pcapng", backend="tcpdump")
    with pytest.raises(CaptureError, match="not running"):
        LiveCapture(5000, tmp_path / "x.pcapng").stop()


def test_loopback_interface_names():
    assert loopback_interface() == "lo"
    listing = subprocess.run([find_dumpcap(), "-D"], capture_output=True, text=True).stdout
    assert loopback_from_interface_list(listing) == "lo"
    windows = ("1. \\Device\\NPF_{5A2B...} (Ethernet)\n"
               "2. \\Device\\NPF_Loopback (Adapter for loopback traffic capture)\n")
    assert loopback_from_interface_list(windows) == "\\Device\\NPF_Loopback"
    assert loopback_from_interface_list("1. eth0\n2. any\n") is None


def test_marker_blocks_are_removed_and_the_rest_kept(tmp_path):
    raw, clean = tmp_path / "raw.pcapng", tmp_path / "clean.pcapng"
    writer = PcapngWriter(raw, linktype=1, interface="lo", capture_filter="tcp")
    for payload in (b"first" * 10, b"xx-MARKER-xx" * 5, b"last" * 10):
        writer.write(payload, time.time())
    writer.close()
    assert copy_without_marker(raw, clean, b"-MARKER-") == 2
    assert copy_without_marker(raw, tmp_path / "all.pcapng", None) == 3
    from scapy.utils import rdpcap

    assert [bytes(p)[:5] for p in rdpcap(str(clean))] == [b"first", b"lastl"]


# --- the command-line entry ---------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_capture_main_saves_everything_when_told_to_stop(tmp_path, stop_signal):
    port = free_port()
    out = tmp_path / "cli.pcapng"
    code = ("import signal, sys\n"
            # as in a terminal, even if this test runs as a background job (SIGINT ignored)
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from tcpchatx.capture.cli import capture_main\n"
            f"sys.exit(capture_main({port}, {str(out)!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert "Capturing 'tcp port" in proc.stdout.readline()  # printed once really capturing
        refused_connect(port)
        proc.send_signal(stop_signal)
        output = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:  # let it clean up its dumpcap rather than orphan it
            proc.terminate()
            proc.wait(30)
    assert proc.returncode == 0
    assert "Packets captured: 2, dropped: 0." in output
    assert flags(out) == ["S", "RA"]


def test_dumpcap_does_not_outlive_a_python_that_forgot_to_stop(tmp_path):
    code = ("from tcpchatx.capture import LiveCapture\n"
            f"capture = LiveCapture({free_port()}, {str(tmp_path / 'x.pcapng')!r}, backend='dumpcap').start()\n"
            "print(capture._engine._proc.pid)\n")  # ...and exit without stop()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    pid = int(done.stdout)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert list(tmp_path.iterdir()) == []  # and nothing half-written at the destination


def test_capture_main_with_duration_saves_an_empty_but_valid_file(tmp_path, capsys):
    assert capture_main(free_port(), str(tmp_path / "quiet.pcapng"), backend="scapy", duration=0.1) == 0
    assert "Packets captured: 0, dropped: 0." in capsys.readouterr().out
    assert tcp_segments(tmp_path / "quiet.pcapng") == []
