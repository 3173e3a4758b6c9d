"""Stories on the lab network: each one's event happens, and tshark sees it as we do.

Run as root (this process) and as the unprivileged user ``nobody``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_capture_rootless import as_nobody
from test_netlab import run_in_lab_as_nobody
from test_tcp_expert import assert_agrees_with_tshark

from tcpchatx.analysis import analyze
from tcpchatx.analysis.expert import analyse
from tcpchatx.capture import rootless_available
from tcpchatx.netlab import run_in_lab

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not rootless_available()[0] or shutil.which("nft") is None,
                                reason="needs unprivileged user namespaces and nft")


def retransmissions(path) -> list[tuple[float, int]]:
    """(time, frame) of every segment the expert analysis calls a retransmission."""
    a = analyze(path)
    expert = analyse(a.packets, a.tracking)
    return [(float(a.packets.seconds(i)), int(a.packets.frame[i])) for i in range(len(a.packets))
            if "retransmission" in expert.names(i)]


def assert_the_line_timed_out_once(outcome: dict) -> None:
    client_view, server_view = (Path(outcome["views"][name]) for name in ("client", "server"))
    assert_agrees_with_tshark(client_view)
    assert_agrees_with_tshark(server_view)
    ((resent_at, frame),) = retransmissions(client_view)  # alice's kernel resent one segment
    a = analyze(client_view)
    payload = a.packets.payload(frame - 1)
    assert payload == (outcome["line"] + "\n").encode()
    first = next(i for i in range(frame - 1) if a.packets.payload(i) == payload)
    assert resent_at - float(a.packets.seconds(first)) >= 0.2  # Linux's smallest RTO
    assert retransmissions(server_view) == []  # the server never saw the first copy
    samples = outcome["tcp_info"]
    assert samples[-1]["total_retrans"] == 1 and samples[-1]["rto"] >= 0.2


def test_rto(shared_dir):
    assert_the_line_timed_out_once(run_in_lab("tcpchatx.netlab.stories:rto", {"out_dir": str(shared_dir)}))


@as_nobody
def test_rto_as_nobody(shared_dir):
    assert_the_line_timed_out_once(
        run_in_lab_as_nobody("tcpchatx.netlab.stories:rto", {"out_dir": str(shared_dir)}, shared_dir))


def test_backoff(shared_dir):
    """While the path is broken, each resend of alice's line waits about twice as long
    as the one before; the first after the path is back gets through."""
    outcome = run_in_lab("tcpchatx.netlab.stories:backoff", {"out_dir": str(shared_dir)})
    client_view, server_view = (Path(outcome["views"][name]) for name in ("client", "server"))
    assert_agrees_with_tshark(client_view)
    assert_agrees_with_tshark(server_view)
    a = analyze(client_view)
    line = (outcome["line"] + "\n").encode()
    sent = [float(a.packets.seconds(i)) for i in range(len(a.packets)) if a.packets.payload(i) == line]
    assert len(sent) >= 4, sent  # the first copy and at least three resends
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert gaps[0] >= 0.2  # Linux's smallest RTO
    assert all(1.5 <= later / earlier <= 2.5 for earlier, later in zip(gaps, gaps[1:])), gaps
    b = analyze(server_view)
    assert sum(b.packets.payload(i) == line for i in range(len(b.packets))) == 1  # only the one that got through


def test_zero_window(shared_dir):
    """alice stops reading: her window closes, the server's kernel probes it ever more
    slowly (tshark calls Linux's probes Keep-Alives: they carry no byte), and the
    server finally cuts her off as too slow."""
    outcome = run_in_lab("tcpchatx.netlab.stories:zero_window", {"out_dir": str(shared_dir)})
    assert "too slow" in outcome["notice"]
    client_view, server_view = (Path(outcome["views"][name]) for name in ("client", "server"))
    assert_agrees_with_tshark(client_view)
    seen = assert_agrees_with_tshark(server_view)
    assert seen.get("zero_window", 0) >= 2 and seen.get("window_full"), seen
    a = analyze(server_view)
    expert = analyse(a.packets, a.tracking)
    probes = [float(a.packets.seconds(i)) for i in range(len(a.packets)) if "keep_alive" in expert.names(i)]
    assert len(probes) >= 3, probes
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:])]
    assert all(later >= 1.5 * earlier for earlier, later in zip(gaps, gaps[1:])), gaps  # backing off
