"""tcpchatx.lab.windows: the flow-control notebook's facts, read from the lab stories'
reference captures (captures/lab/), and a few made-up flows for what they do not show.

Nothing read from a capture is pinned to one recording: frame numbers, windows and
times are asked of tshark on the same capture (window = raw window << scale is
tshark's ``tcp.window_size``), the kernel's numbers of the story's record, so that
the tests still hold when ``tcpchatx references --lab`` plays the stories again."""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import replace
from functools import cache
from types import SimpleNamespace

import pytest
from lab_tshark import marks, tshark_packets

from tcpchatx import lab
from tcpchatx.lab.loss import TICK_MS
from tcpchatx.lab.windows import INVALID_RATELIMIT_MS, Flow, Segment, segments
from tcpchatx.tcp_flags import ACK, SYN

ALICE_NICK = b"alice\n".hex(":")  # her first line, her nickname: the connection that carries it is hers


@pytest.fixture(scope="module")
def limits():
    return lab.reference_story("limits")


@pytest.fixture(scope="module")
def chat():
    return lab.reference_story("zero-window")


@pytest.fixture(scope="module")
def transfer(limits):
    return lab.flow(limits, "rwnd", view="client")


@pytest.fixture(scope="module")
def alice(chat):
    return lab.flow(chat, view="server")


def made_up(*packets: Segment, shift: int = 0) -> Flow:
    """A flow of the given packets alone (the helpers that read only packets take it)."""
    return Flow(None, "client", 0, "originator", "sender", "receiver", shift, 0.0, packets)


def data(frame: int, seq: int, length: int, **kw) -> Segment:
    return Segment(frame, float(frame), True, ACK, seq, length, 1, 63, None, None, kw.get("in_flight"),
                   kw.get("events", ()), "")


def ack(frame: int, number: int, window: int, shift: int = 0, flags: int = ACK) -> Segment:
    scaled = window if flags & SYN else window << shift
    return Segment(frame, float(frame), False, flags, 1, 0, number, window, scaled, number + scaled, None, (), "")


# --------------------------------------------------------------------------- tshark, the oracle

#: What the tests read of each packet, and the tshark field it is read from.
FIELDS = {
    "frame": "frame.number", "at": "frame.time_epoch", "ip_id": "ip.id", "stream": "tcp.stream", "sport": "tcp.srcport",
    "syn": "tcp.flags.syn", "ack_flag": "tcp.flags.ack", "fin": "tcp.flags.fin", "rst": "tcp.flags.reset",
    "seq": "tcp.seq", "ack": "tcp.ack", "len": "tcp.len", "nxtseq": "tcp.nxtseq",
    "window": "tcp.window_size_value", "window_bytes": "tcp.window_size", "wscale": "tcp.options.wscale.shift",
    "in_flight": "tcp.analysis.bytes_in_flight", "window_full": "tcp.analysis.window_full",
    "zero_window": "tcp.analysis.zero_window", "keep_alive": "tcp.analysis.keep_alive",
    "window_update": "tcp.analysis.window_update", "info": "_ws.col.Info",
}
FLAGS = {"syn", "ack_flag", "fin", "rst", "window_full", "zero_window", "keep_alive", "window_update"}


@cache
def tshark(path) -> tuple[SimpleNamespace, ...]:
    """Every TCP packet of ``path`` as tshark dissects it: ``FIELDS`` (:mod:`lab_tshark`)."""
    return tshark_packets(path, FIELDS, FLAGS, {"info", "ip_id"}, {"at"})


@cache
def matching(path, display_filter: str) -> tuple[int, ...]:
    """The numbers of the packets of ``path`` that a tshark display filter matches."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return tuple(int(line) for line in out.splitlines() if line)


def bulk(path) -> SimpleNamespace:
    """The connection that carried the most bytes one way: a transfer's (:func:`said`)."""
    carried = Counter()
    for p in tshark(path):
        carried[p.stream, p.sport] += p.len
    (stream, port), _ = carried.most_common(1)[0]
    return said(path, stream, port)


def alices(path) -> SimpleNamespace:
    """alice's connection, the one that carried her nickname; the server sends (:func:`said`)."""
    (frame,) = matching(path, f"tcp.payload == {ALICE_NICK}")
    nick = next(p for p in tshark(path) if p.frame == frame)
    return said(path, nick.stream, next(p.sport for p in tshark(path) if p.stream == nick.stream
                                        and p.sport != nick.sport))


def said(path, stream: int, port: int) -> SimpleNamespace:
    """A connection as tshark saw it: its ``packets`` in capture order, those the data
    sender (``port``) ``sent`` and those the receiver ``answered``."""
    packets = [p for p in tshark(path) if p.stream == stream]
    return SimpleNamespace(stream=stream, port=port, packets=packets, sent=[p for p in packets if p.sport == port],
                           answered=[p for p in packets if p.sport != port])


# --------------------------------------------------------------------------- which flow


def test_a_transfer_flows_from_the_client_and_the_chat_from_the_server_to_alice(limits, transfer, alice):
    """The flows are tshark's streams: the transfer's the one with the most bytes, sent by
    the client; alice's the one that carried her nickname, sent by the server."""
    tx = bulk(transfer.analysis.path)
    assert (transfer.conn, transfer.direction, transfer.sender, transfer.receiver) == (tx.stream, "originator",
                                                                                       "sender", "receiver")
    assert tx.sent[0].syn and not tx.sent[0].ack_flag  # the sender opened the connection: the originator
    sent = transfer.analysis.connections[transfer.conn].payload_bytes[0]
    assert sent == sum(p.len for p in tx.sent) >= limits.part("rwnd")["received"][0]
    chat = alices(alice.analysis.path)
    assert (alice.conn, alice.direction, alice.sender, alice.receiver) == (chat.stream, "responder", "server",
                                                                           "alice")
    assert alice.analysis.chat.nick_of_conn[alice.conn] == "alice"
    # The shift is the receiver's: the window scale its own SYN offered.
    assert transfer.shift == next(p.wscale for p in tx.answered if p.syn)
    assert alice.shift == next(p.wscale for p in chat.answered if p.syn)


def test_the_shift_of_each_side_is_its_own_syns_scale(transfer):
    a, conn = transfer.analysis, transfer.conn
    tx = bulk(a.path)
    assert lab.window_shift(a, conn, 1) == next(p.wscale for p in tx.answered if p.syn)  # the receiver's SYN-ACK
    assert lab.window_shift(a, conn, 0) == next(p.wscale for p in tx.sent if p.syn)  # the sender's SYN


# --------------------------------------------------------------------------- the window in each ACK


def test_the_syn_acks_window_is_not_scaled_and_the_first_ack_of_data_is(limits, transfer):
    """The SYN-ACK's window as on the wire, unscaled; the first ACK of data's scaled by the
    SYN-ACK's shift: both as tshark reads them (``tcp.window_size``)."""
    tx = bulk(transfer.analysis.path)
    syn, synack = tx.sent[0], next(p for p in tx.answered if p.syn)
    first_data = next(p for p in tx.sent if p.len)
    ack = next(p for p in tx.answered if p.frame > first_data.frame and p.ack > first_data.seq)
    first = lab.first_window(transfer)
    assert (first.syn, first.syn_window, first.offered, first.shift) == (synack.frame, synack.window,
                                                                        synack.wscale, synack.wscale)
    assert synack.window_bytes == synack.window  # a SYN's window is never scaled
    assert (first.ack_frame, first.ack, first.window) == (ack.frame, ack.ack, ack.window)
    assert first.window_bytes == ack.window_bytes == ack.window << synack.wscale
    assert first.edge == ack.ack + ack.window_bytes
    assert first.syn_ms == pytest.approx((synack.at - syn.at) * 1000, abs=0.001)
    assert first.syn_ms >= 2 * lab.used_parameters(limits)["delay_ms"]  # a round trip: the story's delay each way
    table = lab.handshake_windows(transfer)
    shown = [p for p in tx.packets if p.syn or p.frame == ack.frame
             or (p.frame < ack.frame and p.sport == tx.port and not p.len)]
    assert list(table.frame) == [p.frame for p in shown]  # SYN, SYN-ACK, ACK, the first ACK of data
    assert table.wscale.fillna(-1).tolist() == [-1 if p.wscale is None else p.wscale for p in shown]
    assert "window_bytes" not in table  # the question's answer is not in the table it asks about


def test_the_window_table_gives_each_ack_its_edge(transfer):
    """Every packet of the connection; each of the receiver's windows is tshark's
    ``tcp.window_size`` (the field << the shift, a SYN's unscaled), its edge ACK + that."""
    tx = bulk(transfer.analysis.path)
    table = lab.window_table(transfer)
    assert list(table.frame) == [s.frame for s in segments(transfer)] == [p.frame for p in tx.packets]
    receiver = table[table.who == "receiver → sender"]
    assert list(receiver.window) == [p.window for p in tx.answered]
    assert list(receiver.window_bytes) == [p.window_bytes for p in tx.answered]
    assert (receiver.edge == receiver.ack + receiver.window_bytes).all()
    later = receiver.iloc[1:]  # after the SYN-ACK
    assert (later.window_bytes == later.window * 2**transfer.shift).all()
    sender = table[table.who == "sender → receiver"]
    assert sender.window_bytes.isna().all() and sender.edge.isna().all()
    assert list(sender.in_flight.fillna(-1)) == [-1 if p.in_flight is None else p.in_flight for p in tx.sent]
    assert list(lab.window_table(transfer, 8, 9).frame) == [8, 9]


def test_the_sender_kept_to_the_window_and_knew_it(limits, transfer):
    """No segment past ACK + window, as tshark reads both; the windows announced are
    tshark's, and the kernel knew only windows that were announced; each Window Full
    segment ends exactly at the edge of the last window before it."""
    tx = bulk(transfer.analysis.path)
    edge, crossed = None, []
    for p in tx.packets:
        if p.sport != tx.port and p.ack_flag:
            edge = p.ack + p.window_bytes
        elif p.sport == tx.port and p.len and edge is not None and p.nxtseq > edge:
            crossed.append(p.frame)
    assert lab.past_the_edge(transfer) == crossed == []
    announced = {p.window_bytes for p in tx.answered if p.ack_flag}
    assert lab.announced_windows(transfer) == announced
    kernel = {s["snd_wnd"] for s in limits.part("rwnd")["tcp_info"] if s["name"] == "sender"}
    assert lab.kernel_windows(limits, "rwnd") == kernel and kernel <= announced
    full = []
    for p in tx.sent:
        if p.window_full:
            last = [q for q in tx.answered if q.frame < p.frame and q.ack_flag][-1]
            assert p.nxtseq == last.ack + last.window_bytes  # it filled the window to the byte
            full.append((p.frame, p.nxtseq, last.frame))
    assert lab.window_full(transfer) == full and full
    use = lab.window_use(transfer)
    data = [p for p in tx.sent if p.len]
    assert use.window == Counter(p.window_bytes for p in tx.answered if not p.syn).most_common(1)[0][0]
    assert use.most_in_flight == max(p.in_flight for p in data)
    assert (use.segment, use.segments) == (max(p.len for p in data), len(data))
    # The rwnd run is held back by the window (the story checks so): in flight up to it, within a segment.
    assert use.window - use.segment < use.most_in_flight <= use.window


def test_a_segment_past_the_edge_is_found():
    flow = made_up(ack(1, 1, 10), data(2, 1, 8), data(3, 9, 2), data(4, 11, 1), ack(5, 11, 5), data(6, 11, 5))
    assert lab.past_the_edge(flow) == [4]  # the edge was 11: bytes 1..10 only


# --------------------------------------------------------------------------- a window that closes


def closed(alice: Flow) -> SimpleNamespace:
    """alice's window closing, as tshark marks it in the server's view: the first ZeroWindow,
    the ZeroWindows and Keep-Alives (the probes) until the Window Update that opens it."""
    chat = alices(alice.analysis.path)
    first = next(p for p in chat.answered if p.zero_window)
    update = next(p for p in chat.answered if p.frame > first.frame and p.window_update)
    between = [p for p in chat.packets if first.frame <= p.frame < update.frame]
    probes = [p for p in between if p.keep_alive and p.sport == chat.port]
    following = {p.frame: chat.packets[k + 1] for k, p in enumerate(chat.packets[:-1])}
    return SimpleNamespace(
        chat=chat, first=first, update=update, probes=probes,
        zeros=[p for p in between if p.zero_window],
        # a probe's answer: alice's next packet, if it comes before the server's and says the window is still 0
        answers=[following[p.frame] if following[p.frame].sport != chat.port and following[p.frame].zero_window
                 else None for p in probes],
        t0=chat.packets[0].at)


def one_doubling_timer(gaps_ms) -> bool:
    """Whether some timeout T explains every gap as T, 2T, 4T... each fired as Linux's
    timers may (:func:`lab.fired_on_time`: a tick early to an eighth and a tick late)."""
    lowest = max((gap - TICK_MS) / (2**k * 9 / 8) for k, gap in enumerate(gaps_ms))
    highest = min((gap + TICK_MS) / 2**k for k, gap in enumerate(gaps_ms))
    return lowest <= highest


def test_the_zero_window_the_probes_and_the_update(alice):
    """The segment that filled the window, the zero windows, the probes and the update are
    tshark's; the probes' waits double (the persist timer backs off)."""
    zw, seen = lab.zero_window(alice), closed(alice)
    full = [p for p in seen.chat.sent if p.len and p.frame < seen.first.frame][-1]
    before = [p for p in seen.chat.answered if p.frame < full.frame][-1]
    assert (zw.full, zw.full_len, zw.full_end) == (full.frame, full.len, full.nxtseq)
    assert (zw.before, zw.before_ack, zw.before_window, zw.before_window_bytes) == (before.frame, before.ack,
                                                                                    before.window, before.window_bytes)
    assert zw.full_end == before.ack + before.window_bytes  # it filled the window to the byte
    assert zw.zeros == tuple(p.frame for p in seen.zeros) and zw.zero_ack == seen.first.ack == zw.full_end
    assert zw.probes == tuple(p.frame for p in seen.probes) and len(zw.probes) >= 2
    assert zw.probe_seq == tuple(p.seq for p in seen.probes) == (zw.zero_ack - 1,) * len(zw.probes)
    assert zw.probe_len == (0,) * len(zw.probes)  # Linux's probe carries no byte (tshark: a Keep-Alive)
    assert zw.answers == tuple(p and p.frame for p in seen.answers)
    update = seen.update
    assert (zw.update, zw.update_ack, zw.update_window, zw.update_window_bytes) == (update.frame, update.ack,
                                                                                    update.window, update.window_bytes)
    assert zw.update_window_bytes == zw.update_window << alice.shift
    assert zw.resumed == next(p.frame for p in seen.chat.sent if p.len and p.frame > update.frame)
    times = [(p.at - seen.t0) * 1000 for p in [seen.first, *seen.probes]]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert list(zw.gaps_ms) == pytest.approx(gaps, abs=0.002)
    assert one_doubling_timer(zw.gaps_ms) and not one_doubling_timer([gaps[0]] * len(gaps))
    assert lab.ratios(zw.gaps_ms) == pytest.approx([later / earlier for earlier, later in zip(gaps, gaps[1:])],
                                                   abs=0.006)


def test_probes_are_answered_as_linuxs_rate_limit_allows(alice):
    """How long after the last answer each probe came, on tshark's clock; Linux answers
    one when 500 ms have passed since, and (the first aside) no other."""
    zw, seen = lab.zero_window(alice), closed(alice)
    since, last = [], None
    for probe, answer in zip(seen.probes, seen.answers):
        since.append(None if last is None else (probe.at - last) * 1000)
        last = answer.at if answer else last
    assert [s is None for s in zw.since_answer_ms] == [s is None for s in since]
    assert [s for s in zw.since_answer_ms if s is not None] == pytest.approx([s for s in since if s is not None],
                                                                           abs=0.002)
    assert lab.answered_as_linux_limits(zw)
    for k, waited in enumerate(zw.since_answer_ms):  # any answer given or kept back otherwise is not Linux's
        if waited is not None and abs(waited - INVALID_RATELIMIT_MS) <= TICK_MS:
            continue  # within a tick of the limit: either will do
        other = list(zw.answers)
        other[k] = None if other[k] is not None else zw.probes[k]
        assert not lab.answered_as_linux_limits(replace(zw, answers=tuple(other))), (k, waited)
    near = replace(zw, probe_ms=(479.641, 979.0, 1787.642), answer_ms=(479.665, 979.1, 1787.68), answers=(72, 73, 75))
    assert lab.answered_as_linux_limits(near)  # 499 ms: within a tick of the limit, either will do


def test_an_update_soon_after_a_probe_is_no_answer_to_it():
    flow = made_up(ack(1, 1, 4), data(2, 1, 4), ack(3, 5, 0),
                   data(4, 4, 0, events=("keep_alive",)), ack(5, 5, 0),  # a probe and its answer
                   replace(data(6, 4, 0, events=("keep_alive",)), ms=600.0),  # no answer to this one ...
                   replace(ack(7, 5, 8), ms=650.0),  # ... the reader read again 50 ms later
                   replace(data(8, 5, 8), ms=651.0))
    zw = lab.zero_window(flow)
    assert (zw.full, zw.before, zw.zeros, zw.probes, zw.answers) == (2, 1, (3, 5), (4, 6), (5, None))
    assert (zw.update, zw.update_window_bytes, zw.resumed) == (7, 8, 8)
    assert zw.gaps_ms == (1.0, 596.0) and zw.since_answer_ms == (None, 595.0)
    assert not lab.answered_as_linux_limits(zw)  # 595 ms after the last answer: Linux would have answered


def test_a_window_that_never_closed(transfer):
    with pytest.raises(LookupError, match="never closed"):
        lab.zero_window(transfer)


def test_what_alices_kernel_held_and_when_she_read_again(chat, alice):
    """When alice read again is the story's record, on the capture's clock; her TCP_INFO
    while her window was shut shows a receive queue that neither grew nor shrank."""
    zw, seen = lab.zero_window(alice), closed(alice)
    read_again = (chat.outcome["read_again_at"] - seen.t0) * 1000
    assert lab.read_again_ms(chat, alice) == pytest.approx(read_again, abs=0.001)
    closed_ms, update_ms = ((p.at - seen.t0) * 1000 for p in (seen.first, seen.update))
    expected = [s for s in chat.outcome["tcp_info"]
                if s["name"] == "alice" and closed_ms <= (s["time"] - seen.t0) * 1000 <= min(update_ms, read_again)]
    held = lab.kernel_while_closed(chat, alice, zw)
    assert [s["time"] for s in held] == [s["time"] for s in expected] and held
    assert len({s["receive_queue"] for s in held}) == 1 and held[0]["receive_queue"] > 0  # full, and not read
    assert all(zw.closed_ms <= s["at_ms"] <= zw.update_ms for s in held)


def test_the_server_cut_alice_off_and_she_reset(alice):
    """The notice (the packet tshark finds "alice left" in), the server's last data to
    alice, and the RST that ended her connection, as tshark numbers them."""
    chat = alices(alice.analysis.path)
    (notice,) = matching(alice.analysis.path, 'tcp.payload contains "alice left"')
    at = {p.frame: p.at for p in tshark(alice.analysis.path)}
    last = [p for p in chat.sent if p.len][-1]
    reset = next(p for p in chat.packets if p.rst)
    end = lab.cut_off(alice)
    assert (end.notice, end.last_data, end.last_data_marks) == (notice, last.frame, marks(last.info))
    assert "[TCP Window Full]" in end.last_data_marks  # she stopped reading: the last copy filled her window
    assert end.server_fin is None and not any(p.fin for p in chat.sent)  # cut off, not closed
    assert end.end == reset.frame and reset.ack_flag and reset.sport != chat.port
    assert (end.end_flags, end.end_by) == ("AR", "alice")  # she closed with unread data: her kernel resets
    assert end.notice_ms == pytest.approx((at[notice] - chat.packets[0].at) * 1000, abs=0.001)


# --------------------------------------------------------------------------- where the bytes wait


def test_where_the_bytes_of_each_transfer_wait(limits):
    """The most each buffer held, from the record's TCP_INFO and queue samples; the window
    is one the receiver announced (tshark), the drops the segments the server never saw."""
    most = lab.where_bytes_wait(limits)
    assert list(most.index) == ["rwnd", "app", "cwnd"]
    assert list(most.limited_by) == ["rwnd", "app", "cwnd"]  # each run's design (the story checks it)
    for part in most.index:
        run, row = limits.part(part), most.loc[part]
        sender = [s for s in run["tcp_info"] if s["name"] == "sender"]
        assert row.in_flight == max(s["send_queue"] - s["notsent_bytes"] for s in sender)
        assert row.not_sent == max(s["notsent_bytes"] for s in sender)
        assert row.window == max(s["snd_wnd"] for s in sender)
        assert row.window in {p.window_bytes for p in bulk(limits.views(part)["client"]).answered}
        assert row.in_flight <= row.window  # the sender never had more out than the receiver allowed
        assert row.router == max(q["backlog_bytes"] for q in run["queue"])
        client, server = (bulk(limits.views(part)[side]) for side in ("client", "server"))
        arrived = {(p.ip_id, p.seq) for p in server.sent}  # the router forwards a packet unchanged
        never = [p for p in client.sent if p.len and (p.ip_id, p.seq) not in arrived]
        assert row.dropped == run["relay"]["counts"]["to_server"]["queue_full"] == len(never)
    rwnd, app, cwnd = (most.loc[part] for part in ("rwnd", "app", "cwnd"))
    assert rwnd.not_sent > 0 and app.not_sent == 0  # the window held bytes back; the application had none waiting
    assert 0 < cwnd.router <= 30_000 and cwnd.dropped > 0  # the link's queue (30,000 bytes) filled and dropped
