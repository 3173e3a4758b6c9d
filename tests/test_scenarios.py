"""The scripted stories, captured for real: every story with both capture backends.

Each story must produce its catalogued TCP shape (close kind, Zeek conn_state and
history, active closer, phases) in tcpchatx.analysis, every time; the server's
timeline must line up with the packets; one story also runs in the rootless
namespace.  Captures are made once per (story, backend) and shared by the tests.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

import numpy as np
import pytest

from tcpchatx.analysis import Analysis, analyze
from tcpchatx.capture import live_capture_available, rootless_available
from tcpchatx.capture.tools import find_dumpcap
from tcpchatx.scenarios import (
    ROOTLESS_PORT,
    SCENARIOS,
    StagingError,
    get_scenario,
    play,
    run_scenario,
    stories,
)
from tcpchatx.scenarios.staging import Gates, tcp_state
from tcpchatx.scenarios.stories import Stage
from tcpchatx.server import ChatServer

BACKENDS = ["dumpcap", "scapy"]
RESET_KINDS = ("reset", "refused")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not live_capture_available("scapy")[0]
    or find_dumpcap() is None,
    reason="needs Linux, dumpcap, and permission to capture on lo",
)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """``captured(name, backend)``: (ScenarioRun, Analysis), made once per module."""
    cache: dict[tuple[str, str], tuple] = {}
    directory = tmp_path_factory.mktemp("scenarios")

    def get(name: str, backend: str):
        if (name, backend) not in cache:
            run = run_scenario(name, directory / f"{name}-{backend}.pcapng", mode="live", backend=backend)
            cache[name, backend] = (run, analyze(run.path))
        return cache[name, backend]

    return get


def history_closing(history: str) -> str:
    return "".join(letter for letter in history if letter in "fFrR")


def assert_shape(name: str, run, a: Analysis) -> None:
    """Every connection has the catalogued shape, and only the story's connections exist."""
    expect = SCENARIOS[name].expect
    assert [list(c.client) for c in a.connections] == [client["address"] for client in run.clients]
    for conn in a.connections:
        assert list(conn.server) == run.played["server"]
        shape = (conn.close_kind, conn.active_closer, conn.conn_state, history_closing(conn.history))
        assert shape == (expect.close_kind, expect.active_closer, expect.conn_state, expect.closing), (
            f"{name}: connection {conn.id} history {conn.history}")
        phases = list(a.phase[a.tracking.conn == conn.id])
        handshake = phases.index("handshake"), len(phases) - phases[::-1].index("handshake")
        assert phases[0] == "handshake" and set(phases[: handshake[1]]) == {"handshake"}
        assert "other" not in phases
        if expect.close_kind in RESET_KINDS:
            assert phases[-1] == "reset" and phases.count("reset") == 1
            assert "teardown" not in phases
        else:
            assert phases[-1] == "teardown" and "reset" not in phases
            assert conn.final_state == "TIME_WAIT"
            first_fin = phases.index("teardown")
            assert "handshake" not in phases[first_fin:]


def steps_of(a: Analysis, conn) -> list[tuple[str, str, int]]:
    """(direction, step name, payload length) of each packet of a connection."""
    rows = np.flatnonzero(a.tracking.conn == conn.id)
    return [(a.direction(i), a.step(i).name, int(a.packets.payload_len[i])) for i in rows]


# --------------------------------------------------------------------------- every story


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_story_has_its_shape(captured, name, backend):
    run, a = captured(name, backend)
    assert run.mode == "live" and run.capture.backend == backend and run.path.exists()
    assert run.played["notes"] == []  # every wait watched the kernel, none fell back to a delay
    assert len(a.connections) == len(run.clients) >= 1
    assert_shape(name, run, a)


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_steps_show_what_each_story_is_about(captured, backend):
    _, a = captured("three-way", backend)
    assert ("responder", "FIN+ACK (piggybacked ACK of the peer's FIN)", 0) in steps_of(a, a.connections[0])
    _, a = captured("simultaneous", backend)
    steps = steps_of(a, a.connections[0])
    assert ("originator", "FIN (simultaneous close)", 0) in steps
    assert ("responder", "FIN (retransmission)", 0) in steps  # the FIN the filter hid
    for name in ("quit", "client-close"):  # four separate segments, no retransmission
        _, a = captured(name, backend)
        closing = [s for s in steps_of(a, a.connections[0]) if s[1] in ("FIN", "ACK of FIN")]
        first, second = ("responder", "originator") if name == "quit" else ("originator", "responder")
        assert closing == [(first, "FIN", 0), (second, "ACK of FIN", 0),
                           (second, "FIN", 0), (first, "ACK of FIN", 0)]
        assert not any("retransmission" in step for _, step, _ in steps_of(a, a.connections[0]))
    _, a = captured("half-close", backend)  # the server still sends data after the client's FIN
    steps = steps_of(a, a.connections[0])
    client_fin = steps.index(("originator", "FIN", 0))
    assert any(d == "responder" and n == "DATA" and size > 0 for d, n, size in steps[client_fin:])
    run, a = captured("unread-data", backend)  # the server's line arrived, then the client's RST
    steps = steps_of(a, a.connections[0])
    assert steps[-1][:2] == ("originator", "RST+ACK")
    assert steps[-2][0] == "responder" and steps[-2][2] > 0
    assert run.played["result"]["unread_at_close"] == steps[-2][2]  # that line, unread at close()
    run, _ = captured("abort", backend)
    assert run.played["result"] == {"close": "setsockopt(SO_LINGER, on, 0 s), then close()", "unread_at_close": 0}
    _, a = captured("refused", backend)
    assert [s[:2] for s in steps_of(a, a.connections[0])] == [("originator", "SYN"), ("responder", "RST+ACK")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_messages_reach_every_other_client(captured, backend):
    run, a = captured("chat", backend)
    nicks = [client["nick"] for client in run.clients]
    said = run.played["result"]["said"]
    assert len(nicks) == 3 and len(said) == 3 * 2
    chats = [m for m in a.messages if m.kind == "chat"]
    assert [(m.sender, m.text) for m in chats] == [(s["sender"], s["text"]) for s in said]
    for message in chats:
        recipients = [d.recipient for d in message.deliveries]
        assert sorted(recipients) == sorted(n for n in nicks if n != message.sender)
        assert all(d.frame > message.frame and d.latency >= 0 for d in message.deliveries)


@pytest.mark.parametrize("backend", BACKENDS)
def test_private_message_goes_to_one_client_beside_a_broadcast(captured, backend):
    _, a = captured("private", backend)
    by_kind = {m.kind: m for m in a.messages}
    assert (by_kind["private"].sender, by_kind["private"].to) == ("alice", "bob")
    assert [d.recipient for d in by_kind["private"].deliveries] == ["bob"]
    assert sorted(d.recipient for d in by_kind["chat"].deliveries) == ["bob", "carol"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nagle_gathers_small_lines_and_nodelay_does_not(captured, backend):
    run, a = captured("nagle", backend)
    messages = run.played["params"]["messages"]
    frames = {}
    for nick, burst in run.played["result"]["bursts"].items():
        lines = [line for line in a.lines if line.kind == "message" and line.text in burst["lines"]]
        assert len(lines) == messages
        frames[nick] = len({line.frame for line in lines})
        assert frames[nick] == burst["segments"]  # what the kernel counted (TCP_INFO) is in the file
    assert frames["bob"] == messages  # TCP_NODELAY: one segment per send
    assert frames["alice"] < messages  # Nagle: later lines gathered while the first is unacknowledged


def test_timeline_lines_up_with_the_packets(captured):
    run, a = captured("chat", "dumpcap")
    events = run.events
    accepted = [e for e in events if e["kind"] == "accepted"]
    assert [e["peer"] for e in accepted] == [list(c.client) for c in a.connections]
    times = a.packets.time
    for event, conn in zip(accepted, a.connections):
        syn_time = times[conn.first_frame - 1]
        assert syn_time <= event["wall"] < syn_time + 1.0  # accepted after its SYN arrived
    # The server records "closing" just before its shutdown(SHUT_WR): its FIN follows.
    for event in (e for e in events if e["kind"] == "closing"):
        conn = next(c for c in a.connections if list(c.client) == event["peer"])
        rows = np.flatnonzero(a.tracking.conn == conn.id)
        fin = next(i for i in rows if a.direction(i) == "responder" and a.step(i).name == "FIN")
        assert event["wall"] <= times[fin] + 0.005
    json.dumps(run.played)  # JSON-able, as promised


# --------------------------------------------------------------------------- staging is stable


@pytest.mark.parametrize("name", ["three-way", "simultaneous", "nagle"])
def test_timing_sensitive_stories_are_stable(tmp_path, name):
    """The stories whose shape would depend on timing, three more times each."""
    for attempt in range(3):
        run = run_scenario(name, tmp_path / f"{name}-{attempt}.pcapng", mode="live", backend="scapy")
        a = analyze(run.path)
        assert_shape(name, run, a)
        if name == "nagle":
            alice = run.played["result"]["bursts"]["alice"]["lines"]
            assert len({line.frame for line in a.lines if line.text in alice}) < len(alice)


def test_three_way_story_refuses_to_pass_off_a_four_way_close():
    """A server slower than its kernel's delayed ACK gives a four-way close: the story says so.

    We make the server slow with the very gate the client-close story uses."""
    gates = Gates()
    with ChatServer("127.0.0.1", 0, on_event=gates) as server:
        stage = Stage("127.0.0.1", server.port, server, gates)
        gates.hold("a slow server", lambda e: e.kind == "left",
                   lambda cancelled: stage.wait_state(stage.addresses[0], stage.server_address,
                                                      "FIN_WAIT2", cancelled=cancelled))
        with pytest.raises(StagingError, match="2 segments came back after alice's FIN"):
            stories.three_way(stage)


@pytest.mark.skipif(not rootless_available()[0], reason="no user namespaces here")
def test_a_story_runs_in_the_rootless_namespace(tmp_path):
    run = run_scenario("simultaneous", tmp_path / "rootless.pcapng", mode="rootless", backend="dumpcap")
    assert run.mode == "rootless" and run.port == ROOTLESS_PORT
    assert run.played["notes"] == []  # /proc/net/tcp and the socket filter work in there too
    assert [e["kind"] for e in run.events][:2] == ["listening", "accepted"]
    assert_shape("simultaneous", run, analyze(run.path))


# --------------------------------------------------------------------------- the API around them


def test_catalogue_describes_every_story():
    assert list(SCENARIOS) == ["chat", "private", "quit", "client-close", "three-way", "simultaneous",
                               "abort", "unread-data", "half-close", "refused", "nagle"]
    for scenario in SCENARIOS.values():
        assert scenario.summary and scenario.look_at and scenario.story.__doc__
    assert SCENARIOS["chat"].params == {"clients": 3, "messages": 2, "nagle": True}


def test_bad_names_and_parameters_are_refused_before_capturing(tmp_path):
    with pytest.raises(KeyError, match="choose one of: chat, private"):
        run_scenario("teardown", tmp_path / "x.pcapng", mode="live")
    with pytest.raises(TypeError, match="takes the parameters: clients, messages, nagle"):
        run_scenario("chat", tmp_path / "x.pcapng", mode="live", speed=3)
    with pytest.raises(ValueError, match="mode must be one of"):
        run_scenario("chat", tmp_path / "x.pcapng", mode="reference")
    assert list(tmp_path.iterdir()) == []


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


NEVER_ITSELF = """
import socket
from tcpchatx.scenarios.run import play
with socket.socket() as probe:  # the port the OS hands out first here, free again once closed
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
for _ in range(5):
    played = play("refused", port=port)
    assert played["result"] == {"refused": True}, played
    assert played["clients"][0]["address"][1] != port, played
print("refused from elsewhere, 5 times, to", port)
"""


@pytest.mark.skipif(not rootless_available(), reason="needs user and network namespaces")
def test_refused_never_connects_to_itself():
    """With two ephemeral ports, the OS hands the just-freed port out again: the story
    must not bind it, for a socket that connects to its own port connects to itself."""
    import subprocess

    narrow = ("ip link set lo up && echo '40001 40002' > /proc/sys/net/ipv4/ip_local_port_range && "
              f"exec {sys.executable} -c \"$0\"")
    done = subprocess.run(["unshare", "-rn", "sh", "-c", narrow, NEVER_ITSELF], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "refused from elsewhere, 5 times" in done.stdout, done.stderr


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("chat-")]


def test_play_without_capture_cleans_up_even_on_failure():
    before = _fds()
    played = play("quit")
    assert played["params"] == {} and [c["nick"] for c in played["clients"]] == ["alice"]
    assert tcp_state(tuple(played["clients"][0]["address"]), tuple(played["server"])) is None
    with pytest.raises(ValueError, match="at least 2 clients"):
        play("chat", clients=1)
    with socket.create_server(("127.0.0.1", 0)) as listener:  # "refused", but someone listens
        with pytest.raises(StagingError, match="something is listening"):
            play("refused", port=listener.getsockname()[1])
    assert _server_threads() == [] and _fds() == before
    assert get_scenario("refused").needs_server is False
