"""tcpchatx.lab.loss: the loss notebook's facts, read from the lab stories' reference
captures (captures/lab/, whose README says why each resend happened), and what
lab.story remembers of them.

Nothing here is pinned to one recording: frame numbers, times and byte counts are
asked of tshark on the same captures, and the kernel's numbers of the story's own
record (``.outcome``), so that the tests still hold when ``tcpchatx references --lab``
plays the stories again.  What stays literal is what each story is made to show
(said so where it is)."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from lab_tshark import marks, sack_blocks, tshark_packets

from tcpchatx import lab
from tcpchatx.lab.stories import StoryRun, not_the_defaults

LAB_CAPTURES = Path(__file__).resolve().parents[1] / "captures" / "lab"
ALICE_NICK = b"alice\n".hex()  # her first line, her nickname: the connection that carries it is hers


@pytest.fixture(scope="module")
def stories():
    return {name: lab.reference_story(name) for name in ("rto", "backoff", "fast-retransmit", "reorder")}


# --------------------------------------------------------------------------- tshark, the oracle

#: What the tests read of each packet, and the tshark field it is read from.
FIELDS = {
    "frame": "frame.number", "at": "frame.time_epoch", "ip_id": "ip.id", "ip_len": "ip.len",
    "stream": "tcp.stream", "sport": "tcp.srcport", "dport": "tcp.dstport", "syn": "tcp.flags.syn",
    "ack_flag": "tcp.flags.ack", "seq": "tcp.seq", "seq_raw": "tcp.seq_raw", "ack": "tcp.ack",
    "ack_raw": "tcp.ack_raw", "len": "tcp.len", "nxtseq": "tcp.nxtseq", "payload": "tcp.payload",
    "sack_le": "tcp.options.sack_le", "sack_re": "tcp.options.sack_re",
    "retransmission": "tcp.analysis.retransmission", "fast_retransmission": "tcp.analysis.fast_retransmission",
    "out_of_order": "tcp.analysis.out_of_order", "duplicate_ack": "tcp.analysis.duplicate_ack",
    "rto": "tcp.analysis.rto", "rto_frame": "tcp.analysis.rto_frame", "ack_rtt": "tcp.analysis.ack_rtt",
    "acks_frame": "tcp.analysis.acks_frame", "info": "_ws.col.Info",
}
FLAGS = {"syn", "ack_flag", "retransmission", "fast_retransmission", "out_of_order", "duplicate_ack"}
FLOATS = {"at", "rto", "ack_rtt"}
TEXTS = {"ip_id", "payload", "sack_le", "sack_re", "info"}


@cache
def tshark(path) -> tuple[SimpleNamespace, ...]:
    """Every TCP packet of ``path`` as tshark dissects it: ``FIELDS`` (:mod:`lab_tshark`)."""
    return tshark_packets(path, FIELDS, FLAGS, TEXTS, FLOATS)


def alice(path) -> tuple[int, int]:
    """alice's TCP stream in a capture, and her port: the connection that sent her nickname."""
    (p,) = [p for p in tshark(path) if p.payload == ALICE_NICK]
    return p.stream, p.sport


def hers(path) -> list[SimpleNamespace]:
    """alice's connection's packets, as tshark dissects them."""
    stream, _ = alice(path)
    return [p for p in tshark(path) if p.stream == stream]


def packet(path, frame: int) -> SimpleNamespace:
    return next(p for p in tshark(path) if p.frame == frame)


def arrivals(story: StoryRun, part: str | None = None) -> dict[int, int | None]:
    """Each TCP packet of the client's view -> its number in the server's view (None: that
    view never saw it).  The router forwards packets unchanged: the same packet has the
    same IP ID, ports and raw sequence and ACK numbers in both views (a resend has a new
    IP ID)."""
    views = story.views(part)

    def key(p):
        return p.ip_id, p.sport, p.dport, p.seq_raw, p.ack_raw

    seen = {key(p): p.frame for p in tshark(views["server"])}
    return {p.frame: seen.get(key(p)) for p in tshark(views["client"])}


def alices_tcp_info(story: StoryRun, part: str | None = None) -> list[dict]:
    """alice's TCP_INFO samples in the story's record, in time order."""
    return [s for s in story.part(part).get("tcp_info", []) if s["name"] == "alice"]


def last_sample_before(story: StoryRun, epoch: float) -> dict:
    return [s for s in alices_tcp_info(story) if s["time"] < epoch][-1]


def ms_since_her_syn(story: StoryRun, epoch: float) -> float:
    """A moment on the helpers' clock: milliseconds since alice's SYN (client's view)."""
    (syn,) = [p for p in hers(story.views()["client"]) if p.syn and not p.ack_flag]
    return (epoch - syn.at) * 1000


# --------------------------------------------------------------------------- both views


def test_both_views_show_the_lost_line_missing_from_the_servers(stories):
    """From alice's line to the server's ACK of it: the line (which the server's view
    never saw), tshark's retransmission of it, and the ACK, numbered as tshark numbers them."""
    rto = stories["rto"]
    client = rto.views()["client"]
    _, port = alice(client)
    # The rto story loses one line, once: one timeout resend (a design fact).
    (resend,) = [p for p in hers(client) if p.retransmission]
    line = packet(client, resend.rto_frame)
    ack = next(p for p in hers(client) if p.sport != port and p.ack >= resend.nxtseq)
    arrived = arrivals(rto)

    table = lab.both_views(rto)
    expected = [p.frame for p in hers(client) if line.frame <= p.frame <= ack.frame]
    assert list(table.client) == expected
    assert list(table.server.isna()) == [arrived[frame] is None for frame in expected]
    rows = {row["client"]: row for row in table.to_dict("records")}
    lost, resent, acked = rows[line.frame], rows[resend.frame], rows[ack.frame]
    assert lost["who"] == "alice → server" and (lost["seq"], lost["len"]) == (line.seq, line.len)
    assert pd.isna(lost["server"])  # the server's view never saw the line
    assert resent["server"] == arrived[resend.frame] and resent["client_marks"] == marks(resend.info)
    assert acked["who"] == "server → alice" and acked["ack"] == resend.nxtseq == line.nxtseq
    assert len(lab.both_views(rto, everything=True)) > len(table)  # the handshake, the close


def test_the_sack_column_is_relative_like_seq(stories):
    """Every ACK's SACK blocks are tshark's (relative ``sack_le``-``sack_re``), and its
    marks tshark's (Dup ACK n#k)."""
    client = stories["fast-retransmit"].views("sack")["client"]
    said = {p.frame: p for p in hers(client)}
    table = lab.both_views(stories["fast-retransmit"], "sack")
    acks = table[table.who == "server → alice"]
    assert list(acks.sack) == [sack_blocks(said[frame]) for frame in acks.client]
    assert list(acks.client_marks) == [marks(said[frame].info) for frame in acks.client]
    # The lost line is the hole: the first SACK block begins just past its bytes.
    (fast,) = [p for p in said.values() if p.fast_retransmission]
    assert next(sack for sack in acks.sack if sack).split("-")[0] == str(fast.nxtseq)
    assert acks.client_marks.str.startswith("[TCP Dup ACK").sum() >= 2  # the story asks for two at least


# --------------------------------------------------------------------------- what was resent


def test_a_timeout_resend_and_the_rto_it_waited_for(stories):
    """The resend tshark calls a retransmission: what it repeats, how long after (tshark's
    ``tcp.analysis.rto``), and the RTO alice's kernel had set (its last TCP_INFO before)."""
    rto = stories["rto"]
    client = rto.views()["client"]
    (said,) = [p for p in hers(client) if p.retransmission]
    first = packet(client, said.rto_frame)
    arrived = arrivals(rto)

    (resend,) = lab.resends(rto).to_dict("records")
    assert (resend["frame"], resend["repeats"], resend["lost"]) == (said.frame, (first.frame,), (first.frame,))
    assert arrived[first.frame] is None  # ... lost: the server's view never saw it
    assert (resend["seq"], resend["end"], resend["bytes"]) == (said.seq, said.nxtseq, said.len)
    assert resend["lost_bytes"] == first.len
    assert resend["trigger"] == "timeout"  # the story switches the tail-loss probe off: the timer resends
    assert resend["arrived"] == arrived[said.frame]
    assert resend["wait_ms"] == pytest.approx(said.rto * 1000, abs=0.001)
    kernel = last_sample_before(rto, said.at)
    assert resend["rto_ms"] == kernel["rto"] * 1000 and resend["rto_ms"] >= 200  # Linux's RTO is 200 ms at least
    assert lab.fired_on_time(resend["wait_ms"], resend["rto_ms"])
    # The router's drop rule counted the bytes of the one packet it dropped.
    assert lab.lost_copies(rto) == [first.frame] and first.ip_len == rto.outcome["dropped_bytes"]


def test_backoff_doubles_the_rto_and_the_last_copy_gets_through(stories):
    """Every resend of the line is one tshark calls a retransmission; each waited (from
    the copy before, on tshark's clock) about the RTO alice's kernel had set, which
    doubled each time; only the last copy reached the server's view."""
    backoff = stories["backoff"]
    client = backoff.views()["client"]
    _, port = alice(client)
    said = [p for p in hers(client) if p.sport == port and p.retransmission]
    (original,) = {p.rto_frame for p in said}  # the one line, again and again
    sent = [packet(client, original).at] + [p.at for p in said]
    arrived = arrivals(backoff)

    resent = lab.resends(backoff)
    assert list(resent.frame) == [p.frame for p in said]
    assert list(resent.wait_ms) == pytest.approx([(b - a) * 1000 for a, b in zip(sent, sent[1:])], abs=0.001)
    kernel = [last_sample_before(backoff, p.at) for p in said]
    assert list(resent.rto_ms) == [s["rto"] * 1000 for s in kernel]
    assert list(resent.backoff) == [s["backoff"] for s in kernel]
    # Each resend was a timeout: the kernel counts them (backoff) and doubles its RTO.
    assert list(resent.backoff) == list(range(len(resent)))
    assert list(resent.rto_ms) == [resent.rto_ms[0] * 2**k for k in range(len(resent))]
    assert list(resent.arrived.isna()) == [arrived[frame] is None for frame in resent.frame]
    assert list(resent.arrived.isna()) == [True] * (len(resent) - 1) + [False]  # the path came back for the last
    assert all(map(lab.fired_on_time, resent.wait_ms, resent.rto_ms))


def test_fast_retransmit_with_and_without_sack(stories):
    """tshark's fast retransmission, and the duplicate ACKs it came after, in both runs.
    With SACK it resends the lost line alone; without, everything from the hole on."""
    fr = stories["fast-retransmit"]
    for part in ("sack", "no_sack"):
        client = fr.views(part)["client"]
        _, port = alice(client)
        arrived = arrivals(fr, part)
        (fast,) = [p for p in hers(client) if p.fast_retransmission]
        before = [p for p in hers(client) if p.sport == port and p.len and p.frame < fast.frame]
        copies = [p for p in before if p.seq < fast.nxtseq and fast.seq < p.nxtseq]
        lost = [p for p in copies if arrived[p.frame] is None]
        (dropped,) = fr.part(part)["relay"]["events"]["to_server"]  # what the relay says it dropped
        assert [p.seq_raw for p in lost] == [dropped["seq"]]
        theirs = [p for p in hers(client) if p.sport != port and copies[0].frame < p.frame < fast.frame]

        resend = lab.resends(fr, part).iloc[0]
        assert (resend.frame, resend.seq, resend.end, resend.bytes) == (fast.frame, fast.seq, fast.nxtseq, fast.len)
        assert resend.lost == tuple(p.frame for p in lost)
        assert resend.lost_bytes == dropped["length"] == 34  # one line of the burst: 34 bytes by design
        assert resend.dup_acks == tuple(p.frame for p in theirs if p.duplicate_ack)
        assert resend.asking == tuple(p.frame for p in theirs if p.ack == fast.seq)
        assert resend.sent_up_to == max(p.nxtseq for p in before)
    sack, no_sack = (lab.resends(fr, part).iloc[0] for part in ("sack", "no_sack"))
    assert sack.bytes == sack.lost_bytes  # SACK told alice which lines arrived: the lost one alone again
    assert no_sack.end == no_sack.sent_up_to and no_sack.bytes > no_sack.lost_bytes  # without: all from the hole on
    assert pd.isna(no_sack.backoff) and pd.isna(no_sack.rto_ms) and "tcp_info" not in fr.part("no_sack")


# --------------------------------------------------------------------------- out of order


def test_reordering_is_found_and_nothing_is_resent(stories):
    """The segment tshark calls out of order in the server's view is the one the relay
    held back; the helper finds it, what overtook it and how late it was, on tshark's clock."""
    reorder = stories["reorder"]
    views = reorder.views()
    arrived = arrivals(reorder)
    at = {p.frame: p.at for p in tshark(views["server"])}
    sent_at = {p.frame: p.at for p in tshark(views["client"])}
    (late_said,) = [p for p in hers(views["server"]) if p.out_of_order]
    late_client = next(c for c, s in arrived.items() if s == late_said.frame)
    _, port = alice(views["client"])
    after = [p.frame for p in hers(views["client"]) if p.sport == port and p.len and p.frame > late_client]
    overtakers = [c for c in after if arrived[c] is not None and arrived[c] < late_said.frame]
    (held,) = reorder.outcome["relay"]["events"]["to_server"]

    (late,) = lab.out_of_order(reorder).to_dict("records")
    assert (late["client"], late["server"], late["seq"]) == (late_client, late_said.frame, late_said.seq)
    assert late_said.seq_raw == held["seq"] and held["event"].startswith("hold")  # the one the relay held
    assert late["overtaken_by"] == tuple(overtakers) and overtakers
    first = min(overtakers, key=lambda c: at[arrived[c]])
    assert late["late_ms"] == pytest.approx((at[late_said.frame] - at[arrived[first]]) * 1000, abs=0.001)
    # Both views stamp on one clock (one machine): the held line's trip took longer than
    # that of the first line to overtake it by about what the relay held it back.
    trips = {c: at[arrived[c]] - sent_at[c] for c in (late_client, first)}
    assert late["held_ms"] == pytest.approx((trips[late_client] - trips[first]) * 1000, abs=0.002)
    assert held["event"].endswith(" for 5 ms")
    assert late["held_ms"] >= 5 - 1
    assert late["server_marks"] == marks(late_said.info) == "[TCP Out-Of-Order]"
    assert reorder.outcome["out_of_order"] == [late_said.frame]
    assert not any(p.retransmission for p in tshark(views["client"]))  # nothing resent: the design
    assert lab.resends(reorder).empty and lab.lost_copies(reorder) == []
    assert lab.out_of_order(stories["rto"]).empty


# --------------------------------------------------------------------------- RTT samples


def test_rtt_samples_leave_out_alices_own_acks_and_karns(stories):
    """The rows are tshark's ``ack_rtt`` packets; the samples kept are the server's ACKs
    of bytes sent once; the ACK of the resent line is left out by Karn's rule, though
    tshark times it (from the first copy)."""
    backoff = stories["backoff"]
    client = backoff.views()["client"]
    _, port = alice(client)
    timed = [p for p in hers(client) if p.ack_rtt is not None]
    resent = [p for p in hers(client) if p.sport == port and p.retransmission]

    def sent_again(ack) -> list[int]:  # the resends, before this ACK, of the bytes of the segment it times
        timed_segment = packet(client, ack.acks_frame)
        return [p.frame for p in resent if p.frame < ack.frame
                and p.seq < timed_segment.nxtseq and timed_segment.seq < p.nxtseq]

    servers = [p for p in timed if p.sport != port]
    (karn_said,) = [p for p in servers if sent_again(p)]  # the story resends one line: one ACK of it

    samples = lab.rtt_samples(backoff)
    assert list(samples.frame) == [p.frame for p in timed]
    assert list(samples.frame[samples.use]) == [p.frame for p in servers if not sent_again(p)]
    own = samples[samples.who == "alice → server"]
    assert not own.use.any() and own.reason.str.startswith("alice's own ACK").all()
    assert list(own.frame) == [p.frame for p in timed if p.sport == port]
    (karn,) = samples[samples.reason.str.startswith("Karn")].to_dict("records")
    assert (karn["frame"], karn["acks_frame"]) == (karn_said.frame, karn_said.acks_frame)
    assert karn["rtt_ms"] == pytest.approx(karn_said.ack_rtt * 1000, abs=0.001)
    assert f"(packet {', '.join(map(str, sent_again(karn_said)))})" in karn["reason"]
    assert list(lab.ack_rtts(stories["backoff"]).columns) == [
        "frame", "at_ms", "who", "ack", "acks_frame", "acked", "rtt_ms"]


def test_the_rfc_table_in_milliseconds():
    table = lab.rfc6298_table([0.037, 0.023], granularity_ms=1.0)
    assert list(table.srtt_ms) == pytest.approx([0.037, 0.03525])
    assert list(table.rttvar_ms) == pytest.approx([0.0185, 0.017375])
    assert list(table.srtt_plus_max_g_k_rttvar_ms) == pytest.approx([1.037, 1.03525])
    assert list(table.rto_ms) == [1000.0, 1000.0]


# --------------------------------------------------------------------------- what the kernel said


def test_what_the_kernel_said_before_and_after_a_moment(stories):
    """kernel_before/after pick alice's TCP_INFO samples around a moment of the capture:
    before her line was first sent (no timeout yet), and after the server's ACK of it
    (the backoff over, and Karn's bogus round trip never taken)."""
    backoff = stories["backoff"]
    client = backoff.views()["client"]
    _, port = alice(client)
    resend = next(p for p in hers(client) if p.sport == port and p.retransmission)
    line = packet(client, resend.rto_frame)
    ack = next(p for p in hers(client) if p.sport != port and p.ack >= resend.nxtseq)
    samples = alices_tcp_info(backoff)

    before = lab.kernel_before(backoff, ms_since_her_syn(backoff, line.at))
    expected = [s for s in samples if s["time"] < line.at][-1]
    assert (before["time"], before["rto"], before["name"]) == (expected["time"], expected["rto"], "alice")
    assert before["at_ms"] == pytest.approx(ms_since_her_syn(backoff, expected["time"]), abs=0.001)
    assert before["backoff"] == 0 and before["rto"] >= 0.2  # no timeout yet; Linux's least RTO

    after = lab.kernel_after(backoff, ms_since_her_syn(backoff, ack.at), acked=ack.ack)
    expected = next(s for s in samples if s["time"] > ack.at)
    assert expected["bytes_acked"] >= ack.ack  # (in the reference the first sample after already shows it)
    # A sample read before the kernel handled the ACK does not count as after it: from 50 ms
    # before, the first sample is still the old state, the first that shows the ACK is the same.
    early = ms_since_her_syn(backoff, ack.at) - 50
    assert lab.kernel_after(backoff, early)["bytes_acked"] < ack.ack
    assert lab.kernel_after(backoff, early, acked=ack.ack)["time"] == expected["time"]
    assert (after["time"], after["rtt"], after["rto"]) == (expected["time"], expected["rtt"], expected["rto"])
    assert after["at_ms"] > ms_since_her_syn(backoff, ack.at)
    assert after["backoff"] == 0  # the ACK's RTT sample ended the backoff (RFC 6298, 5.7)
    assert after["rtt"] < ack.ack_rtt / 10  # Karn: not the seconds tshark times from the first copy
    assert lab.kernel_before(backoff, -1.0) is None and lab.kernel_after(backoff, 1e9) is None
    assert "tcp_info" not in stories["fast-retransmit"].part("sack")
    assert lab.kernel_before(stories["fast-retransmit"], 400.0, "sack") is None  # it reads no TCP_INFO


def test_a_timer_fires_from_a_tick_early_to_an_eighth_late():
    assert lab.fired_on_time(204.0, 204.0) and lab.fired_on_time(195.0, 204.0)
    assert not lab.fired_on_time(193.0, 204.0)  # more than a tick early
    assert lab.fired_on_time(1832.0, 1632.0) and not lab.fired_on_time(1850.0, 1632.0)  # 1632 * 9/8 + 10 = 1846


def test_a_story_played_again_is_read_again(tmp_path):
    """A story writes its captures under the same names each time: the analyses are of
    the newest files, not of the first ones read."""
    views = {side: tmp_path / f"story-{side}-view.pcapng" for side in ("client", "server")}
    for side, path in views.items():
        shutil.copy(LAB_CAPTURES / f"rto-{side}-view.pcapng", path)
    run = StoryRun("rto", "live", {"views": {side: str(path) for side, path in views.items()}})
    resent = [p.frame for p in hers(LAB_CAPTURES / "rto-client-view.pcapng") if p.retransmission]
    assert list(lab.resends(run).frame) == resent
    for side, path in views.items():
        shutil.copy(LAB_CAPTURES / f"backoff-{side}-view.pcapng", path)
    backoff = LAB_CAPTURES / "backoff-client-view.pcapng"
    _, port = alice(backoff)
    again = [p.frame for p in hers(backoff) if p.sport == port and p.retransmission]
    assert list(lab.resends(run).frame) == again != resent
    assert len(run.analysis("client").packets) == max(p.frame for p in tshark(backoff))


def test_a_reference_story_names_only_the_parameters_it_was_not_made_with(capsys):
    assert not_the_defaults("reorder", {"hold_ms": 5, "delay_ms": 25.0}) == {}
    assert not_the_defaults("reorder", {"hold_ms": 8, "delay_ms": 25}) == {"hold_ms": 8}
    lab.story("backoff", mode="reference", broken_for=1.7)
    assert "default parameters" not in capsys.readouterr().out
    lab.story("backoff", mode="reference", broken_for=1.0)
    assert "made with the default parameters, not with {'broken_for': 1.0}" in capsys.readouterr().out
