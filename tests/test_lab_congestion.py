"""tcpchatx.lab.congestion: the congestion notebook's facts, from the rules on plain samples
and from the bottleneck and limits stories' reference captures (captures/lab/).

Nothing read from a capture is pinned to one recording: frame numbers, sequence
numbers and times are asked of tshark on the same capture, the kernel's numbers
(cwnd, ssthresh, states) of the story's record, so that the tests still hold when
``tcpchatx references --lab`` plays the stories again.  What stays literal is what
each story is made to show (said so where it is)."""

from __future__ import annotations

from collections import Counter
from functools import cache
from types import SimpleNamespace

import pytest
from lab_tshark import marks, sack_blocks, tshark_packets

from tcpchatx import lab
from tcpchatx.lab import congestion
from tcpchatx.lab.congestion import (
    BETAS,
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


# --------------------------------------------------------------------------- tshark, the oracle

#: What the tests read of each packet, and the tshark field it is read from.
FIELDS = {
    "frame": "frame.number", "at": "frame.time_epoch", "frame_len": "frame.len", "ip_id": "ip.id",
    "stream": "tcp.stream", "sport": "tcp.srcport", "syn": "tcp.flags.syn", "seq": "tcp.seq", "ack": "tcp.ack",
    "len": "tcp.len", "nxtseq": "tcp.nxtseq", "sack_le": "tcp.options.sack_le", "sack_re": "tcp.options.sack_re",
    "duplicate_ack": "tcp.analysis.duplicate_ack", "window_full": "tcp.analysis.window_full",
    "ack_rtt": "tcp.analysis.ack_rtt", "info": "_ws.col.Info",
}
FLAGS = {"syn", "duplicate_ack", "window_full"}
TEXTS = {"ip_id", "sack_le", "sack_re", "info"}


@cache
def tshark(path) -> tuple[SimpleNamespace, ...]:
    """Every TCP packet of ``path`` as tshark dissects it: ``FIELDS`` (:mod:`lab_tshark`)."""
    return tshark_packets(path, FIELDS, FLAGS, TEXTS, {"at", "ack_rtt"})


def transfer(story, part: str) -> SimpleNamespace:
    """A run's transfer as tshark saw it in both views: the connection that carried the
    most bytes; in the client's view its ``packets``, the client's ``data`` segments and
    the server's ``acks``; ``arrived`` (client frame -> server frame, None: never seen
    there, matched by IP ID and sequence number, which the router leaves alone); the
    ``lost`` data segments, the ``resends`` (bytes below the highest sent), and the ``transit`` from the client's view to the server's (the least it took)."""
    views = story.views(part)
    return _transfer(views["client"], views["server"])


@cache
def _transfer(client_view, server_view) -> SimpleNamespace:
    client = tshark(client_view)
    carried = Counter()
    for p in client:
        carried[p.stream, p.sport] += p.len
    (stream, port), _ = carried.most_common(1)[0]
    packets = [p for p in client if p.stream == stream]
    seen = {(p.ip_id, p.sport, p.seq): p.frame for p in tshark(server_view)}
    arrived = {p.frame: seen.get((p.ip_id, p.sport, p.seq)) for p in packets}
    data = [p for p in packets if p.sport == port and p.len]
    resends, highest = [], 0
    for p in data:
        if p.seq < highest:
            resends.append(p)
        highest = max(highest, p.nxtseq)
    return SimpleNamespace(stream=stream, port=port, packets=packets, data=data, resends=resends,
                           acks=[p for p in packets if p.sport != port], arrived=arrived,
                           lost=[p for p in data if arrived[p.frame] is None],
                           transit=min(_at(server_view, arrived[p.frame]) - p.at for p in packets
                                       if p.sport == port and arrived[p.frame] is not None))


def _at(path, frame: int) -> float:
    return next(p.at for p in tshark(path) if p.frame == frame)


def resends_of(t: SimpleNamespace, lost) -> list:
    """The later segments that carried a lost segment's bytes again."""
    return [p for p in t.resends if p.frame > lost.frame and p.seq < lost.nxtseq and lost.seq < p.nxtseq]


def sender(story, part: str) -> list[dict]:
    """The sender's TCP_INFO samples in the run's record, in time order."""
    return [s for s in story.part(part)["tcp_info"] if s["name"] == "sender"]


def kernel_at(samples: list[dict], epoch: float) -> dict:
    """The sender's last TCP_INFO sample at or before a moment (or its first)."""
    return ([s for s in samples if s["time"] <= epoch] or samples)[-1]


def not_open(samples: list[dict]) -> list[list[dict]]:
    """The record's runs of samples in which the kernel's congestion state was not Open,
    each with the sample before it and the first Open one after (where there is one)."""
    runs, k = [], 0
    while k < len(samples):
        if samples[k]["ca_state_name"] == "Open":
            k += 1
            continue
        start = k
        while k < len(samples) and samples[k]["ca_state_name"] != "Open":
            k += 1
        runs.append(samples[max(start - 1, 0):k + 1])
    return runs


def first_loss_in(samples: list[dict]) -> tuple[dict, dict]:
    """The record's first sample in Recovery or Loss, and the one before it."""
    k = next(k for k, s in enumerate(samples) if s["ca_state_name"] in ("Recovery", "Loss"))
    return samples[k], samples[k - 1]


# --------------------------------------------------------------------------- the reference bottleneck story


@pytest.fixture(scope="module")
def bottleneck():
    return lab.reference_story("bottleneck")


@pytest.fixture(scope="module")
def limits():
    return lab.reference_story("limits")


def test_slow_start_doubles_each_round_until_the_first_sack(bottleneck):
    """Slow start's rounds from tshark's packets: each the segments sent until the first
    of them is acknowledged, up to the first SACK.  The first is the kernel's initial
    window; each complete round at most doubles the one before; the first takes one
    round trip of the empty path (tshark's ``ack_rtt``)."""
    t = transfer(bottleneck, "cubic")
    stop = next(p.at for p in t.acks if p.sack_le)
    fresh = [p for p in t.data if p.at < stop]
    expected, ms, k = [], [], 0
    while k < len(fresh):
        first = fresh[k]
        acked = next((p for p in t.acks if p.at > first.at and p.ack >= first.nxtseq), None)
        until = acked.at if acked else float("inf")
        members = [p for p in fresh[k:] if p.at < until]
        expected.append((first.frame, members[-1].frame, len(members), until < stop))
        ms.append((min(until, stop) - first.at) * 1000)
        k += len(members)

    rounds = lab.slow_start_rounds(bottleneck, "cubic")
    assert list(zip(rounds["first"], rounds["last"], rounds.segments, rounds.complete)) == expected
    assert list(rounds.ms) == pytest.approx(ms, abs=0.001)
    assert rounds.segments.iloc[0] == sender(bottleneck, "cubic")[0]["snd_cwnd"]  # the initial window, before any ACK
    complete = list(rounds.segments[rounds.complete])
    assert all(later <= 2 * earlier for earlier, later in zip(complete, complete[1:])) and len(complete) >= 2
    first_ack = next(p for p in t.acks if p.ack >= fresh[0].nxtseq)
    assert rounds.ms.iloc[0] == pytest.approx(first_ack.ack_rtt * 1000, abs=0.001)
    assert rounds.ms.iloc[0] >= 2 * lab.used_parameters(bottleneck)["delay_ms"]  # the story's delay, each way
    assert rounds.ms[rounds.complete].max() > 2 * rounds.ms.iloc[0]  # design: the queue filled before the first loss


def test_where_cubic_and_reno_left_slow_start(bottleneck):
    """Where slow start ended, in the record (cwnd, ssthresh, state) and in tshark's
    packets (the first drop, the first SACK and duplicate ACK, the first resend)."""
    t = transfer(bottleneck, "cubic")
    samples = sender(bottleneck, "cubic")
    growth = []
    for s in samples:
        if s["ca_state_name"] != "Open" or s["snd_ssthresh"] < UNSET:
            break
        growth.append(s)
    loss, before_loss = first_loss_in(samples)
    before_any_loss = samples[:samples.index(loss)]
    hystart = next((s["snd_ssthresh"] for s in before_any_loss
                    if s["ca_state_name"] == "Open" and s["snd_ssthresh"] < UNSET), None)
    drop = t.lost[0]
    sack = next(p for p in t.acks if p.sack_le and p.at > drop.at)
    dup = next(p for p in t.acks if p.duplicate_ack and p.at > drop.at)
    resend = resends_of(t, drop)[0]

    cubic = lab.slow_start(bottleneck, "cubic")
    assert (cubic.initial_cwnd, cubic.last_cwnd, cubic.last_delivered) == (
        samples[0]["snd_cwnd"], growth[-1]["snd_cwnd"], growth[-1]["delivered"])
    # RFC 5681 slow start: one segment more for each delivered (the SYN counts one).
    assert cubic.grew_by_delivered and cubic.last_cwnd == cubic.initial_cwnd + cubic.last_delivered - 1
    assert cubic.early_ssthresh == hystart  # set while Open, before any loss: cubic's HyStart (or None)
    assert (cubic.first_drop, cubic.first_drop_seq) == (drop.frame, drop.seq)
    assert cubic.cwnd_at_drop == kernel_at(samples, drop.at)["snd_cwnd"]
    assert (cubic.first_sack, cubic.first_sack_blocks, cubic.first_dup_ack) == (sack.frame, sack_blocks(sack),
                                                                               dup.frame)
    assert sack.ack == drop.seq  # the first sign of the hole asks for the dropped bytes
    assert cubic.first_resend == resend.frame
    assert cubic.dup_acks_before_resend == sum(1 for p in t.acks if p.duplicate_ack and drop.at < p.at < resend.at)
    assert (cubic.cwnd_at_loss, cubic.ssthresh_at_loss) == (before_loss["snd_cwnd"], loss["snd_ssthresh"])
    before = before_loss["snd_ssthresh"]
    assert cubic.ssthresh_before_loss == (None if before == UNSET else before)
    assert cubic.loss_set_ssthresh and cubic.ssthresh_at_loss == int(cubic.beta * cubic.cwnd_at_loss)
    reno = lab.slow_start(bottleneck, "reno")
    loss, before_loss = first_loss_in(sender(bottleneck, "reno"))
    assert (reno.cwnd_at_loss, reno.ssthresh_at_loss) == (before_loss["snd_cwnd"], loss["snd_ssthresh"])
    assert reno.beta == 0.5 and reno.ssthresh_at_loss == reno.cwnd_at_loss // 2  # reno halves (RFC 5681 (4))


def test_bbrs_loss_sets_no_threshold(bottleneck):
    bbr = lab.slow_start(bottleneck, "bbr")
    assert bbr.beta is None and not bbr.grew_by_delivered  # its startup is not RFC 5681's slow start
    # Where it first grew otherwise: every slow-start sample before followed initial + delivered - 1.
    off, growth = bbr.first_off, slow_start_samples(sender(bottleneck, "bbr"))
    k = next(k for k, s in enumerate(growth) if s["snd_cwnd"] != bbr.initial_cwnd + s["delivered"] - 1)
    assert (off["cwnd"], off["delivered"], off["unacked"], off["notsent_bytes"]) == (
        growth[k]["snd_cwnd"], growth[k]["delivered"], growth[k]["unacked"], growth[k]["notsent_bytes"])
    assert bbr.loss_ms is not None and not bbr.loss_set_ssthresh and bbr.ssthresh_at_loss is None


def test_tail_drops_are_the_segments_the_server_never_saw(bottleneck):
    """The drops are the client's data segments the server's view lacks (tshark, both
    views), as many as the router refused; each was resent until a copy arrived."""
    t = transfer(bottleneck, "cubic")
    run = bottleneck.part("cubic")
    drops = lab.tail_drops(bottleneck, "cubic")
    assert len(drops) == len(t.lost) == run["dropped"] == lab.router_refused(run) > 0
    assert list(drops.frame) == [p.frame for p in t.lost]
    assert list(zip(drops.seq, drops.end)) == [(p.seq, p.nxtseq) for p in t.lost]
    assert list(drops.resent) == [tuple(q.frame for q in resends_of(t, p)) for p in t.lost]
    assert list(drops.arrived) == [next(t.arrived[q.frame] for q in resends_of(t, p) if t.arrived[q.frame])
                                   for p in t.lost]
    assert drops.episode.iloc[0] == 1  # the first drop is repaired in the first recovery
    first, buffer = t.lost[0], lab.used_parameters(bottleneck)["buffer_bytes"]
    queue = run["queue"]
    gaps = sorted(b["time"] - a["time"] for a, b in zip(queue, queue[1:]))
    near = [q["backlog_bytes"] for q in queue if abs(q["time"] - (first.at + t.transit)) <= gaps[len(gaps) // 2]]
    assert drops.queue_bytes.iloc[0] == max(near)  # the router's queue when the segment got there
    assert buffer / 2 < drops.queue_bytes.iloc[0] <= buffer  # well filled: the router dropped at its limit
    twice = drops[drops.resent.map(len) > 1]
    for resent in twice.resent:  # a segment sent more than twice: all but its last copy dropped too
        assert set(resent[:-1]) <= set(drops.frame) and t.arrived[resent[-1]] is not None
    assert drops.arrived.notna().all()


def test_recovery_episodes_count_the_resends_and_what_they_repaired(bottleneck):
    """One row per run of not-Open samples in the record; every resend tshark's packets
    show and every drop repaired are counted once."""
    t = transfer(bottleneck, "cubic")
    samples = sender(bottleneck, "cubic")
    runs = not_open(samples)
    table = lab.recoveries(bottleneck, "cubic")
    episodes = table[table.episode.notna()]  # a last row "(Open)" counts resends outside them (a tail-loss probe)
    assert list(episodes.episode) == list(range(1, len(runs) + 1))
    assert list(episodes.states) == [" → ".join(dict.fromkeys(s["ca_state_name"] for s in run[1:]
                                                               if s["ca_state_name"] != "Open")) for run in runs]
    assert list(episodes.cwnd_before) == [run[0]["snd_cwnd"] for run in runs]
    assert list(episodes.ssthresh) == [run[-1]["snd_ssthresh"] for run in runs]
    assert table.resent.sum() == len(t.resends) == samples[-1]["total_retrans"]
    assert table.repaired.sum() == len(t.lost) and (table.repaired <= table.resent).all()
    assert table.first_resend.iloc[0] == t.resends[0].frame
    start, end = runs[0][0]["time"], runs[0][-1]["time"]
    assert episodes.dup_acks.iloc[0] == sum(1 for p in t.acks if p.duplicate_ack and start <= p.at <= end)
    assert episodes.sack_acks.iloc[0] > episodes.dup_acks.iloc[0]  # Wireshark wants the window unchanged too


def test_the_algorithms_side_by_side(bottleneck):
    """Each run's row, from its record and tshark's packets."""
    table = lab.compare_algorithms(bottleneck)
    assert list(table.index) == ["cubic", "reno", "bbr"]
    buffer = lab.used_parameters(bottleneck)["buffer_bytes"]
    for part in table.index:
        run, row, samples = bottleneck.part(part), table.loc[part], sender(bottleneck, part)
        assert row.dropped == run["dropped"] == len(transfer(bottleneck, part).lost)
        assert row.max_cwnd == run["max_cwnd"] == max(s["snd_cwnd"] for s in samples)
        assert row.episodes == len(not_open(samples))
        backlog = [q["backlog_bytes"] for q in run["queue"]]
        assert row.queue_max_bytes == max(backlog) <= buffer  # never more than the queue's limit
        assert row.queue_full_share == pytest.approx(sum(b >= 0.9 * buffer for b in backlog) / len(backlog), abs=5e-4)
        assert row.goodput_mbit_s > 0.95 * lab.bits_per_second(lab.used_parameters(bottleneck)["rate"]) / 1e6
        if part in BETAS:  # a loss-based algorithm sets ssthresh to β × cwnd at its first loss
            loss, before = first_loss_in(samples)
            assert row.ssthresh_at_loss == loss["snd_ssthresh"] == int(BETAS[part] * before["snd_cwnd"])
    assert table.ssthresh_at_loss.isna()["bbr"]


def test_the_transfers_packets_in_both_views(bottleneck):
    """From the first SACK to the first resend: tshark's packets, which of them the
    server's view has, the SACK blocks and marks tshark shows, and the kernel's state."""
    t = transfer(bottleneck, "cubic")
    samples = sender(bottleneck, "cubic")
    drop = t.lost[0]
    sack = next(p for p in t.acks if p.sack_le and p.at > drop.at)
    resend = resends_of(t, drop)[0]
    shown = [p for p in t.packets if sack.frame <= p.frame <= resend.frame]
    table = lab.transfer_packets(bottleneck, "cubic", frames=(sack.frame, resend.frame))
    assert list(table.client) == [p.frame for p in shown]
    assert list(table.server.isna()) == [t.arrived[p.frame] is None for p in shown]
    assert table.server.isna().any()  # a drop among them
    first, last = table.iloc[0], table.iloc[-1]
    assert (first.who, first.ack, first.sack) == ("server → client", drop.seq, sack_blocks(sack))
    assert first.state == kernel_at(samples, sack.at)["ca_state_name"]
    assert (last.seq, last.marks) == (drop.seq, marks(resend.info))
    assert last.state == kernel_at(samples, resend.at)["ca_state_name"]
    assert lab.bulk_connection(bottleneck, "cubic") == t.stream
    assert lab.marked_frames(bottleneck, "cubic", "duplicate_ack") == [p.frame for p in t.packets if p.duplicate_ack]


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
    """The kernel's own account (its last TCP_INFO sample: busy time, and within it the
    time stalled on the window or the send buffer), and what each run was made to show."""
    held = lab.what_limited(limits)
    assert list(held.index) == ["rwnd", "app", "cwnd"] and list(held.limited_by) == ["rwnd", "app", "cwnd"]
    shares = held[["cwnd_share", "rwnd_share", "sndbuf_share"]].sum(axis=1)
    assert shares.tolist() == pytest.approx([1, 1, 1], abs=0.011)  # shares of the busy time
    for part in held.index:
        last = sender(limits, part)[-1]
        assert held.loc[part, "rwnd_share"] == pytest.approx(last["rwnd_limited"] / last["busy_time"], abs=0.005)
        assert held.loc[part, "dropped"] == len(transfer(limits, part).lost)
    rwnd, app, cwnd = (held.loc[name] for name in ("rwnd", "app", "cwnd"))
    # Each run's design: the story checks its verdict, and these follow from it.
    assert rwnd.in_flight_bytes >= 0.8 * rwnd.rwnd_bytes and rwnd.cwnd_bytes > 2 * rwnd.rwnd_bytes
    assert rwnd.rwnd_bytes < lab.used_parameters(limits)["receive_buffer"]
    assert rwnd.rwnd_share > max(app.rwnd_share, cwnd.rwnd_share)  # the run that waited on the window
    app_flags = [s["flags"] & 1 for s in sender(limits, "app")]  # TCP_INFO's app-limited bit
    assert app.app_limited_samples == pytest.approx(sum(app_flags) / len(app_flags), abs=0.005)
    assert app.app_limited_samples > 0.5
    assert app.in_flight_bytes < app.cwnd_bytes / 2
    assert cwnd.cwnd_share == 1.0 and cwnd.dropped > 0 and cwnd.rwnd_bytes > cwnd.cwnd_bytes
    tx = transfer(limits, "rwnd")
    assert lab.marked_frames(limits, "rwnd", "window_full") == [p.frame for p in tx.packets if p.window_full]


def test_the_app_run_sends_a_segment_every_20_ms(limits):
    table = lab.transfer_packets(limits, "app")
    data = table[(table.who == "client → server") & (table.len > 0)]
    gaps = data.ms.diff().dropna()
    assert gaps.median() == pytest.approx(20, abs=1.5) and (data.in_flight <= 3 * 1448).all()


def test_a_part_defaults_to_the_first(bottleneck):
    """The first run is the default; its least round trip is the kernel's, which agrees
    with the least tshark times from a segment to its ACK."""
    assert congestion._part(bottleneck, None) == "cubic"
    kernel = min(s["min_rtt"] for s in sender(bottleneck, "cubic") if s["min_rtt"]) * 1000
    assert lab.round_trips(bottleneck)["min_rtt_ms"] == pytest.approx(kernel, abs=1e-9)
    t = transfer(bottleneck, "cubic")
    assert kernel == pytest.approx(min(p.ack_rtt for p in t.acks if p.ack_rtt) * 1000, abs=1.0)
