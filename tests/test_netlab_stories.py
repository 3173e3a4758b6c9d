"""Stories on the lab network: each one's event happens, and tshark sees it as we do.

Each story is played once, by :data:`PLAYER`: the unprivileged user ``nobody`` where
this machine can become nobody, else this process's own user.  The lab starts the same
way for root and for nobody (``unshare --user --map-root-user --net ...``), and as root
the notebooks' papermill tests (test_notebooks, test_notebook_07/08) play the stories
of notebooks 06-08 live too; rto and backoff are played here by both, the root play
shared with test_why.  (Playing every story as both cost a minute of the suite.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from test_capture_rootless import CAN_BECOME_NOBODY, as_nobody
from test_netlab import run_in_lab_as_nobody
from test_tcp_expert import assert_agrees_with_tshark

from tcpchatx.analysis import analyze
from tcpchatx.analysis.expert import analyse
from tcpchatx.capture import rootless_available
from tcpchatx.netlab import run_in_lab

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not rootless_available()[0] or shutil.which("nft") is None,
                                reason="needs unprivileged user namespaces and nft")
#: Who plays the stories that are played once ("self": this process).
PLAYER = "nobody" if CAN_BECOME_NOBODY else "self"
#: rto and backoff are played by both: this process's play is the one test_why reads too.
USERS = ["self", pytest.param("nobody", marks=as_nobody)]


def play(story: str, user: str, out_dir: Path, **kwargs) -> dict:
    """Run ``tcpchatx.netlab.stories:STORY`` in the lab, as *user* ("self" or "nobody");
    its outcome."""
    target, kwargs = f"tcpchatx.netlab.stories:{story}", {"out_dir": str(out_dir), **kwargs}
    outcome = run_in_lab(target, kwargs) if user == "self" else run_in_lab_as_nobody(target, kwargs, out_dir)
    assert_owned_by(outcome, user)
    return outcome


def play_or_share(story: str, user: str, out_dir: Path, story_as_root) -> dict:
    """:func:`play`, but as this process the session's one play of *story* (conftest's
    story_as_root: test_why.py reads the same rto and backoff plays)."""
    if user != "self":
        return play(story, user, out_dir)
    outcome = story_as_root(story)
    assert_owned_by(outcome, user)
    return outcome


def assert_owned_by(outcome: dict, user: str) -> None:
    owners = {Path(path).stat().st_uid for path in _views(outcome)}
    expected = os.geteuid() if user == "self" else pwd.getpwnam(user).pw_uid
    assert owners == {expected}, owners  # nobody's files are nobody's


def _views(outcome) -> list[str]:
    """Every capture path in a story's outcome, however deep."""
    if isinstance(outcome, dict):
        return [*outcome["views"].values()] if "views" in outcome else [
            path for value in outcome.values() for path in _views(value)]
    return []


def events(path) -> list[tuple[int, list[str], int]]:
    """(frame, expert events, payload length) of every packet, after checking that tshark
    names the same events on every packet."""
    assert_agrees_with_tshark(Path(path))
    a = analyze(path)
    expert = analyse(a.packets, a.tracking)
    return [(int(a.packets.frame[i]), expert.names(i), int(a.packets.payload_len[i])) for i in range(len(a.packets))]


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


@pytest.mark.parametrize("user", USERS)
def test_rto(shared_dir, user, story_as_root):
    assert_the_line_timed_out_once(play_or_share("rto", user, shared_dir, story_as_root))


@pytest.mark.parametrize("user", USERS)
def test_backoff(shared_dir, user, story_as_root):
    """While the path is broken, each resend of alice's line waits about twice as long
    as the one before; the first after the path is back gets through."""
    outcome = play_or_share("backoff", user, shared_dir, story_as_root)
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


@pytest.mark.parametrize("user", [PLAYER])
def test_zero_window(shared_dir, user):
    """alice stops reading: her window closes, the server's kernel probes it ever more
    slowly (tshark calls Linux's probes Keep-Alives: they carry no byte); she reads
    again (a window update), stops again, and the server finally cuts her off as too slow."""
    outcome = play("zero_window", user, shared_dir)
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
    # When alice reads again, her window opens: a window update, after the zero windows.
    seen = events(outcome["views"]["client"])
    updates = [frame for frame, names, _ in seen if "window_update" in names]
    assert outcome["window_update"] in updates and outcome["window_update"] > max(outcome["zero_windows"])
    assert max(sample["receive_queue"] for sample in outcome["tcp_info"]) > 1_000  # her queue filled


@pytest.mark.parametrize("user", [PLAYER])
def test_fast_retransmit(shared_dir, user):
    """One line of a burst is lost: duplicate ACKs, then a fast retransmission.  With
    SACK it resends the lost line alone; without, everything from the hole on."""
    outcome = play("fast_retransmit", user, shared_dir)
    resent = {}
    for run in ("sack", "no_sack"):
        told = outcome[run]
        seen = events(told["views"]["client"])
        fast = [(frame, length) for frame, names, length in seen if "fast_retransmission" in names]
        assert [frame for frame, _ in fast] == [told["fast_retransmission"]], run
        dup_acks = [frame for frame, names, _ in seen if "duplicate_ack" in names and frame < fast[0][0]]
        assert len(dup_acks) >= 2 and dup_acks == told["duplicate_acks"], run
        timeouts = [frame for frame, names, _ in seen if "retransmission" in names and "fast_retransmission" not in names]
        assert not timeouts, run  # (Wireshark marks a fast retransmission a retransmission too)
        (dropped,) = told["relay"]["events"]["to_server"]
        assert dropped["event"] == "drop data segment 3", run
        resent[run] = fast[0][1]
        events(told["views"]["server"])  # (what the server's view calls the resend depends on timing)
    line = len("line 3 of 10, all written at once\n")
    assert resent["sack"] == line  # the lost line alone
    assert resent["no_sack"] > 4 * line  # the lost line and the ones after it


def sack_blocks(path) -> int:
    """How many packets of a capture carry SACK blocks (tshark counts them)."""
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.options.sack_le", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


@pytest.mark.parametrize("user", [PLAYER])
def test_reorder(shared_dir, user):
    """A line held back arrives after the next one: out of order at the server, and
    nothing resent."""
    outcome = play("reorder", user, shared_dir)
    at_server = events(outcome["views"]["server"])
    late = [frame for frame, names, _ in at_server if "out_of_order" in names]
    assert late == outcome["out_of_order"] and len(late) == 1
    at_client = events(outcome["views"]["client"])
    assert not [frame for frame, names, _ in at_client + at_server if "retransmission" in " ".join(names)]
    # One ACK still asks for the late line's bytes, with a SACK block for the line
    # after it (a duplicate ACK, if the server had ACKed up to the hole already): not
    # enough to call a loss.
    assert sum("duplicate_ack" in names for _, names, _ in at_client) <= 1
    assert sack_blocks(outcome["views"]["client"]) == 1
    (held,) = outcome["relay"]["events"]["to_server"]
    assert held["event"] == "hold data segment 3 for 5 ms"


@pytest.mark.parametrize("user", [PLAYER])
def test_rtt(shared_dir, user):
    """The handshake takes one round trip; Nagle holds alice's later lines back until
    the first is acknowledged - a round trip, plus the server's delayed ACK."""
    outcome = play("rtt", user, shared_dir)
    assert list(outcome) == ["rtt-0ms", "rtt-50ms", "rtt-200ms"]
    for name, run in outcome.items():
        for view in run["views"].values():
            events(view)
        rtt = run["rtt_ms"]
        assert rtt <= run["handshake_ms"] < rtt + 20, name
        assert run["lines_per_segment"] == [1, 3], name  # the first alone, the held three together
        assert run["nagle_wait_ms"] >= rtt, name


@pytest.mark.parametrize("user", [PLAYER])
def test_bottleneck(shared_dir, user):
    """Slow start overflows the router's queue; the sender resends and sets its
    threshold.  cubic, reno and bbr each cross the same link."""
    outcome = play("bottleneck", user, shared_dir)
    assert list(outcome) == ["cubic", "reno", "bbr"]
    for algorithm, run in outcome.items():
        assert run["received"] == [600_000], algorithm
        # The frames the router could not queue are the client's frames the server's view
        # never saw: the relay's count, held to the captures.  (tbf's own drop counter may
        # count fewer than the relay's refused sends: at most as many.)
        refused = run["relay"]["counts"]["to_server"]["queue_full"]
        assert refused == never_arrived(run["views"]), algorithm
        assert 0 <= run["dropped"] <= refused, algorithm
        seen = assert_agrees_with_tshark(Path(run["views"]["client"]))
        if run["dropped"]:
            assert seen.get("duplicate_ack") and run["retransmitted"] > 0, algorithm
        assert_agrees_with_tshark(Path(run["views"]["server"]))
    cubic = outcome["cubic"]
    assert cubic["dropped"] > 0 and cubic["last_ssthresh"] < 2**31 - 1
    cwnd = [sample["snd_cwnd"] for sample in cubic["tcp_info"] if sample["name"] == "sender"]
    receiver = [sample["receive_queue"] for sample in cubic["tcp_info"] if sample["name"] == "receiver"]
    assert len(receiver) > 10  # the receiver's end is sampled too (its receive queue)
    assert max(cwnd) > 2 * cwnd[0]  # slow start grew it


def never_arrived(views: dict[str, str]) -> int:
    """The TCP frames the client's view has and the server's view never saw."""
    from tcpchatx.analysis.views import pair_views

    pairing = pair_views(views["client"], views["server"])
    return sum(1 for pair in pairing.connections for p in pair.sent_by(pair.client, "client")
               if pair.twin_of(p) is None)


def test_the_router_view_shows_the_line_the_router_dropped(shared_dir):
    """Asked for, the router's end of the client's link is captured too: alice's lost
    line reached the router (and went no further), then its resend."""
    outcome = play("rto", "self", shared_dir, router_view=True)
    line = (outcome["line"] + "\n").encode()
    copies = {}
    for side, path in outcome["views"].items():
        a = analyze(path)
        copies[side] = sum(a.packets.payload(i) == line for i in range(len(a.packets)))
    assert copies == {"client": 2, "router": 2, "server": 1}


@pytest.mark.parametrize("user", [PLAYER])
def test_limits(shared_dir, user):
    """Three transfers, three limits, as the kernel counts them: the receive window,
    the application, the congestion window (at a bottleneck, with tail drops)."""
    outcome = play("limits", user, shared_dir)
    assert list(outcome) == ["rwnd", "app", "cwnd"]
    assert {name: run["limited_by"] for name, run in outcome.items()} == {"rwnd": "rwnd", "app": "app", "cwnd": "cwnd"}
    assert outcome["rwnd"]["shares"]["rwnd"] >= 0.2 and outcome["cwnd"]["shares"]["rwnd"] == 0
    assert outcome["app"]["app_limited_samples"] > 0.5 > outcome["cwnd"]["app_limited_samples"]
    assert outcome["cwnd"]["dropped"] > 0 and outcome["rwnd"]["dropped"] == 0
    for run in outcome.values():
        assert run["received"] == [150_000 if run["limit"] != "app" else 150_000 // 8]
        events(run["views"]["client"])
    # The receiver's window really was small: no segment beyond it, and its ACKs say so.
    a = analyze(outcome["rwnd"]["views"]["client"])
    in_flight = a.expert.bytes_in_flight
    assert 0 < int(in_flight.max()) <= 16_384


@pytest.mark.parametrize("user", [PLAYER])
def test_random_loss(shared_dir, user):
    """The router loses frames at random (seeded): the frames it says it dropped are the
    data segments the server's view never saw, and each was sent again and arrived."""
    outcome = play("random_loss", user, shared_dir)
    assert outcome["received"] == [300_000] and outcome["sack"] is True
    dropped = [e for e in outcome["lost_at_random"] if e["length"]]
    assert dropped and outcome["relay"]["counts"]["to_server"]["lost"] == len(outcome["lost_at_random"])
    client_view, server_view = (Path(outcome["views"][name]) for name in ("client", "server"))
    assert_agrees_with_tshark(client_view)
    assert_agrees_with_tshark(server_view)
    sent, arrived = analyze(client_view).packets, analyze(server_view).packets
    for loss in dropped:  # by raw sequence number: both views see the same numbers
        assert carrying(sent, loss["seq"]) >= 2, loss  # the copy the router dropped, and a resend
        assert carrying(arrived, loss["seq"]) == 1, loss  # the resend, once


def carrying(packets, seq: int) -> int:
    """How many data segments of *packets* carry the byte at raw sequence number *seq*."""
    return sum(0 <= (seq - int(packets.seq[i])) % 2**32 < packets.payload_len[i] for i in range(len(packets)))


def test_random_loss_without_sack_and_a_bad_rate(shared_dir):
    outcome = play("random_loss", "self", shared_dir, sack=False, seed=3)
    assert outcome["sack"] is False and outcome["received"] == [300_000]
    a = analyze(outcome["views"]["client"])
    syn = next(i for i in range(len(a.packets)) if a.packets.flags[i] & 0x02)
    assert not a.packets.tcp_options(syn).get("sack_permitted")  # alice's SYN no longer offers SACK
    with pytest.raises(Exception, match="loss_rate is the share of frames"):
        play("random_loss", "self", shared_dir, loss_rate=0.7)


@pytest.mark.parametrize("user", [PLAYER])
def test_a_stall_bunches_lines_and_flood_control_holds_them_without_losing_one(shared_dir, user):
    """The path breaks under alice's typing: TCP resends and delivers her lines bunched;
    flood control passes its burst on and holds the rest, releasing one per 0.2 s; bob
    hears all 16 in order, and alice is told nothing."""
    outcome = play("bunched", user, shared_dir)
    assert outcome["held"] and outcome["told_alice"] == []
    gaps = [b - a for a, b in zip(outcome["released_after_s"], outcome["released_after_s"][1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps)  # paced at the room's 5 lines per second
    server = events(outcome["views"]["server"])  # tshark agrees on every packet, too
    lines_per_segment = [payload for _, names, payload in server if "retransmission" in names]
    assert lines_per_segment, "the stall's lines came back as retransmissions"
