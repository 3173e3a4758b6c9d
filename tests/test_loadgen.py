"""The fan-out load generator at a tiny load: it counts right, against both servers.

No timing is asserted here; the figures live in ``benchmarks/fanout.py``.
"""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.fanout import OURS, SEED, Server
from benchmarks.loadgen import STAMP_BYTES, Load, _Client, _count, _merge, stamp


@pytest.fixture(scope="module")
def ours():
    server = Server(OURS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seed():
    server = Server(SEED)
    yield server
    server.stop()


def test_a_fixed_rate_load_on_our_server_arrives_whole_and_once(ours):
    report = ours.load(Load(clients=6, senders=2, messages=25, rate=250))
    assert report.welcomed == 6
    assert report.sent == 50
    assert report.expected == 50 * 5  # every message to the five other clients
    assert (report.deliveries, report.lost, report.duplicated) == (250, 0, 0)
    assert len(report.latencies_ns) == 250
    assert report.disconnected == 0


def test_flat_out_on_our_server_counts_every_delivery(ours):
    report = ours.load(Load(clients=5, senders=3, messages=40))
    assert report.expected == 3 * 40 * 4
    assert (report.deliveries, report.lost, report.duplicated) == (report.expected, 0, 0)


def test_the_seed_server_speaks_its_own_handshake_and_is_counted_the_same_way(seed):
    report = seed.load(Load(clients=6, senders=2, messages=25, rate=250, dialect="seed"))
    assert report.welcomed == 6
    assert (report.expected, report.deliveries, report.lost, report.duplicated) == (250, 250, 0, 0)
    assert report.echoes == 2 * 25  # the seed sends each message back to its sender: not a delivery
    assert report.server_cpu_s is not None and report.server_cpu_s >= 0
    assert report.bottleneck.startswith(("server (", "generator ("))


def test_a_stalled_client_is_not_a_receiver_and_the_others_lose_nothing(ours):
    report = ours.load(Load(clients=4, senders=2, messages=20, rate=200, stalled=1))
    assert report.welcomed == 5  # the stalled one chose a nickname too
    assert report.expected == 2 * 20 * 3  # ...but nobody expects it to receive
    assert (report.deliveries, report.lost) == (report.expected, 0)


def test_a_senders_own_stamps_are_echoes_not_deliveries():
    client = _Client(3, Load(clients=4, senders=4))
    client.chunks = [(5_000, b"c3: " + stamp(3, 0, 1_000) + b" hi\nc1: " + stamp(1, 0, 2_000) + b" hi\n")]
    result = _count([client])
    assert (result["deliveries"], result["echoes"]) == (1, 1)
    assert result["got"][3] == {1: 1}


def test_stamps_are_found_across_recv_boundaries_without_framing():
    """Bytes as an unframed relay may deliver them: cut anywhere, several per chunk."""
    first, second, third = stamp(1, 0, 1_000), stamp(1, 1, 2_000), stamp(2, 0, 3_000)
    stream = b"junk " + first + b" hi\n" + second + b" hi\n" + third + b" hi\n" + first + b"\n"
    cut1, cut2 = 5 + STAMP_BYTES // 2, len(stream) - 10
    client = _Client(0, Load(clients=1, senders=0))
    client.chunks = [(10_000, stream[:cut1]), (20_000, stream[cut1:cut2]), (30_000, stream[cut2:])]
    result = _count([client])
    assert result["deliveries"] == 4
    assert result["duplicated"] == 1  # the first stamp came twice
    assert result["got"][0] == {1: 2, 2: 1}
    latencies = sorted(memoryview(result["latencies"]).cast("q").tolist())
    assert latencies == [20_000 - 3_000, 20_000 - 2_000, 20_000 - 1_000]


def test_a_message_one_receiver_missed_is_lost_once():
    load = Load(clients=3, senders=1, messages=5)
    worker = {"sent": {0: 5}, "got": {0: Counter(), 1: Counter({0: 5}), 2: Counter({0: 4})},
              "latencies": b"", "lags": b"", "duplicated": 0, "deliveries": 9,
              "stalled_dropped": 0, "disconnected": 0, "first_send_ns": 1, "last_delivery_ns": 2}
    report = _merge(load, [{"welcomed": 3, "failures": Counter()}], [worker])
    assert (report.expected, report.lost) == (10, 1)  # the sender does not hear itself


def test_the_benchmark_command_finds_every_benchmark_and_no_helper():
    """``python -m benchmarks.run`` runs each module with ``run(quick)``; the load
    generator and the seed server are helpers (running them as benchmarks crashed)."""
    from benchmarks.run import benchmark_modules

    assert benchmark_modules() == ["annotate", "capture", "fanout", "netlab", "notebooks"]


def test_at_a_fixed_rate_the_senders_get_a_process_of_their_own():
    """A worker that also reads for many receivers comes round to its senders late, and
    their stamps (due times) would count that as the server's latency."""
    from benchmarks.loadgen import _assign

    assert _assign(Load(clients=10, senders=2, rate=100.0, processes=3)) == [[0, 1], [2, 4, 6, 8], [3, 5, 7, 9]]
    assert _assign(Load(clients=6, senders=2, rate=None, processes=3)) == [[0, 3], [1, 4], [2, 5]]  # flat out
    assert _assign(Load(clients=4, senders=1, rate=50.0, processes=2, stalled=1)) == [[0], [1, 2, 3, 4]]
