"""tcpchatx.lab.windows: the flow-control notebook's facts, read from the lab stories'
reference captures (captures/lab/), and a few made-up flows for what they do not show."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tcpchatx import lab
from tcpchatx.lab.windows import Flow, Segment, segments
from tcpchatx.tcp_flags import ACK, SYN


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


# --------------------------------------------------------------------------- which flow


def test_a_transfer_flows_from_the_client_and_the_chat_from_the_server_to_alice(transfer, alice):
    assert (transfer.conn, transfer.direction, transfer.sender, transfer.receiver) == (0, "originator", "sender",
                                                                                       "receiver")
    assert transfer.analysis.connections[transfer.conn].payload_bytes[0] >= 150_000
    assert (alice.direction, alice.sender, alice.receiver) == ("responder", "server", "alice")
    assert alice.analysis.chat.nick_of_conn[alice.conn] == "alice"
    assert transfer.shift == alice.shift == 7  # both receivers' SYNs offer scale 7


def test_the_shift_of_each_side_is_its_own_syns_scale(transfer):
    a, conn = transfer.analysis, transfer.conn
    assert lab.window_shift(a, conn, 1) == 7  # the receiver's SYN-ACK offers 7
    assert lab.window_shift(a, conn, 0) == 10  # the sender's SYN offers 10


# --------------------------------------------------------------------------- the window in each ACK


def test_the_syn_acks_window_is_not_scaled_and_the_first_ack_of_data_is(transfer):
    first = lab.first_window(transfer)
    assert (first.syn, first.syn_window, first.offered, first.shift) == (2, 7240, 7, 7)
    assert (first.ack_frame, first.ack, first.window) == (9, 1449, 69)
    assert (first.window_bytes, first.edge) == (69 * 128, 1449 + 8832)
    assert first.syn_ms == pytest.approx(40.327)  # a round trip: 20 ms each way
    table = lab.handshake_windows(transfer)
    assert list(table.frame) == [1, 2, 3, 9]  # SYN, SYN-ACK, ACK, the first ACK of data
    assert table.wscale.fillna(-1).tolist() == [10, 7, -1, -1]
    assert "window_bytes" not in table  # the question's answer is not in the table it asks about


def test_the_window_table_gives_each_ack_its_edge(transfer):
    table = lab.window_table(transfer)
    assert len(table) == len(segments(transfer)) == 162
    synack = table[table.frame == 2].iloc[0]
    assert (synack.window, synack.window_bytes, synack.edge) == (7240, 7240, 7241)
    receiver = table[table.who == "receiver → sender"].iloc[1:]
    assert (receiver.edge == receiver.ack + receiver.window_bytes).all()
    assert (receiver.window_bytes == receiver.window * 128).all()
    sender = table[table.who == "sender → receiver"]
    assert sender.window_bytes.isna().all() and sender.edge.isna().all()
    assert list(lab.window_table(transfer, 8, 9).frame) == [8, 9]


def test_the_sender_kept_to_the_window_and_knew_it(limits, transfer):
    assert lab.past_the_edge(transfer) == []
    assert lab.announced_windows(transfer) == {7240, 6016, 7424, 8832}
    assert lab.kernel_windows(limits, "rwnd") == {7240, 8832} <= lab.announced_windows(transfer)
    assert lab.window_full(transfer) == [(8, 7241, 2)]  # five segments fill the SYN-ACK's 7,240 bytes
    use = lab.window_use(transfer)
    assert (use.window, use.most_in_flight, use.segment, use.segments) == (8832, 8688, 1448, 104)


def test_a_segment_past_the_edge_is_found():
    flow = made_up(ack(1, 1, 10), data(2, 1, 8), data(3, 9, 2), data(4, 11, 1), ack(5, 11, 5), data(6, 11, 5))
    assert lab.past_the_edge(flow) == [4]  # the edge was 11: bytes 1..10 only


# --------------------------------------------------------------------------- a window that closes


def test_the_zero_window_the_probes_and_the_update(alice):
    zw = lab.zero_window(alice)
    assert (zw.full, zw.full_len, zw.full_end) == (69, 512, 2434)
    assert (zw.before, zw.before_ack, zw.before_window, zw.before_window_bytes) == (68, 1922, 4, 512)
    assert zw.zeros == (70, 72, 75) and zw.zero_ack == 2434
    assert zw.probes == (71, 73, 74) and zw.probe_seq == (2433,) * 3 and zw.probe_len == (0,) * 3
    assert zw.answers == (72, None, 75)
    assert (zw.update, zw.update_ack, zw.update_window, zw.update_window_bytes, zw.resumed) == (76, 2434, 12, 1536,
                                                                                                  77)
    assert [round(gap) for gap in zw.gaps_ms] == [212, 444, 864]
    assert lab.ratios(zw.gaps_ms) == [2.09, 1.95]


def test_probes_are_answered_as_linuxs_rate_limit_allows(alice):
    zw = lab.zero_window(alice)
    assert [None if s is None else round(s) for s in zw.since_answer_ms] == [None, 444, 1308]
    assert lab.answered_as_linux_limits(zw)
    assert not lab.answered_as_linux_limits(replace(zw, answers=(72, 73, 75)))  # 444 ms: too soon to answer
    assert not lab.answered_as_linux_limits(replace(zw, answers=(72, None, None)))  # 1,308 ms: must answer
    assert not lab.answered_as_linux_limits(replace(zw, answers=(None, None, 75)))  # the first: always answered
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
    zw = lab.zero_window(alice)
    assert lab.read_again_ms(chat, alice) == pytest.approx(2402.228, abs=0.01)
    held = lab.kernel_while_closed(chat, alice, zw)
    assert len(held) == 211 and {s["receive_queue"] for s in held} == {2252}
    assert all(zw.closed_ms <= s["at_ms"] <= zw.update_ms for s in held)


def test_the_server_cut_alice_off_and_she_reset(alice):
    end = lab.cut_off(alice)
    assert (end.notice, end.last_data, end.last_data_marks) == (518, 243, "[TCP Window Full]")
    assert end.server_fin is None
    assert (end.end, end.end_flags, end.end_by) == (524, "AR", "alice")
    assert end.notice_ms == pytest.approx(2408.4, abs=0.5)


# --------------------------------------------------------------------------- where the bytes wait


def test_where_the_bytes_of_each_transfer_wait(limits):
    most = lab.where_bytes_wait(limits)
    assert list(most.index) == ["rwnd", "app", "cwnd"]
    assert list(most.limited_by) == ["rwnd", "app", "cwnd"]
    rwnd, app, cwnd = (most.loc[part] for part in ("rwnd", "app", "cwnd"))
    assert (rwnd.in_flight, rwnd.window, rwnd.router, rwnd.dropped) == (8688, 8832, 0, 0)
    assert rwnd.not_sent == 118_736  # the rest waited at the sender
    assert (app.not_sent, app.router) == (0, 0)
    assert (cwnd.router, cwnd.dropped) == (28_766, 24)
