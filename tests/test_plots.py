"""The figures, drawn from a real chat captured on loopback while the kernel's socket
states were sampled: three clients talk; alice sends /quit (the server closes first),
carol calls close() (the client closes first), bob stays.  Then the lab's figures, from
the reference stories in captures/lab/ (both ends' captures, and what the kernel said):
held against tshark, the kernel's own counts and the other view.  Every check counts
the artists really drawn (arrows, bars, spans), not just what the figure says it drew."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.patches import FancyArrowPatch, Rectangle

from tcpchatx import lab, plots
from tcpchatx.analysis import analyze
from tcpchatx.analysis.views import pair_views
from tcpchatx.analysis.why import explain
from tcpchatx.client import ChatClient
from tcpchatx.netlab.stories import bottleneck
from tcpchatx.plots._kernel import INFINITE
from tcpchatx.protocol import Kind
from tcpchatx.server import ChatServer
from tcpchatx.sockstate import SocketKey, SocketStateSampler
from tcpchatx.tcp_flags import ACK

HOST = "127.0.0.1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from tcpchatx.capture import LiveCapture, live_capture_available

    if shutil.which("dumpcap") is None or not sys.platform.startswith("linux"):
        pytest.skip("needs dumpcap and Linux (/proc/net/tcp)")
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
    bars = [c for c in fig.axes[0].collections if isinstance(c, LineCollection) and c.get_gid() == "data"]
    assert len(bars) == 1  # (SACK blocks, if any, are another LineCollection)
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


# --------------------------------------------------------------------------- the lab's figures
# Drawn from the reference stories (captures/lab/): both ends' captures of a connection
# across the lab's router, and the kernel's numbers sampled meanwhile.

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs Wireshark's tshark")


def tshark_fields(path, display_filter: str, *fields: str) -> list[list[str]]:
    """Each packet tshark's ``display_filter`` picks, as the values of ``fields``."""
    cmd = [TSHARK, "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def conn_of_nick(analysis, nick: str) -> int:
    return next(conn for conn, name in analysis.chat.nick_of_conn.items() if name == nick)


def by_gid(ax, prefix: str) -> list:
    """The artists of ``ax`` whose gid starts with ``prefix``."""
    artists = [*ax.lines, *ax.collections, *ax.patches]
    return [a for a in artists if (a.get_gid() or "").startswith(prefix)]


def highest(area) -> float:
    """The top of a filled area (fill_between's PolyCollection), in data units."""
    return float(max(path.vertices[:, 1].max() for path in area.get_paths()))


@pytest.fixture(scope="module")
def fast_retransmit():
    story = lab.story("fast-retransmit", mode="reference")
    return story.analysis("client", part="sack"), story.views("sack")


@needs_tshark
def test_time_sequence_marks_the_fast_retransmission_tshark_names(fast_retransmit):
    a, views = fast_retransmit
    alice = conn_of_nick(a, "alice")
    fig = plots.time_sequence(a, alice, "originator", window=True)
    ax = fig.axes[0]
    fast = tshark_fields(views["client"], "tcp.analysis.fast_retransmission", "frame.number")
    named = [int(frame) for frame, in fast]
    assert len(named) == 1
    assert fig.tcpchatx["resends"] == {"fast": named}  # and no other resend
    marks = by_gid(ax, "resend:fast")
    assert len(marks) == 1
    row = named[0] - 1
    top = int(a.tracking.rel_seq[row]) + int(a.packets.payload_len[row])
    assert marks[0].get_ydata()[0] == top  # on the resent bar, at its top
    callout = f"frame {named[0]}: [TCP Fast Retransmission]"
    assert callout in fig.tcpchatx["labels"]


@needs_tshark
def test_time_sequence_draws_the_sack_blocks_the_duplicate_acks_carry(fast_retransmit):
    a, views = fast_retransmit
    fig = plots.time_sequence(a, conn_of_nick(a, "alice"), "originator")
    rows = tshark_fields(views["client"], "tcp.options.sack_le", "frame.number",
                         "tcp.options.sack_le", "tcp.options.sack_re", "tcp.analysis.duplicate_ack")
    expected = sorted((int(frame), int(left), int(right)) for frame, lefts, rights, _ in rows
                      for left, right in zip(lefts.split(","), rights.split(","), strict=True))
    assert sorted(fig.tcpchatx["sack_blocks"]) == expected
    duplicates = {int(frame) for frame, *_, dup in rows if dup}
    assert duplicates and duplicates <= {frame for frame, _, _ in expected}  # every dup ACK's blocks
    assert fig.tcpchatx["events"]["duplicate_ack"] == sorted(duplicates)
    # ... as really drawn: one vertical bar per block, over the bytes it covers.
    (blocks,) = by_gid(fig.axes[0], "sack")
    spans = sorted((float(low[1]), float(high[1])) for low, high in blocks.get_segments())
    assert spans == sorted((float(left), float(right)) for _, left, right in expected)


@needs_tshark
def test_time_sequence_window_line_is_the_scaled_window_above_the_acks(fast_retransmit):
    a, views = fast_retransmit
    alice = conn_of_nick(a, "alice")
    fig = plots.time_sequence(a, alice, "originator", window=True)
    ax = fig.axes[0]
    (ack,), (window,) = by_gid(ax, "ack"), by_gid(ax, "window")
    assert list(ack.get_xdata()) == list(window.get_xdata())
    edge, acked = np.asarray(window.get_ydata()), np.asarray(ack.get_ydata())
    assert (edge > acked).all()  # the window never closed in this story
    # The distance between them is the window tshark calculates (scaled; a SYN's is not).
    acks = (a.tracking.conn == alice) & (a.tracking.direction == 1) & ((a.packets.flags & ACK) != 0)
    server_port = a.connections[alice].server[1]
    windows = dict(tshark_fields(views["client"], f"tcp.srcport == {server_port} && tcp.flags.ack == 1",
                                 "frame.number", "tcp.window_size"))
    frames = a.packets.frame[acks].tolist()
    assert [int(windows[str(f)]) for f in frames] == (edge - acked).astype(int).tolist()
    assert fig.tcpchatx["window_scale"] == 10


@needs_tshark
def test_time_sequence_of_a_closed_window_marks_zero_windows_and_probes():
    story = lab.story("zero-window", mode="reference")
    a, path = story.analysis("server"), story.views()["server"]
    alice = conn_of_nick(a, "alice")
    fig = plots.time_sequence(a, alice, "responder", window=True)
    port = a.connections[alice].client[1]
    zero = [int(f) for f, in tshark_fields(path, f"tcp.analysis.zero_window && tcp.srcport == {port}",
                                            "frame.number")]
    probing = f"(tcp.analysis.keep_alive || tcp.analysis.zero_window_probe) && tcp.dstport == {port}"
    probes = [int(f) for f, in tshark_fields(path, probing, "frame.number")]
    assert zero and fig.tcpchatx["events"]["zero_window"] == zero
    assert probes and fig.tcpchatx["probes"] == probes  # Linux's probes: keep-alives at a zero window
    assert len(by_gid(fig.axes[0], "event:zero_window_keep_alive")) == len(probes)
    # Where the window is 0, its line meets the ACK line.
    (ack,), (window,) = by_gid(fig.axes[0], "ack"), by_gid(fig.axes[0], "window")
    closed = np.asarray(window.get_ydata()) == np.asarray(ack.get_ydata())
    assert closed.sum() == len(zero)


@pytest.fixture(scope="module")
def cubic():
    story = lab.story("bottleneck", mode="reference")
    return story.part("cubic"), story.analysis("client", part="cubic")


def test_tcp_state_draws_ssthresh_only_after_the_first_loss(cubic):
    run, a = cubic
    sender = [s for s in run["tcp_info"] if s["name"] == "sender"]
    fig = plots.tcp_state(run["tcp_info"], a, name="sender")
    window, times = fig.axes
    t0 = float(a.packets.seconds(0))  # the capture's clock
    (cwnd,), (ssthresh,) = by_gid(window, "cwnd"), by_gid(window, "ssthresh")
    assert len(cwnd.get_xdata()) == len(sender)
    set_at = [s["time"] - t0 for s in sender if s["snd_ssthresh"] < INFINITE]
    assert np.allclose(ssthresh.get_xdata(), set_at) and INFINITE not in ssthresh.get_ydata()
    # The first loss: the router's first drop, then the first duplicate ACK back.
    queue = run["queue"]
    first_drop = next(later["time"] for earlier, later in zip(queue, queue[1:])
                      if later["dropped"] > earlier["dropped"]) - t0
    first_dup = next(i for i in range(len(a.packets)) if "duplicate_ack" in a.events(i))
    first_dup = float(a.packets.seconds(first_dup)) - t0
    assert first_drop - 0.02 < first_dup <= min(set_at)  # (queue samples are 10 ms apart)
    assert all(s["snd_ssthresh"] == INFINITE for s in sender if s["time"] - t0 < min(set_at))
    assert fig.tcpchatx["ssthresh_from"] == pytest.approx(min(set_at))
    # Every resend the kernel counted is marked, from the capture.
    resends = fig.tcpchatx["retransmissions"]
    assert sum(map(len, resends.values())) == sender[-1]["total_retrans"] > 0
    assert len(by_gid(window, "resend:")) == sender[-1]["total_retrans"]
    # Bytes in flight, in segments of the sender's MSS, one dot per data segment.
    (in_flight,) = by_gid(window, "in_flight")
    bif = a.expert.bytes_in_flight[(a.tracking.direction == 0) & (a.packets.payload_len > 0)]
    assert np.allclose(np.sort(in_flight.get_ydata() * sender[0]["snd_mss"]), np.sort(bif[bif >= 0]))
    assert "segments" in fig.tcpchatx["in_flight_unit"]
    (ack_rtt,) = by_gid(times, "ack_rtt")
    assert len(ack_rtt.get_xdata()) == fig.tcpchatx["ack_rtts"] > 100


def test_buffers_router_queue_stays_within_its_limit(cubic):
    run, a = cubic
    limit = inspect.signature(bottleneck).parameters["buffer_bytes"].default  # 30 KB
    sender = [s for s in run["tcp_info"] if s["name"] == "sender"]
    receiver = [s for s in run["tcp_info"] if s["name"] == "receiver"]
    fig = plots.buffers(sender, run["queue"], receiver or None, analysis=a, queue_limit=limit)
    send_ax, router_ax, receive_ax = fig.axes
    (queued,) = by_gid(router_ax, "router_queue")
    assert 0.8 * limit < highest(queued) == fig.tcpchatx["router_max_bytes"] <= limit
    assert fig.tcpchatx["drops"] == run["dropped"] > 0  # tail drops, as the story counted them
    assert len(by_gid(router_ax, "router_drops")) == 1
    # The send queue: in flight (sent, not acknowledged) below, not yet sent above it.
    (in_flight,) = by_gid(send_ax, "send_queue_in_flight")
    (not_sent,) = by_gid(send_ax, "send_queue_not_sent")
    assert highest(in_flight) == max(s["send_queue"] - s["notsent_bytes"] for s in sender)
    assert highest(not_sent) == max(s["send_queue"] for s in sender) == fig.tcpchatx["sender_max_bytes"]
    if receiver:
        assert fig.tcpchatx["receiver_max_bytes"] == max(s["receive_queue"] for s in receiver)
    # Without the receiver's samples, its panel says so and the others are the same.
    fig = plots.buffers(sender, run["queue"], None, analysis=a, queue_limit=limit)
    assert fig.tcpchatx["receiver_max_bytes"] is None and fig.tcpchatx["router_max_bytes"] <= limit
    assert any("not sampled" in t.get_text() for t in fig.axes[2].texts)
    assert not [c for c in fig.axes[2].collections if isinstance(c, PolyCollection)]


def test_ladder_through_router_ends_alices_lost_line_at_the_router():
    story = lab.story("rto", mode="reference")
    client, server = story.analysis("client"), story.analysis("server")
    fig = plots.ladder_through_router(client, server)
    ax = fig.axes[0]
    dropped = fig.tcpchatx["dropped"]
    assert len(dropped) == 1
    (lost,) = dropped
    assert lost["nick"] == "alice" and lost["from"] == "client"
    assert lost["text"] == story.outcome["line"]
    # It is the copy that the two views say was lost (tcpchatx.analysis.why).
    (why,) = explain(story.views()["client"], story.views()["server"])
    assert why.lost == (lost["client_frame"],) and lost["server_frame"] is None
    # As drawn: one ✕, on the router's lane, where that one arrow ends.
    (cross,) = by_gid(ax, "dropped:")
    assert cross.get_xdata()[0] == 1.0 and cross.get_gid() == f"dropped:client:{lost['client_frame']}"
    (arrow,) = [p for p in ax.patches if p.get_gid() == f"client:{lost['client_frame']}"]
    assert arrow._posA_posB[1] == (1.0, lost["y_arrived"]) == (1.0, cross.get_ydata()[0])
    # Every other segment reaches the other end; the resend says what Wireshark says.
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    pairing = pair_views(story.views()["client"], story.views()["server"])
    sent = sum(1 for pair in pairing.connections for view in ("client", "server")
               for packet in pair.packets[view] if pair.sender_view(packet) == view)
    assert len(arrows) == fig.tcpchatx["arrows"] == sent
    (resend,) = [s for s in fig.tcpchatx["segments"] if s["retransmission"]]
    assert resend["info"] == "[TCP Retransmission]" and resend["text"] == lost["text"]
    assert resend["to"] == "server" and resend["client_frame"] == why.frame


def test_ladder_through_router_slants_the_held_line_across_the_next():
    story = lab.story("reorder", mode="reference")
    client, server = story.analysis("client"), story.analysis("server")
    fig = plots.ladder_through_router(client, server)
    segments = fig.tcpchatx["segments"]
    assert not fig.tcpchatx["dropped"] and fig.tcpchatx["delayed"]  # 25 ms each way: all slanted
    (held,) = [s for s in segments if s["receiver_info"] == "[TCP Out-Of-Order]"]
    assert held["server_frame"] == story.outcome["out_of_order"][0]
    # The line sent after it arrived before it: their arrows cross.
    behind = next(s for s in segments if s["client_frame"] == held["client_frame"] + 1)
    assert behind["from"] == "client" and behind["text"].startswith("line 4")
    assert behind["y_sent"] > held["y_sent"] and behind["y_arrived"] < held["y_arrived"]
    assert held["transit_ms"] > behind["transit_ms"] + 4  # held back 5 ms
    # A frame range of the client's view: just those frames.
    first, last = held["client_frame"] - 3, held["client_frame"] + 3
    fig = plots.ladder_through_router(client, server, frames=(first, last))
    shown = [s["client_frame"] for s in fig.tcpchatx["segments"]]
    assert shown and all(first <= frame <= last for frame in shown)
    assert sorted(shown) == list(range(first, last + 1))


def test_server_event_labels_are_whole_and_fit_the_margin():
    """The chat's broadcasts were cut at 38 characters ("<alice> message 1 fro…"): now a
    label takes up to two lines, broken between words, and says all of it."""
    import json

    from tcpchatx.plots._common import EVENT_COLOUR
    from tcpchatx.references import CAPTURES

    a = analyze(CAPTURES / "chat.pcapng")
    events = json.loads((CAPTURES / "chat.json").read_text())["events"]
    fig = plots.ladder(a, connections=[0], events=events)
    labels = [t.get_text() for t in fig.axes[0].texts if t.get_color() == EVENT_COLOUR]
    assert "broadcast to 2: <alice> message 1 from alice" in fig.tcpchatx["events"]
    assert not any("…" in label for label in fig.tcpchatx["events"])
    assert labels and all(len(line) <= 30 and label.count("\n") <= 1 for label in labels for line in label.split("\n"))
