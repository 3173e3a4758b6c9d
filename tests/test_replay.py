"""tcpchatx replay: step through a real capture, by packet and by phase, with real input.

The capture is made here: a real server, three real clients and dumpcap on loopback.
Every wait is on something observable (a line received, a socket state), never a sleep.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tcpchatx.analysis import analyze, format_summary
from tcpchatx.capture import LiveCapture
from tcpchatx.capture.tools import find_dumpcap
from tcpchatx.client import ChatClient
from tcpchatx.redrive import _wait_settled
from tcpchatx.replay import Keys, replay, replay_main, stops
from tcpchatx.server import ChatServer

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
needs_dumpcap = pytest.mark.skipif(find_dumpcap() is None, reason="needs dumpcap (Wireshark)")
ROW = re.compile(r"^\s*(\d+)\s+\d+\.\d+\s+.*\|\s+server\s+(.*)$")


def record_chat_session(path: Path) -> Path:
    """alice, bob and carol join and chat (a /msg too); bob /quits, carol closes, alice aborts."""
    with ChatServer(HOST, 0) as server, LiveCapture(server.port, path, backend="dumpcap"):
        alice = ChatClient.connect(HOST, server.port, "alice")
        bob = ChatClient.connect(HOST, server.port, "bob")
        alice.receive()  # *** bob joined
        carol = ChatClient.connect(HOST, server.port, "carol")
        alice.receive(), bob.receive()  # *** carol joined
        alice.send("hello everyone")
        bob.receive(), carol.receive()
        bob.send("hi alice")
        alice.receive(), carol.receive()
        carol.send("/msg alice psst, just between us")
        alice.receive(), carol.receive()  # the private line; carol's "--- -> alice" reply
        alice.send("see you")
        bob.receive(), carol.receive()
        bob.quit()
        alice.receive(), carol.receive()  # *** bob left (quit)
        carol.close()
        alice.receive()  # *** carol left (closed by client)
        alice.abort()
        _wait_settled(server, server.port, set(), timeout=5.0)  # every FIN/RST is on the wire
    return path


@pytest.fixture(scope="module")
def session_capture(tmp_path_factory) -> Path:
    if find_dumpcap() is None:
        pytest.skip("needs dumpcap (Wireshark)")
    return record_chat_session(tmp_path_factory.mktemp("replay") / "session.pcapng")


def run_replay(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpchatx.replay", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


# --------------------------------------------------------------------------- --auto


@needs_dumpcap
def test_auto_shows_every_frame_with_its_step_then_the_summary(session_capture, capsys):
    a = analyze(session_capture)
    assert replay_main(str(session_capture), auto=True, delay=0) == 0
    output = capsys.readouterr().out
    steps = {int(m.group(1)): m.group(2).strip() for m in map(ROW.match, output.splitlines()) if m}
    assert sorted(steps) == list(range(1, len(a) + 1))
    for i in range(len(a)):
        assert steps[i + 1] == a.step(i).name, f"frame {i + 1}"
    assert f"== packet {len(a)}/{len(a)}, phase" in output
    assert output.rstrip().endswith(format_summary(a).rstrip())
    assert "chat: carol -> server, command: '/msg alice psst, just between us'" in output
    assert "chat: server -> alice, private: '*carol* psst, just between us'" in output


@needs_dumpcap
def test_by_phase_shows_each_phase_once_per_connection_in_order(session_capture, capsys):
    a = analyze(session_capture)
    assert replay_main(str(session_capture), auto=True, delay=0, by="phase") == 0
    output = capsys.readouterr().out
    titles = re.findall(r"^== phase (\d+)/(\d+): (\w+) of connection (\d+) \((\w+)\)", output, re.M)
    assert [int(k) for k, *_ in titles] == list(range(1, len(titles) + 1))
    phases: dict[str, list[str]] = {}
    for _, _, phase, _, nick in titles:
        phases.setdefault(nick, []).append(phase)
    assert phases == {"alice": ["handshake", "data", "reset"],
                      "bob": ["handshake", "data", "teardown"],
                      "carol": ["handshake", "data", "teardown"]}
    shown = sorted(int(m.group(1)) for m in map(ROW.match, output.splitlines()) if m)
    assert shown == list(range(1, len(a) + 1))  # every packet, each in exactly one phase


@needs_dumpcap
def test_stops_by_phase_cover_each_packet_once(session_capture):
    a = analyze(session_capture)
    rows = sorted(r for stop in stops(a, "phase") for r in stop.rows)
    assert rows == list(range(len(a)))


# --------------------------------------------------------------------------- keys


@needs_dumpcap
@pytest.mark.parametrize("k", [0, 3])
def test_line_mode_enter_advances_and_q_quits(session_capture, k):
    result = run_replay(str(session_capture), stdin="\n" * k + "q\n")
    assert result.returncode == 0, result.stderr
    shown = re.findall(r"^== packet (\d+)/(\d+)", result.stdout, re.M)
    assert [int(n) for n, _ in shown] == list(range(1, k + 2))
    assert f"stopped at packet {k + 1}/{shown[0][1]}" in result.stdout
    assert "Traceback" not in result.stderr


@needs_dumpcap
def test_line_mode_p_goes_back_and_end_of_input_quits(session_capture):
    a = analyze(session_capture)
    out = io.StringIO()
    shown = replay(a, keys=Keys(io.StringIO("n\nn\np\n")), out=out, screen=False)
    frames = [int(n) for n in re.findall(r"^== packet (\d+)/", out.getvalue(), re.M)]
    assert frames == [1, 2, 3, 2] and shown == 4
    assert "stopped at packet 2/" in out.getvalue()


@needs_dumpcap
def test_single_keys_in_a_real_terminal(session_capture):
    a = analyze(session_capture)
    n = len(a)
    child = pexpect.spawn(sys.executable, ["-m", "tcpchatx.replay", str(session_capture)],
                          cwd=str(ROOT), dimensions=(40, 120), encoding="utf-8", timeout=20,
                          env={**os.environ, "TERM": "xterm"})
    try:
        child.expect(f"packet 1/{n}, phase handshake")
        child.expect("keys: Enter/space/n next")
        child.send("n")  # one key, no Enter: raw mode
        child.expect(f"packet 2/{n}, phase handshake")
        child.send(" ")
        child.expect(f"packet 3/{n}, phase handshake")
        child.send("p")
        child.expect(f"packet 2/{n}, phase handshake")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


# --------------------------------------------------------------------------- errors


def test_missing_file_is_one_clear_line(tmp_path):
    result = run_replay(str(tmp_path / "nope.pcapng"), "--auto")
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_not_a_capture_is_one_clear_line(tmp_path):
    bogus = tmp_path / "notes.pcapng"
    bogus.write_text("these are my lab notes, not packets\n")
    result = run_replay(str(bogus), "--auto", "--delay", "0")
    assert result.returncode == 2
    assert "not a capture" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- every shipped capture


@pytest.mark.parametrize("capture", sorted((ROOT / "captures").glob("*.pcapng")), ids=lambda p: p.name)
def test_replay_runs_over_every_shipped_capture(capture):
    a = analyze(capture)
    out = io.StringIO()
    assert replay(a, auto=True, out=out, screen=False) == len(a)
    shown = sorted(int(m.group(1)) for m in map(ROW.match, out.getvalue().splitlines()) if m)
    tracked = [i + 1 for i in range(len(a)) if a.step(i) is not None]
    assert shown == tracked
    assert out.getvalue().rstrip().endswith(format_summary(a).rstrip())
