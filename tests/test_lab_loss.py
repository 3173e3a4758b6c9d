"""tcpchatx.lab.loss: the loss notebook's facts, read from the lab stories' reference
captures (captures/lab/, whose README says why each resend happened), and what
lab.story remembers of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tcpchatx import lab
from tcpchatx.lab.stories import StoryRun, not_the_defaults

LAB_CAPTURES = Path(__file__).resolve().parents[1] / "captures" / "lab"


@pytest.fixture(scope="module")
def stories():
    return {name: lab.reference_story(name) for name in ("rto", "backoff", "fast-retransmit", "reorder")}


def test_both_views_show_the_lost_line_missing_from_the_servers(stories):
    table = lab.both_views(stories["rto"])
    assert list(table.client) == [19, 21, 24]  # the line, its resend, the server's ACK of it
    assert list(table.server.isna()) == [True, False, False]  # the server's view never saw the line
    lost, resent, ack = table.to_dict("records")
    assert lost["who"] == "alice → server" and (lost["seq"], lost["len"]) == (7, 55)
    assert resent["server"] == 20 and resent["client_marks"] == "[TCP Retransmission]"
    assert ack["who"] == "server → alice" and ack["ack"] == 62
    assert len(lab.both_views(stories["rto"], everything=True)) > len(table)  # the handshake, the close


def test_the_sack_column_is_relative_like_seq(stories):
    table = lab.both_views(stories["fast-retransmit"], "sack")
    acks = table[table.who == "server → alice"]
    assert list(acks.sack[:3]) == ["109-143", "109-177", "109-211"]  # lines 4, 4-5, 4-6 of 34 bytes
    assert list(acks.client_marks[1:3]) == ["[TCP Dup ACK 33#1]", "[TCP Dup ACK 33#2]"]


def test_a_timeout_resend_and_the_rto_it_waited_for(stories):
    (resend,) = lab.resends(stories["rto"]).to_dict("records")
    assert (resend["frame"], resend["repeats"], resend["lost"]) == (21, (19,), (19,))
    assert (resend["seq"], resend["end"], resend["bytes"], resend["lost_bytes"]) == (7, 62, 55, 55)
    assert resend["trigger"] == "timeout" and resend["arrived"] == 20
    assert resend["wait_ms"] == pytest.approx(206.928) and resend["rto_ms"] == 204
    assert lab.fired_on_time(resend["wait_ms"], resend["rto_ms"])
    assert lab.lost_copies(stories["rto"]) == [19]


def test_backoff_doubles_the_rto_and_the_last_copy_gets_through(stories):
    resent = lab.resends(stories["backoff"])
    assert list(resent.frame) == [21, 22, 23, 24]
    assert list(resent.rto_ms) == [204, 408, 816, 1632] and list(resent.backoff) == [0, 1, 2, 3]
    assert [round(wait) for wait in resent.wait_ms] == [206, 432, 832, 1664]
    assert list(resent.arrived.isna()) == [True, True, True, False]
    assert all(map(lab.fired_on_time, resent.wait_ms, resent.rto_ms))


def test_fast_retransmit_with_and_without_sack(stories):
    sack = lab.resends(stories["fast-retransmit"], "sack").iloc[0]
    assert (sack.frame, sack.bytes, sack.lost_bytes, sack.lost) == (36, 34, 34, (22,))
    assert sack.asking == (33, 34, 35) and sack.dup_acks == (34, 35)  # 33 acknowledged lines 1-2
    no_sack = lab.resends(stories["fast-retransmit"], "no_sack").iloc[0]
    assert (no_sack.frame, no_sack.seq, no_sack.end, no_sack.sent_up_to) == (37, 75, 348, 348)
    assert (no_sack.bytes, no_sack.lost_bytes) == (273, 34) and no_sack.dup_acks == (34, 35, 36)
    assert pd.isna(no_sack.backoff) and pd.isna(no_sack.rto_ms)  # this story reads no TCP_INFO


def test_reordering_is_found_and_nothing_is_resent(stories):
    (late,) = lab.out_of_order(stories["reorder"]).to_dict("records")
    assert (late["client"], late["server"], late["seq"], late["overtaken_by"]) == (22, 25, 73, (23,))
    assert late["late_ms"] == pytest.approx(5.0, abs=0.1) and late["server_marks"] == "[TCP Out-Of-Order]"
    assert lab.resends(stories["reorder"]).empty and lab.lost_copies(stories["reorder"]) == []
    assert lab.out_of_order(stories["rto"]).empty


def test_rtt_samples_leave_out_alices_own_acks_and_karns(stories):
    samples = lab.rtt_samples(stories["backoff"])
    assert list(samples.frame[samples.use]) == [2, 7, 31, 37]
    own = samples[samples.who == "alice → server"]
    assert not own.use.any() and own.reason.str.startswith("alice's own ACK").all()
    (karn,) = samples[samples.reason.str.startswith("Karn")].to_dict("records")
    assert karn["frame"] == 25 and karn["acks_frame"] == 19 and karn["rtt_ms"] == pytest.approx(3178.144)
    assert "packet 21, 22, 23, 24" in karn["reason"]
    assert list(lab.ack_rtts(stories["backoff"]).columns) == [
        "frame", "at_ms", "who", "ack", "acks_frame", "acked", "rtt_ms"]


def test_the_rfc_table_in_milliseconds():
    table = lab.rfc6298_table([0.037, 0.023], granularity_ms=1.0)
    assert list(table.srtt_ms) == pytest.approx([0.037, 0.03525])
    assert list(table.rttvar_ms) == pytest.approx([0.0185, 0.017375])
    assert list(table.srtt_plus_max_g_k_rttvar_ms) == pytest.approx([1.037, 1.03525])
    assert list(table.rto_ms) == [1000.0, 1000.0]


def test_what_the_kernel_said_before_and_after_a_moment(stories):
    backoff = stories["backoff"]
    before = lab.kernel_before(backoff, 100.0)
    assert (before["rto"], before["backoff"], before["name"]) == (0.204, 0, "alice") and before["at_ms"] < 100
    after = lab.kernel_after(backoff, 3183.813)  # the ACK of the resent line
    assert after["rtt"] == 0.005552 and after["rto"] == 0.208 and after["at_ms"] > 3183.813
    assert lab.kernel_before(backoff, -1.0) is None and lab.kernel_after(backoff, 1e9) is None
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
    assert list(lab.resends(run).frame) == [21]
    for side, path in views.items():
        shutil.copy(LAB_CAPTURES / f"backoff-{side}-view.pcapng", path)
    assert list(lab.resends(run).frame) == [21, 22, 23, 24]
    assert len(run.analysis("client").packets) == 42


def test_a_reference_story_names_only_the_parameters_it_was_not_made_with(capsys):
    assert not_the_defaults("reorder", {"hold_ms": 5, "delay_ms": 25.0}) == {}
    assert not_the_defaults("reorder", {"hold_ms": 8, "delay_ms": 25}) == {"hold_ms": 8}
    lab.story("backoff", mode="reference", broken_for=1.7)
    assert "default parameters" not in capsys.readouterr().out
    lab.story("backoff", mode="reference", broken_for=1.0)
    assert "made with the default parameters, not with {'broken_for': 1.0}" in capsys.readouterr().out
