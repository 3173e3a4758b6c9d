"""The socket-state figure, from the reference captures (captures/NAME.pcapng) and the
kernel's states recorded beside them (NAME.sockstates.json).

Each socket's states come from the packets (analysis/endpoint_states.py): every path
must be one RFC 793 allows, and every change must be drawn exactly at the packet that
caused it.  The kernel's samples are held against them: a socket's sampled states must
appear in its derived path in the same order, and a sample that does not fit must show.
The checks read the artists really drawn (spans, arrows, tags, texts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.text import Text

from tcpchatx import lab, plots
from tcpchatx.analysis import analyze
from tcpchatx.analysis.endpoint_states import (
    CLIENT,
    SERVER,
    endpoint_changes,
    fin_copies_not_taken,
    states_of,
)
from tcpchatx.lab.socket_states import _sockstates_frame
from tcpchatx.sockstate import SocketKey

CAPTURES = Path(__file__).resolve().parents[1] / "captures"

OPENING = {CLIENT: ["CLOSED", "SYN_SENT", "ESTABLISHED"], SERVER: ["CLOSED", "SYN_RECV", "ESTABLISHED"]}
#: Each close scenario's path for (the client's socket, the server's), from ESTABLISHED on.
CLOSES = {
    "client-close": (["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
    "half-close": (["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
    "quit": (["CLOSE_WAIT", "LAST_ACK", "CLOSED"], ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]),
    "three-way": (["FIN_WAIT1", "TIME_WAIT"], ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
    # alice's socket filter drops the server's first FIN: her FIN is acknowledged first
    # (FIN_WAIT2), the server's crossed hers (CLOSING); the resent FIN ends both in TIME_WAIT.
    "simultaneous": (["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"], ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]),
    "abort": (["CLOSED"], ["CLOSED"]),
    "unread-data": (["CLOSED"], ["CLOSED"]),
}
#: The arrows of RFC 793's state diagram (its figure 6); a reset may end any state but CLOSED.
RFC793_EDGES = {
    ("CLOSED", "SYN_SENT"), ("CLOSED", "SYN_RECV"), ("SYN_SENT", "SYN_RECV"), ("SYN_SENT", "ESTABLISHED"),
    ("SYN_RECV", "ESTABLISHED"), ("SYN_RECV", "FIN_WAIT1"), ("ESTABLISHED", "FIN_WAIT1"),
    ("ESTABLISHED", "CLOSE_WAIT"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT1", "CLOSING"),
    ("FIN_WAIT1", "TIME_WAIT"), ("FIN_WAIT2", "TIME_WAIT"), ("CLOSING", "TIME_WAIT"),
    ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSED"), ("TIME_WAIT", "CLOSED"),
}
#: The kernel's other names for the same states.
SAME = {"CLOSE": "CLOSED", "NEW_SYN_RECV": "SYN_RECV"}
WITH_SAMPLES = sorted(name for name in CLOSES if (CAPTURES / f"{name}.sockstates.json").exists())


def samples_of(name: str):
    return _sockstates_frame(json.loads((CAPTURES / f"{name}.sockstates.json").read_text()))


def legal(path: list[str]) -> bool:
    return all((before, after) in RFC793_EDGES or (after == "CLOSED" and before != "CLOSED")
               for before, after in zip(path, path[1:]))


def in_order(sampled: list[str], derived: list[str]) -> bool:
    """Whether ``sampled`` is ``derived`` with some states left out (none added, none swapped)."""
    rest = iter(derived)
    return all(any(state == d for d in rest) for state in sampled)


def rows_y(fig) -> dict[str, float]:
    ax = fig.axes[0]
    return {label.get_text(): y for y, label in zip(ax.get_yticks(), ax.get_yticklabels())}


def spans_on(fig, y: float) -> list[tuple[str, float, float]]:
    """(state, x start, x end) of the spans drawn on the row at ``y``, left to right."""
    return sorted(((p.get_gid().removeprefix("span:"), round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6))
                   for p in fig.axes[0].patches
                   if isinstance(p, Rectangle) and (p.get_gid() or "").startswith("span:")
                   and abs(p.get_y() + p.get_height() / 2 - y) < 1e-9), key=lambda s: s[1])


def arrow_x(fig) -> dict[int, float]:
    """Frame -> x of its arrow, read back from the arrow's own path (its tail)."""
    return {int(p.get_gid().removeprefix("packet:")): round(float(p.get_path().vertices[0, 0]), 6)
            for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)}


# --------------------------------------------------------------------------- the states, from the packets

@pytest.mark.parametrize("name", sorted(CLOSES))
def test_each_close_follows_rfc_793(name):
    a = analyze(CAPTURES / f"{name}.pcapng")
    changes = endpoint_changes(a)
    (conn,) = a.connections
    for side, close in zip((CLIENT, SERVER), CLOSES[name]):
        path = [str(s) for s in states_of(changes, conn.id, side)]
        assert path == OPENING[side] + close, (name, side)
        assert legal(path)
    for ch in changes:  # each change at its packet: its frame, its time
        assert ch.frame == int(a.packets.frame[ch.row])
        assert ch.time == float(a.packets.time[ch.row])


def test_every_reference_capture_gives_legal_paths():
    """Every step an RFC 793 edge, and a connection that closed leaves both ends closed
    (TIME_WAIT or gone), never stuck half-way (CLOSING, FIN_WAIT2, LAST_ACK)."""
    for path in sorted(CAPTURES.glob("**/*.pcapng")):
        a = analyze(path)
        changes = endpoint_changes(a)
        for conn in a.connections:
            for side in (CLIENT, SERVER):
                path_taken = [str(s) for s in states_of(changes, conn.id, side)]
                assert legal(path_taken), (path.name, conn.id, side)
                if conn.close_kind in ("four-way", "three-way", "simultaneous", "reset", "refused"):
                    assert path_taken[-1] in ("TIME_WAIT", "CLOSED"), (path.name, conn.id, side, path_taken)


def test_a_fin_the_receiver_ignored_changes_nothing_there():
    """simultaneous: alice's kernel drops the server's first FIN (it is on the wire); she
    acknowledges only its retransmission, so that is the copy that moves her socket."""
    a = analyze(CAPTURES / "simultaneous.pcapng")
    (ignored,) = fin_copies_not_taken(a)
    resent = next(i for i in range(len(a.packets)) if i > ignored and a.packets.flags[i] & 0x01
                  and int(a.tracking.direction[i]) == 1)
    moved_alice = {ch.row for ch in endpoint_changes(a) if ch.side == CLIENT}
    assert ignored not in moved_alice and resent in moved_alice
    assert not fin_copies_not_taken(analyze(CAPTURES / "client-close.pcapng"))


# --------------------------------------------------------------------------- the figure

def test_client_close_changes_sit_at_their_packets():
    """The bug: ACK #10, FIN,ACK #11 and ACK #12 were drawn inside FIN_WAIT1 and CLOSE_WAIT,
    before FIN_WAIT2 appeared.  Now every span starts and ends at a packet's arrow."""
    run = lab.run("client-close", mode="reference", sample_sockets=True)
    fig = lab.socket_states_figure(run)
    fin, ack_of_fin, fin2, last_ack = run.frames(phase="teardown")
    x = arrow_x(fig)
    client, server = (next(y for label, y in rows_y(fig).items() if label.startswith(who))
                      for who in ("client", "server :"))

    def span(y, state):
        (found,) = [(x0, x1) for s, x0, x1 in spans_on(fig, y) if s == state]
        return found

    assert span(client, "FIN_WAIT1") == (x[fin], x[ack_of_fin])
    assert span(client, "FIN_WAIT2") == (x[ack_of_fin], x[fin2])
    assert span(client, "TIME_WAIT")[0] == x[fin2]
    assert span(server, "CLOSE_WAIT") == (x[fin], x[fin2])
    assert span(server, "LAST_ACK") == (x[fin2], x[last_ack])
    assert all(x1 <= x[last_ack] for _, _, x1 in spans_on(fig, server))  # then no socket
    # None of #10, #11, #12 inside alice's FIN_WAIT1; #11 and #12 inside no FIN_WAIT1 or
    # CLOSE_WAIT at all (the server stays in CLOSE_WAIT while it sends #10, rightly).
    def inside(frame, y, states):
        return any(x0 < x[frame] < x1 for s, x0, x1 in spans_on(fig, y) if s in states)

    assert not any(inside(frame, client, ["FIN_WAIT1"]) for frame in (ack_of_fin, fin2, last_ack))
    assert not any(inside(frame, y, ["FIN_WAIT1", "CLOSE_WAIT"]) for frame in (fin2, last_ack) for y in (client, server))
    assert inside(ack_of_fin, server, ["CLOSE_WAIT"])
    assert fig.tcpchatx["source"] == "packets"


@pytest.mark.parametrize("name", sorted(CLOSES))
def test_every_change_is_drawn_at_its_packet(name):
    run = lab.run(name, mode="reference", sample_sockets=True)
    fig = lab.socket_states_figure(run)
    x, ys = arrow_x(fig), rows_y(fig)
    derived = fig.tcpchatx["derived"]
    assert derived and {d["frame"] for d in derived} <= set(x)
    for d in derived:
        if d["state"] == "CLOSED":  # no socket: the last span ends at the packet
            assert x[d["frame"]] in {x1 for _, _, x1 in spans_on(fig, ys[d["socket"]])}
        else:
            assert (d["state"], x[d["frame"]]) in {(s, x0) for s, x0, _ in spans_on(fig, ys[d["socket"]])}


@pytest.mark.parametrize("name", WITH_SAMPLES)
def test_the_kernels_samples_confirm_the_packets(name):
    """A real cross-check: the kernel saw each socket's states in the order the packets
    give (some too short to be seen), and each while the packets say it held."""
    assert "client-close" in WITH_SAMPLES
    run = lab.run(name, mode="reference", sample_sockets=True)
    changes = endpoint_changes(run.analysis)
    (conn,) = run.analysis.connections
    keys = {SocketKey(conn.client, conn.server): CLIENT, SocketKey(conn.server, conn.client): SERVER}
    samples = samples_of(name)
    seen = 0
    for (local, lport, remote, rport), rows in samples.groupby(["local", "local_port", "remote", "remote_port"]):
        side = keys.get(SocketKey((local, lport), (remote, rport)))
        if side is None:
            continue  # the listener: no packet shows it
        sampled = [SAME.get(s, s) for s in rows.sort_values("time")["state"]]
        assert in_order(sampled, [str(s) for s in states_of(changes, conn.id, side)]), (name, side, sampled)
        seen += len(sampled)
    fig = plots.socket_states(samples, run.analysis)
    assert fig.tcpchatx["disagreements"] == []
    assert sum(s["agrees"] is True for s in fig.tcpchatx["samples"]) == seen > 0
    tags = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("sample:")]
    markers = [m for m in fig.axes[0].lines if (m.get_gid() or "").startswith("sample:")]
    assert len(tags) + len(markers) == len(fig.tcpchatx["samples"]) == len(samples)


def test_a_sample_that_disagrees_is_drawn_in_red():
    """The same samples with two made wrong: alice's socket 'seen' in CLOSE_WAIT (it never
    was), and her TIME_WAIT stamped before the FIN that caused it."""
    run = lab.run("client-close", mode="reference", sample_sockets=True)
    samples = samples_of("client-close")
    alice = samples["local_port"] == run.analysis.connections[0].client[1]
    samples.loc[alice & (samples["state"] == "FIN_WAIT2"), "state"] = "CLOSE_WAIT"
    _, ack_of_fin, fin2, _ = run.frames(phase="teardown")
    early = float(run.analysis.packets.time[fin2 - 1]) - 1e-4
    samples.loc[alice & (samples["state"] == "TIME_WAIT"), "time"] = early
    fig = plots.socket_states(samples.sort_values("time"), run.analysis)
    wrong = {(s["state"], s["time"]) for s in fig.tcpchatx["disagreements"]}
    assert {state for state, _ in wrong} == {"CLOSE_WAIT", "TIME_WAIT"}
    tags = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("sample:")]
    red = [t for t in tags if t.get_bbox_patch().get_edgecolor()[:3] == pytest.approx((0.863, 0.149, 0.149), abs=0.01)]
    assert sorted(t.get_gid() for t in red) == ["sample:CLOSE_WAIT", "sample:TIME_WAIT"]
    assert [t.get_text().endswith("?") for t in tags] == [t in red for t in tags]
    assert any("do not explain" in t.get_text() for legend in fig.legends for t in legend.get_texts())


def test_samples_alone_say_so():
    samples = samples_of("client-close")
    fig = plots.socket_states(samples)
    assert fig.tcpchatx["source"] == "samples" and fig.tcpchatx["derived"] == []
    titles = " ".join(t.get_text() for t in fig.texts)
    assert "sampled" in titles and "no capture" in titles
    spans = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and (p.get_gid() or "").startswith("span:")]
    assert spans and all(p.get_hatch() for p in spans)
    assert len(spans) == len(fig.tcpchatx["spans"])


def test_packets_alone_when_the_run_has_no_samples(capsys):
    run = lab.run("three-way", mode="reference", sample_sockets=True)
    run.sockstates = None
    fig = lab.socket_states_figure(run)
    assert "no kernel samples here" in capsys.readouterr().out
    assert fig.tcpchatx["samples"] == [] and fig.tcpchatx["source"] == "packets"
    assert [d["state"] for d in fig.tcpchatx["derived"]][-3:] == ["LAST_ACK", "TIME_WAIT", "CLOSED"]


@pytest.mark.parametrize("name", sorted(CLOSES) + ["chat"])
def test_text_is_horizontal_readable_and_apart(name):
    """No text rotated or under 8 pt (a 10-inch figure shown 800 px wide still gives 8 pt
    text 9 px), and no two packet labels, or two tags of a row, overlap."""
    run = lab.run(name, mode="reference", sample_sockets=True)
    fig = lab.socket_states_figure(run)
    assert fig.get_figwidth() == 10
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert texts
    for t in texts:
        assert t.get_rotation() == 0, t.get_text()
        assert t.get_fontsize() >= 8, t.get_text()
    renderer = FigureCanvasAgg(fig).get_renderer()
    labels = [t for t in fig.axes[0].texts if (t.get_gid() or "").startswith(("label:", "sample:"))]
    assert len([t for t in labels if t.get_gid().startswith("label:")]) == len(fig.tcpchatx["packets"]) \
        - len(fig.tcpchatx["unlabelled"])
    boxes = [(t.get_gid(), t.get_window_extent(renderer)) for t in labels]
    for n, (gid, box) in enumerate(boxes):
        for other_gid, other in boxes[n + 1:]:
            assert not box.overlaps(other), (gid, other_gid)


def test_a_lost_fin_ack_resent_still_acknowledges_the_fin(tmp_path):
    """three-way's FIN+ACK (frame 10) lost and sent again: the copy alice takes is a resend
    (kind "FIN again"), but its ACK covers her FIN, so she goes to TIME_WAIT, not CLOSING."""
    from scapy.all import rdpcap, wrpcap

    packets = list(rdpcap(str(CAPTURES / "three-way.pcapng")))
    resent = packets[9].copy()
    resent.time = packets[9].time + 0.2
    last = packets[10].copy()
    last.time = resent.time + 0.0001
    path = tmp_path / "fin-ack-resent.pcap"
    wrpcap(str(path), [*packets[:10], resent, last])
    a = analyze(path)
    changes = endpoint_changes(a)
    assert states_of(changes, 0, "client") == ["CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT1", "TIME_WAIT"]
    assert [c.frame for c in changes if c.side == "client" and c.state == "TIME_WAIT"] == [11]
    assert states_of(changes, 0, "server")[-2:] == ["LAST_ACK", "CLOSED"]
