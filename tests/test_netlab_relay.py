"""The relay: the lab's router in user space, following a script, with real TCP across it.

Run as root (this process) and, for real, as the unprivileged user ``nobody``.
"""

from __future__ import annotations

import subprocess

import pytest
from test_capture_rootless import as_nobody
from test_netlab import assert_chat_crossed_the_router, run_in_lab_as_nobody

from tcpchatx.capture import rootless_available
from tcpchatx.netlab import run_in_lab
from tcpchatx.netlab.topology import CLIENT, SERVER

needs_namespaces = pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
TARGET = "tcpchatx.netlab.selftest:chat_through_router"
DELAY = {"to_server": {"delay_ms": 25}, "to_client": {"delay_ms": 25}}


def fields(path: str, *names: str, where: str = "") -> list[list[str]]:
    """tshark's view of a capture: one list of field values per packet."""
    out = subprocess.run(["tshark", "-r", path, "-Y", where or "tcp", "-T", "fields", *(f"-e{n}" for n in names)],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def handshake_rtt(path: str) -> float:
    """Seconds from the first SYN to its SYN-ACK, in this view."""
    syn = fields(path, "frame.time_relative", where="tcp.flags == 0x002")[0]
    synack = fields(path, "frame.time_relative", where="tcp.flags == 0x012")[0]
    return float(synack[0]) - float(syn[0])


def assert_relayed_with_delay(outcome: dict) -> None:
    assert_chat_crossed_the_router(outcome)
    relay = outcome["relay"]
    assert relay["engine"] == "relay"
    for direction in ("to_server", "to_client"):
        counts = relay["counts"][direction]
        assert counts["received"] > 10 and counts["lost"] == counts["broken"] == counts["queue_full"] == 0
    assert relay["socket_drops"] == 0
    # 25 ms each way: the SYN-ACK comes back at least 50 ms after the SYN
    assert handshake_rtt(outcome["views"]["client"]) >= 0.050
    # and in the server's view, the ACK that ends the handshake as long after the SYN-ACK
    # A router's packets have one hop less to live: 64 from the host, 63 past the router.
    ttls = {row[0]: row[1] for row in fields(outcome["views"]["server"], "ip.src", "ip.ttl")}
    assert ttls == {CLIENT.address: "63", SERVER.address: "64"}


@needs_namespaces
def test_a_chat_across_the_relay_with_delay(shared_dir):
    assert_relayed_with_delay(run_in_lab(TARGET, {"out_dir": str(shared_dir), "script": DELAY}))


@as_nobody
def test_a_chat_across_the_relay_as_nobody(shared_dir):
    assert_relayed_with_delay(run_in_lab_as_nobody(TARGET, {"out_dir": str(shared_dir), "script": DELAY}, shared_dir))


@needs_namespaces
def test_a_scripted_loss_is_lost_once_and_resent(shared_dir):
    script = {"to_server": {"events": [{"do": "drop", "text": "hello across the router"}]}}
    outcome = run_in_lab(TARGET, {"out_dir": str(shared_dir), "script": script})
    assert_chat_crossed_the_router(outcome, nothing_lost=False)  # bob heard it once all the same
    (dropped,) = outcome["relay"]["events"]["to_server"]
    assert dropped["event"] == "drop the segment carrying 'hello across the router'"
    sent = fields(outcome["views"]["client"], "tcp.analysis.retransmission", where="tcp.len == 24")
    arrived = fields(outcome["views"]["server"], "tcp.analysis.retransmission", where="tcp.len == 24")
    assert len(sent) == 2 and sent[1] == ["1"]  # the client sent it twice, the second a retransmission
    assert arrived == [[""]]  # the server saw it once, as if nothing happened


@needs_namespaces
def test_the_relay_carries_a_bulk_transfer_and_a_bottleneck_still_drops(shared_dir):
    outcome = run_in_lab("tcpchatx.netlab.selftest:bulk_through_bottleneck",
                         {"out_dir": str(shared_dir), "size": 300_000, "script": {}})
    assert outcome["received"] == [300_000]
    counts = outcome["relay"]["counts"]["to_server"]
    assert counts["queue_full"] > 0 and counts["queue_full"] == outcome["dropped"]  # tbf's tail drops
    assert counts["forwarded"] + counts["queue_full"] == counts["received"]


@needs_namespaces
def test_heavy_loss_loses_no_line_and_warns_nobody_with_flood_control_on():
    """12 clients x 20 lines over 10% loss and 200 ms each way, flood control on (the
    default room): every copy arrives once, in each sender's order, and nobody is cut
    off or told to slow down, though stalls hand the server lines bunched
    (``benchmarks.run netlab`` runs 50 x 100, over this path and over 2% and 100 ms)."""
    outcome = run_in_lab("tcpchatx.netlab.reliability:chat_over_a_bad_network",
                         {"clients": 12, "messages": 20, "loss": 0.10, "delay_ms": 200}, timeout=300)
    assert outcome["problems"] == {}
    assert outcome["delivered"] == outcome["expected"] == 12 * 11 * 20
    assert sum(counts["lost"] for counts in outcome["relay_counts"].values()) > 0


def test_the_verdict_names_what_went_wrong():
    from tcpchatx.netlab.reliability import Receiver, verdict

    fine, short, twice = Receiver(0), Receiver(1), Receiver(2)
    fine.got = [(1, 0), (2, 0), (1, 1), (2, 1)]
    short.got = [(0, 0), (0, 1), (2, 1)]
    twice.got = [(0, 1), (0, 0), (0, 1), (1, 0), (1, 1)]
    twice.notices = ["c1 left (too slow)"]
    twice.errors = ["Slow down: at most 5 lines per second (bursts of 10). Your lines are held and passed on at that pace."]
    found = verdict([fine, short, twice], clients=3, messages=2)["problems"]
    assert list(found) == ["c1", "c2"]
    assert found["c1"] == ["from c2: 1 missing, 0 twice, in order"]
    assert found["c2"][0] == "from c0: 0 missing, 1 twice, OUT OF order"
    assert "cut off" in found["c2"][1]
    assert "was told" in found["c2"][2]


def test_netem_commands_are_the_script_in_tc():
    from tcpchatx.netlab.netem import netem_commands

    script = {"to_server": {"delay_ms": 25, "jitter_ms": 5, "loss": 0.02}, "to_client": {"delay_ms": 25}}
    assert [" ".join(c) for c in netem_commands(script)] == [
        "tc qdisc add dev s0 root netem delay 25ms 5ms loss 2%",
        "tc qdisc add dev c0 root netem delay 25ms"]


@needs_namespaces
@pytest.mark.parametrize(("script", "engine", "expect"), [
    ({"to_server": {"delay_ms": 25}}, "relay", {"engine": "relay"}),
    ({"to_server": {"events": [{"do": "drop", "data_segment": 1}]}}, "auto", {"engine": "relay"}),
    ({"to_server": {"events": [{"do": "drop", "data_segment": 1}]}}, "netem", {"error": "netem cannot pick"}),
])
def test_the_lab_says_which_engine_a_script_gets(script, engine, expect):
    outcome = run_in_lab("tcpchatx.netlab.selftest:which_engine", {"script": script, "engine": engine})
    for key, value in expect.items():
        assert value in outcome[key], outcome


@needs_namespaces
def test_where_the_kernel_has_no_netem_auto_takes_the_relay_and_netem_says_why():
    auto = run_in_lab("tcpchatx.netlab.selftest:which_engine", {"script": DELAY, "engine": "auto"})
    netem = run_in_lab("tcpchatx.netlab.selftest:which_engine", {"script": DELAY, "engine": "netem"})
    if auto["netem"]:  # a kernel with netem: auto takes it
        assert auto["engine"] == "netem" and netem["engine"] == "netem"
    else:  # this machine's kernel (no sch_netem)
        assert auto["engine"] == "relay" and "cannot add netem" in auto["why"]
        assert netem["error"].startswith("NetemUnavailableError: tc cannot add netem here")
