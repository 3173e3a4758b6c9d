"""The benchmark's input builder: copies of a real session stay real, separate conversations."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.make_capture import build_copies, write_pcap, write_pcapng
from tcpchatx.analysis import analyze

SESSION = Path(__file__).parent.parent / "captures" / "chat.pcapng"


@pytest.fixture(scope="module")
def session():
    return analyze(SESSION)


@pytest.fixture(scope="module")
def copies(tmp_path_factory, session):
    """Three copies of the reference chat, written in both formats."""
    tracked = int((session.tracking.conn >= 0).sum())
    blob, lengths, ticks = build_copies(SESSION, 3 * tracked)
    out = tmp_path_factory.mktemp("copies")
    write_pcap(out / "copies.pcap", blob, lengths, ticks)
    write_pcapng(out / "copies.pcapng", blob, lengths, ticks)
    return {kind: analyze(out / f"copies.{kind}") for kind in ("pcap", "pcapng")}


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_every_copy_is_its_own_conversation(session, copies, kind):
    a = copies[kind]
    assert len(a.connections) == 3 * len(session.connections)
    # Each copy has its own client ports, so no two connections share an endpoint pair.
    assert len({(c.client, c.server) for c in a.connections}) == len(a.connections)
    assert Counter(c.close_kind for c in a.connections) == Counter(
        {kind: 3 * n for kind, n in Counter(c.close_kind for c in session.connections).items()})
    assert a.chat.gaps == 0
    assert len(a.messages) == 3 * len(session.messages)
    assert sum(len(m.deliveries) for m in a.messages) == 3 * sum(len(m.deliveries) for m in session.messages)


def test_both_formats_hold_the_same_packets(copies):
    pcap, pcapng = copies["pcap"].packets, copies["pcapng"].packets
    assert len(pcap) == len(pcapng)
    for column in ("seq", "ack", "sport", "dport", "flags", "payload_len"):
        assert (getattr(pcap, column) == getattr(pcapng, column)).all(), column
