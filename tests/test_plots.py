"""The figures, drawn from a real chat captured on loopback while the kernel's socket
states were sampled: three clients talk; alice sends /quit (the server closes first),
carol calls close() (the client closes first), bob stays.  Every check counts the
artists really drawn (arrows, bars, spans), not just what the figure says it drew."""

from __future__ import annotations

import shutil
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyArrowPatch, Rectangle

from tcpchatx import plots
from tcpchatx.analysis import analyze
from tcpchatx.client import ChatClient
from tcpchatx.protocol import Kind
from tcpchatx.server import ChatServer
from tcpchatx.sockstate import SocketKey, SocketStateSampler

HOST = "127.0.0.1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.skipif(
    shutil.which("dumpcap") is None or not sys.platform.startswith("linux"),
    reason="needs dumpcap and Linux (/proc/net/tcp)",
)


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from tcpchatx.capture import LiveCapture, live_capture_available

    able, why = live_capture_available("dumpcap")
    if not able:
        pytest.skip(why)
    path = tmp_path_factory.mktemp("plots") / "chat.pcapng"
    with ChatServer(HOST, 0) as server:
        with LiveCapture(server.port, path, backend="dumpcap"), \
                SocketStateSampler([server.port]) as sampler:
            alice, bob, carol = (ChatClient.connect(HOST, server.port, nick, nodelay=True)
                                 for nick in ("alice", "bob", "carol"))
            for client in (alice, bob):
                client.receive_until(lambda line: "carol joined" in line.text)
            alice.send("hi everyone")
            for client in (bob, carol):
                client.receive_until(lambda line: line.kind is Kind.CHAT)
            bob.send("hello alice")
            for client in (alice, carol):
                client.receive_until(lambda line: line.kind is Kind.CHAT)
            ports = {c.nick: c.local_address[1] for c in (alice, bob, carol)}

            # alice: /quit, so the server closes first; she closes once the kernel shows
            # her socket in CLOSE_WAIT (the server's FIN arrived, she has not closed yet).
            alice.send("/quit")
            alice.wait_closed()
            sampler.wait_for("CLOSE_WAIT", local_port=ports["alice"])
            alice.close()
            # carol: close() first, with nothing left unread (else the kernel sends RST).
            carol.receive_until(lambda line: "alice left" in line.text)
            carol.close()
            sampler.wait_for("TIME_WAIT", local_port=server.port, remote_port=ports["alice"])
            sampler.wait_for("TIME_WAIT", local_port=ports["carol"])
            wait_for(lambda: server.client_count() == 1, what="the server to forget alice and carol")
        events = server.timeline_events()
    bob.close()
    return SimpleNamespace(analysis=analyze(path), sampler=sampler, events=events,
                           server_port=server.port, ports=ports)


def conn_of(session, nick):
    a = session.analysis
    return next(c for c in a.connections if a.chat.nick_of_conn.get(c.id) == nick)


def check_files(fig, tmp_path, name):
    png, svg = plots.save(fig, tmp_path / f"{name}.png"), plots.save(fig, tmp_path / f"{name}.svg")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000]


def test_every_figure_writes_png_and_svg(session, tmp_path):
    a = session.analysis
    figures = {
        "ladder": plots.ladder(a, events=session.events),
        "sequence": plots.time_sequence(a, conn_of(session, "alice").id),
        "fanout_one": plots.fanout(a, "hi everyone"),
        "fanout_all": plots.fanout(a),
        "sockets": plots.socket_states(session.sampler, a),
    }
    for name, fig in figures.items():
        check_files(fig, tmp_path, name)
    with pytest.raises(ValueError, match="png or .svg"):
        plots.save(figures["ladder"], tmp_path / "ladder.pdf")


def test_ladder_one_arrow_per_packet_one_lane_per_endpoint(session):
    a = session.analysis
    fig = plots.ladder(a, events=session.events, max_packets=None)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    tracked = a.packets.frame[a.tracking.conn >= 0].tolist()
    assert len(arrows) == len(tracked) == fig.tcpchatx["arrows"]
    assert [arrow.get_gid() for arrow in arrows] == [f"frame:{f}" for f in tracked]

    server = ("127.0.0.1", session.server_port)
    clients = {("127.0.0.1", port) for port in session.ports.values()}
    assert set(fig.tcpchatx["endpoints"]) == clients | {server}
    assert fig.tcpchatx["endpoints"][-1] == server  # clients on the left, the server on the right
    headers = [t.get_text() for t in ax.texts if t.get_gid() == "lane"]
    assert headers == [f"{nick}\n127.0.0.1:{port}" for nick, port in
                       [*session.ports.items(), ("server", session.server_port)]]

    texts = [t.get_text() for t in ax.texts]
    assert '"<alice> hi everyone"' in texts  # chat text on the data arrows
    assert any(t.startswith("PSH,ACK seq=") and "len=12" in t for t in texts)
    assert "SYN seq=0 len=0" in texts
    assert f"nick set: alice (:{session.ports['alice']})" in texts  # server events
    assert "alice sent /quit" in texts and "server closes alice: FIN sent" in texts
    assert set(fig.tcpchatx["phases"]) >= {"handshake", "data", "teardown"}


def test_ladder_can_be_cut_down(session):
    a = session.analysis
    carol = conn_of(session, "carol")
    fig = plots.ladder(a, connections=[carol.id], events=session.events)
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == sum(carol.packets)
    assert fig.tcpchatx["endpoints"] == [carol.client, carol.server]
    # Only the server events that concern carol (broadcasts she received included).
    shown = fig.tcpchatx["events"]
    assert "carol left (closed by client)" in shown and "broadcast to 2: <alice> hi everyone" in shown
    assert not any(e.startswith("alice") or "closes alice" in e for e in shown)

    fig = plots.ladder(a, max_packets=10)
    total = int((a.tracking.conn >= 0).sum())
    assert len([p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]) == 10
    assert fig.tcpchatx["hidden"] == total - 10
    assert f"({total - 10} more not shown)" in fig._suptitle.get_text()

    rel = a.packets.time - a.packets.time[0]
    fig = plots.ladder(a, time_window=(0.0, float(rel[5])), max_packets=None)
    assert fig.tcpchatx["frames"] == a.packets.frame[: 6].tolist()


@pytest.mark.parametrize("direction", ["originator", "responder"])
def test_time_sequence_one_bar_per_data_segment(session, direction):
    a = session.analysis
    alice = conn_of(session, "alice")
    fig = plots.time_sequence(a, alice.id, direction, window=True)
    df = a.packets_df()
    data = df[(df.conn == alice.id) & (df.direction == direction) & (df.len > 0)]
    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(bars) == 1
    segments = bars[0].get_segments()
    assert len(segments) == len(data) == fig.tcpchatx["bars"] > 0
    # Each bar spans seq .. seq+len, at the segment's time.
    lows = sorted((float(s[0][1]), float(s[1][1] - s[0][1])) for s in segments)
    assert lows == sorted(zip(data.seq.astype(float), data.len.astype(float)))
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "SYN" in labels and "FIN" in labels


def test_fanout_one_bar_per_delivery(session):
    a = session.analysis
    hi = next(m for m in a.messages if m.text == "hi everyone")
    fig = plots.fanout(a, hi)
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(bars) == len(hi.deliveries) == 2  # N - 1 copies for N = 3 clients
    assert sorted(fig.tcpchatx["recipients"]) == ["bob", "carol"]
    widths = sorted(b.get_width() for b in bars)
    assert np.allclose(widths, sorted(d.latency * 1000 for d in hi.deliveries))
    assert "hi everyone" in fig.axes[0].get_title(loc="left")

    fig = plots.fanout(a)
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(bars) == sum(len(m.deliveries) for m in a.messages) == 4
    with pytest.raises(ValueError, match="no message"):
        plots.fanout(a, "never said")


def time_wait_rows(fig) -> tuple[set[str], set[str]]:
    """The row labels of the sockets with a TIME_WAIT span drawn, and with the word written."""
    ax = fig.axes[0]
    label_at = {round(y, 6): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}
    rows = {label_at[round(p.get_y() + p.get_height() / 2, 6)]
            for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "span:TIME_WAIT"}
    named = {label_at[round(t.get_position()[1], 6)] for t in ax.texts if t.get_text() == "TIME_WAIT"}
    return rows, named


def test_time_wait_is_on_the_active_closer(session):
    a, sampler, sport, ports = session.analysis, session.sampler, session.server_port, session.ports
    alice, carol = conn_of(session, "alice"), conn_of(session, "carol")
    assert alice.active_closer == "responder"  # /quit: the server closed first
    assert carol.active_closer == "originator"  # close(): the client closed first
    assert carol.close_kind in ("four-way", "three-way")

    # What the kernel said ...
    def states(local, remote):
        return sampler.states(SocketKey((HOST, local), (HOST, remote)))

    assert states(ports["carol"], sport)[-1] == "TIME_WAIT"
    assert "TIME_WAIT" not in states(sport, ports["carol"])
    assert states(sport, ports["alice"])[-1] == "TIME_WAIT"
    assert "TIME_WAIT" not in states(ports["alice"], sport)
    assert "CLOSE_WAIT" in states(ports["alice"], sport)  # the passive closer waited for us
    assert [s for s in states(ports["bob"], sport) if s != "SYN_SENT"] == ["ESTABLISHED"]

    # ... and what the figure drew.
    fig = plots.socket_states(sampler, a)
    expected = {f"client carol :{ports['carol']}", f"server :{sport}→{ports['alice']}"}
    assert time_wait_rows(fig) == (expected, expected)
    assert fig.tcpchatx["rows"][0] == f"server listening :{sport}"
    spans = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and (p.get_gid() or "").startswith("span:")]
    assert len(spans) == len(fig.tcpchatx["spans"])
    # The packets that moved the states: handshakes and closes, drawn as arrows.
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(fig.tcpchatx["packets"])
    fins = [f for f in fig.tcpchatx["packets"] if a.packets.flags[f - 1] & 0x01]
    assert len(fins) >= 4  # two FINs each for alice's and carol's connections

    # The same picture from the table alone, and on a time scale.
    fig = plots.socket_states(sampler.transitions_df(), ports=[sport], scale="time")
    rows, named = time_wait_rows(fig)
    assert rows == {f"client :{ports['carol']}", f"server :{sport}→{ports['alice']}"}
    assert named <= rows


def test_congestion_from_samples():
    """The congestion figure draws what the samples say: cwnd, ssthresh once set, RTT and
    RTO, the router's queue and its drops."""
    tcp = [{"time": 100 + k / 10, "name": "sender", "snd_cwnd": 10 + k, "rtt": 0.02, "rto": 0.22,
            "snd_ssthresh": 2**31 - 1 if k < 5 else 7} for k in range(10)]
    queue = [{"time": 100 + k / 10, "backlog_bytes": 1000 * k, "dropped": 0 if k < 6 else 3} for k in range(10)]
    fig = plots.congestion(tcp, queue)
    assert fig.tcpchatx == {"kind": "congestion", "samples": 10, "retransmissions": 0, "drops": 3}
    window, rtt, backlog = fig.axes
    assert [len(line.get_xdata()) for line in window.get_lines()] == [10, 5]  # ssthresh from its first setting
    assert len(rtt.get_lines()) == 2 and len(backlog.collections) == 2  # the queue, the drop marks
    with pytest.raises(ValueError, match="no TCP_INFO samples"):
        plots.congestion([])
