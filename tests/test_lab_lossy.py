"""A path that loses at random (lab.lossy), on the random-loss story's reference captures:
the router's count, the captures' and the sender's agree, and Wireshark's names for the
resends follow the rule the notebook teaches.  Every fact is read from the story's own
record (captures/lab/random-loss.json) and from tshark, not pinned."""

from __future__ import annotations

import subprocess

import pytest

from tcpchatx import lab
from tcpchatx.analysis.views import pair_views
from tcpchatx.analysis.why import explain_pairing
from tcpchatx.netlab.references import LAB_CAPTURES


@pytest.fixture(scope="module")
def lossy():
    return lab.story("random-loss", mode="reference")


def tshark(path, display_filter: str, field: str) -> list[str]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", field],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_the_router_the_captures_and_the_sender_count_the_same_losses(lossy):
    tally = lab.loss_tally(lossy)
    record = lossy.outcome
    assert tally["router_lost"] == len(record["lost_at_random"]) == record["relay"]["counts"]["to_server"]["lost"]
    assert tally["router_lost_data"] == tally["lost_segments"] > 0
    # With SACK (the default) each resend carries the lost bytes alone, and none was needless.
    assert record["sack"] is True
    assert tally["resends"] == tally["lost_segments"] and tally["resent_bytes"] == tally["lost_bytes"]
    assert tally["not_needed"] == 0
    assert sum(tally["by_wireshark"].values()) == tally["resends"]


def test_every_lost_segment_was_resent_and_arrived(lossy):
    dropped = lab.lost_segments(lossy)
    resent = lab.random_resends(lossy)
    assert len(dropped) == lab.loss_tally(lossy)["lost_segments"]
    assert dropped.arrived.notna().all()
    assert {r[0] for r in dropped.resent} == set(resent.frame)
    assert set(dropped.arrived) == set(resent.arrived)


def test_wiresharks_names_are_tsharks(lossy):
    """The ``wireshark`` column says what tshark's Info column says of each resend."""
    client = lossy.views()["client"]
    names = {"Fast Retransmission": "tcp.analysis.fast_retransmission", "Out-Of-Order": "tcp.analysis.out_of_order",
             "Retransmission": "tcp.analysis.retransmission && !tcp.analysis.fast_retransmission"}
    resent = lab.random_resends(lossy)
    for name, display_filter in names.items():
        frames = {int(f) for f in tshark(client, display_filter, "frame.number")}
        assert set(resent.frame[resent.wireshark == name]) == frames, name


def test_out_of_order_means_within_the_handshakes_round_trip(lossy):
    client = lossy.views()["client"]
    (initial_rtt,) = {float(v) for v in tshark(client, "tcp.analysis.initial_rtt", "tcp.analysis.initial_rtt")}
    rtt_ms = lab.handshake_rtt_ms(lossy)
    assert rtt_ms == pytest.approx(initial_rtt * 1000, abs=1e-6)  # to the nanosecond
    resent = lab.random_resends(lossy)
    out_of_order, plain = resent[resent.wireshark == "Out-Of-Order"], resent[resent.wireshark == "Retransmission"]
    assert not out_of_order.empty and (out_of_order.gap_ms < rtt_ms).all()
    assert (out_of_order.end != out_of_order.sent_up_to).all()
    assert ((plain.gap_ms >= rtt_ms) | (plain.end == plain.sent_up_to)).all()
    # And the fast retransmissions came right after the duplicate ACKs that asked for them.
    assert (resent.trigger[resent.wireshark == "Fast Retransmission"] == "duplicate ACKs").all()


def test_the_gaps_are_exact_to_the_nanosecond(lossy):
    """Wireshark compares a resend's gap with the round trip in whole nanoseconds, and
    live gaps come within a microsecond of it: ``gap_ms`` rounded to the microsecond once
    turned a check red.  Each gap here is tshark's own time difference, to the nanosecond,
    from the newest segment (the last whose next sequence number, ``tcp.nxtseq``, went
    past every one before it: a SYN and a FIN count one)."""
    fields = ["frame.number", "frame.time_epoch", "tcp.srcport", "tcp.nxtseq"]
    out = subprocess.run(["tshark", "-n", "-r", str(lossy.views()["client"]), "-T", "fields"]
                         + [arg for f in fields for arg in ("-e", f)], capture_output=True, text=True, check=True)
    segments = [(int(frame), int(epoch.replace(".", "")), port, int(end))  # ns: all nine digits
                for frame, epoch, port, end in (line.split("\t") for line in out.stdout.splitlines())]
    resent = lab.random_resends(lossy)
    (sender,) = {port for frame, _, port, _ in segments if frame in set(resent.frame)}
    newest_before, newest, highest = {}, None, -1
    for frame, ns, port, end in segments:
        if port == sender:
            newest_before[frame] = (ns, newest)
            if end > highest:
                newest, highest = ns, end
    for frame, gap_ms in zip(resent.frame, resent.gap_ms, strict=True):
        ns, newest_ns = newest_before[frame]
        assert gap_ms * 1e6 == pytest.approx(ns - newest_ns, abs=0.01), frame


def test_why_explains_the_resends_wireshark_calls_out_of_order():
    """In the sender's own view a segment below the highest sent is a resend, whatever
    Wireshark calls it: the bottleneck's tail drops are repaired by many."""
    client, server = (LAB_CAPTURES / f"bottleneck-cubic-{side}-view.pcapng" for side in ("client", "server"))
    pairing = pair_views(client, server)
    out_of_order = {p.frame for pair in pairing.connections for p in pair.packets["client"]
                    if "out_of_order" in p.events and pair.sender_view(p) == "client"}
    explained = {why.frame: why.label for why in explain_pairing(pairing) if why.view == "client"}
    assert out_of_order and all(explained.get(frame) == "out_of_order" for frame in out_of_order)
