"""tcpchatx.lab.congestion: the congestion notebook's facts, from the rules on plain samples
and from the bottleneck and limits stories' reference captures (captures/lab/)."""

from __future__ import annotations

import pytest

from tcpchatx import lab
from tcpchatx.lab import congestion
from tcpchatx.lab.congestion import (
    UNSET,
    early_threshold,
    episodes,
    first_loss,
    in_flight,
    slow_start_samples,
)


def sample(t: float, cwnd: int, state: str = "Open", ssthresh: int = UNSET, **fields) -> dict:
    """A TCP_INFO sample of the sender with what the rules read (the rest zero)."""
    base = {"time": t, "name": "sender", "snd_cwnd": cwnd, "snd_ssthresh": ssthresh, "ca_state_name": state,
            "delivered": 1, "total_retrans": 0, "unacked": 0, "sacked": 0, "lost": 0, "retrans": 0}
    return {**base, **fields}


# --------------------------------------------------------------------------- the rules, on plain numbers


def test_rates_are_read_as_tc_writes_them():
    assert lab.bits_per_second("4mbit") == 4e6
    assert lab.bits_per_second("500kbit") == 500e3
    assert lab.bits_per_second("1mbps") == 8e6  # tc's bps is bytes per second
    with pytest.raises(ValueError, match="not a tc rate: '4 furlongs'"):
        lab.bits_per_second("4 furlongs")


def test_a_full_queue_takes_its_size_over_the_rate_to_drain():
    assert lab.queue_delay_ms(30_000, "4mbit") == pytest.approx(60.0)
    assert lab.bdp_bytes("4mbit", 20) == pytest.approx(10_000)


def test_in_flight_is_the_kernels_count():
    assert in_flight(sample(0, 10, unacked=55, sacked=18, lost=19, retrans=17)) == 55 - 18 - 19 + 17


def test_episodes_are_the_spans_that_are_not_open():
    samples = [sample(0.00, 50), sample(0.01, 54, "Disorder", total_retrans=0),
               sample(0.02, 49, "Recovery", 37, total_retrans=2), sample(0.03, 37, "Recovery", 37, total_retrans=9),
               sample(0.04, 37, "Open", 37, total_retrans=9), sample(0.05, 38, "Open", 37),
               sample(0.06, 30, "Recovery", 26), sample(0.07, 26, "Recovery", 26)]
    first, last = episodes(samples)
    assert (first.before, first.start, first.end) == (0.00, 0.01, 0.04)
    assert first.states == ("Disorder", "Recovery") and (first.cwnd_before, first.cwnd_after) == (50, 37)
    assert first.ssthresh == 37 and first.retransmitted == 9
    assert last.states == ("Recovery",) and last.end == 0.07  # still recovering when the samples end
    assert episodes([sample(0, 10), sample(1, 20)]) == []


def test_slow_start_is_open_with_no_threshold():
    samples = [sample(0, 10), sample(1, 20), sample(2, 40, ssthresh=40), sample(3, 41, ssthresh=40)]
    assert [s["snd_cwnd"] for s in slow_start_samples(samples)] == [10, 20]
    assert early_threshold(samples)["time"] == 2  # left without a loss (cubic's HyStart)
    assert first_loss(samples) is None


def test_a_threshold_set_at_the_loss_is_not_an_early_one():
    samples = [sample(0, 10), sample(1, 54, "Disorder"), sample(2, 49, "Recovery", 37), sample(3, 30, ssthresh=30)]
    assert early_threshold(samples) is None
    at, before = first_loss(samples)
    assert (at["time"], before["snd_cwnd"], at["snd_ssthresh"]) == (2, 54, 37)


def test_the_router_refused_what_the_relay_could_not_queue():
    run = {"dropped": 48, "relay": {"counts": {"to_server": {"queue_full": 70}}}}
    assert lab.router_refused(run) == 70
    assert lab.router_refused({"dropped": 40}) == 40  # no relay's record: the queue's own count


# --------------------------------------------------------------------------- the reference bottleneck story


@pytest.fixture(scope="module")
def bottleneck():
    return lab.reference_story("bottleneck")


@pytest.fixture(scope="module")
def limits():
    return lab.reference_story("limits")


def test_slow_start_doubles_each_round_until_the_first_sack(bottleneck):
    rounds = lab.slow_start_rounds(bottleneck, "cubic")
    assert list(rounds.segments) == [10, 20, 40, 24] and list(rounds.complete) == [True, True, True, False]
    assert (rounds["first"].iloc[0], rounds["last"].iloc[0]) == (4, 13)  # the initial window, before any ACK
    assert rounds.ms.iloc[0] == pytest.approx(20.3, abs=0.1)  # one round trip of the empty path
    assert rounds.ms.iloc[2] > 2 * rounds.ms.iloc[0]  # the queue filled during round 3


def test_where_cubic_and_reno_left_slow_start(bottleneck):
    cubic = lab.slow_start(bottleneck, "cubic")
    assert cubic.grew_by_delivered and (cubic.initial_cwnd, cubic.last_cwnd, cubic.last_delivered) == (10, 52, 43)
    assert cubic.early_ssthresh is None  # no HyStart in this run: the loss ended slow start
    assert (cubic.first_drop, cubic.first_drop_seq, cubic.cwnd_at_drop) == (64, 62265, 20)
    assert (cubic.first_sack, cubic.first_sack_blocks, cubic.first_dup_ack) == (130, "66609-68057", 135)
    assert (cubic.first_resend, cubic.dup_acks_before_resend) == (136, 1)
    assert (cubic.cwnd_at_loss, cubic.ssthresh_before_loss, cubic.ssthresh_at_loss) == (54, None, 37)
    assert cubic.loss_set_ssthresh and cubic.ssthresh_at_loss == int(cubic.beta * cubic.cwnd_at_loss)
    reno = lab.slow_start(bottleneck, "reno")
    assert (reno.cwnd_at_loss, reno.ssthresh_at_loss, reno.beta) == (54, 27, 0.5)


def test_bbrs_loss_sets_no_threshold(bottleneck):
    bbr = lab.slow_start(bottleneck, "bbr")
    assert bbr.beta is None and not bbr.grew_by_delivered  # its startup is not RFC 5681's slow start
    assert bbr.loss_ms is not None and not bbr.loss_set_ssthresh and bbr.ssthresh_at_loss is None


def test_tail_drops_are_the_segments_the_server_never_saw(bottleneck):
    drops = lab.tail_drops(bottleneck, "cubic")
    assert len(drops) == bottleneck.part("cubic")["dropped"] == lab.router_refused(bottleneck.part("cubic")) == 40
    first = drops.iloc[0]
    assert (first.frame, first.seq, first.end, first.resent, first.arrived, first.episode) == (64, 62265, 63713,
                                                                                             (136,), 131, 1)
    assert first.queue_bytes == 19 * 1514  # a full queue: the 20th frame of 1,514 bytes did not fit
    twice = drops[drops.resent.map(len) > 1]
    assert list(twice.frame) == [133] and twice.resent.iloc[0] == (189, 250)  # its first resend, 189, dropped too
    assert 189 in set(drops.frame) and drops.arrived.notna().all()


def test_recovery_episodes_count_the_resends_and_what_they_repaired(bottleneck):
    episodes = lab.recoveries(bottleneck, "cubic")
    assert list(episodes.states) == ["Disorder → Recovery", "Disorder → Recovery"]
    assert list(episodes.resent) == [39, 1] and list(episodes.repaired) == [39, 1]
    assert (episodes.first_resend.iloc[0], episodes.dup_acks.iloc[0]) == (136, 25)
    assert episodes.sack_acks.iloc[0] > episodes.dup_acks.iloc[0]  # Wireshark wants the window unchanged too
    assert (episodes.cwnd_before.iloc[0], episodes.ssthresh.iloc[0]) == (52, 24)
    assert episodes.resent.sum() == bottleneck.part("cubic")["tcp_info"][-1]["total_retrans"]


def test_the_algorithms_side_by_side(bottleneck):
    table = lab.compare_algorithms(bottleneck)
    assert list(table.index) == ["cubic", "reno", "bbr"]
    assert list(table.dropped) == [40, 31, 57] and list(table.max_cwnd) == [54, 54, 40]
    assert list(table.ssthresh_at_loss[:2]) == [37, 27] and table.ssthresh_at_loss.isna()["bbr"]
    assert (table.goodput_mbit_s > 3.8).all() and (table.queue_max_bytes <= 30_000).all()
    assert table.loc["bbr", "episodes"] == 5 and table.loc["bbr", "queue_full_share"] > table.loc["reno", "queue_full_share"]


def test_the_transfers_packets_in_both_views(bottleneck):
    table = lab.transfer_packets(bottleneck, "cubic", frames=(130, 136))
    assert list(table.client) == [130, 131, 132, 133, 134, 135, 136]
    assert list(table.server.isna()) == [False, False, False, True, True, False, False]  # 133, 134: dropped
    ack = table.iloc[0]
    assert (ack.who, ack.ack, ack.sack, ack.state) == ("server → client", 62265, "66609-68057", "Open")
    resend = table.iloc[-1]
    assert (resend.seq, resend.marks, resend.state) == (62265, "[TCP Out-Of-Order]", "Disorder")
    assert lab.bulk_connection(bottleneck, "cubic") == 0
    assert lab.marked_frames(bottleneck, "cubic", "duplicate_ack")[:2] == [135, 137]


def test_a_reference_story_was_played_with_the_defaults(bottleneck, capsys):
    asked = lab.reference_story("bottleneck", {"buffer_bytes": 8000})
    assert lab.used_parameters(asked)["buffer_bytes"] == 30_000  # the reference's, not the one asked for
    assert lab.used_parameters(bottleneck)["rate"] == "4mbit"
    played = lab.StoryRun("bottleneck", "live", bottleneck.outcome, {"buffer_bytes": 8000})
    assert lab.used_parameters(played)["buffer_bytes"] == 8000


def test_the_figures_draw_every_run(bottleneck, limits):
    fig = lab.algorithms_figure(bottleneck)
    assert fig.tcpchatx["runs"] == ["cubic", "reno", "bbr"]
    gids = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    assert {"cwnd:cubic", "cwnd:bbr", "queue:reno"} <= gids
    fig = lab.limits_figure(limits)
    assert fig.tcpchatx["runs"] == ["rwnd", "app", "cwnd"] and len(fig.axes) == 3


# --------------------------------------------------------------------------- the reference limits story


def test_what_limited_each_transfer(limits):
    held = lab.what_limited(limits)
    assert list(held.index) == ["rwnd", "app", "cwnd"] and list(held.limited_by) == ["rwnd", "app", "cwnd"]
    shares = held[["cwnd_share", "rwnd_share", "sndbuf_share"]].sum(axis=1)
    assert shares.tolist() == pytest.approx([1, 1, 1], abs=0.011)  # shares of the busy time
    rwnd, app, cwnd = (held.loc[name] for name in ("rwnd", "app", "cwnd"))
    assert rwnd.in_flight_bytes >= 0.8 * rwnd.rwnd_bytes and rwnd.cwnd_bytes > 2 * rwnd.rwnd_bytes
    assert rwnd.rwnd_bytes < 16_384 and rwnd.rwnd_share == pytest.approx(0.49, abs=0.01)
    assert app.app_limited_samples == 1.0 and app.in_flight_bytes < app.cwnd_bytes / 2
    assert cwnd.cwnd_share == 1.0 and cwnd.dropped == 24 and cwnd.rwnd_bytes > cwnd.cwnd_bytes
    assert lab.marked_frames(limits, "rwnd", "window_full") == [8]


def test_the_app_run_sends_a_segment_every_20_ms(limits):
    table = lab.transfer_packets(limits, "app")
    data = table[(table.who == "client → server") & (table.len > 0)]
    gaps = data.ms.diff().dropna()
    assert gaps.median() == pytest.approx(20, abs=1.5) and (data.in_flight <= 3 * 1448).all()


def test_a_part_defaults_to_the_first(bottleneck):
    assert congestion._part(bottleneck, None) == "cubic"
    assert lab.round_trips(bottleneck)["min_rtt_ms"] == pytest.approx(20.3, abs=0.1)
