"""TCP checksums: which segments carry a wrong one, and what Zeek makes of them.

tshark is the oracle for the checksums (``tcp.check_checksum``, its verdict per frame
in ``tcp.checksum.status``), on every capture the project ships and on crafted ones.
Zeek's side follows ``TCPAnalyzer::ValidateChecksum``: such a segment writes ``c``
(scaled) and moves nothing.  All of it only when asked: ``--check-checksums``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.all import TCP

from analysis_helpers import TSHARK, C, S, Talk
from tcpchatx.analysis import analyze, analyze_plainly
from tcpchatx.analysis.checksums import BAD, GOOD, UNCHECKED, tcp_checksums
from tcpchatx.analysis.packets import read_packets
from tcpchatx.analysis.plain.checksums import checksum_of_one, checksums_one_by_one
from tcpchatx.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "captures").glob("**/*.pcapng"))
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is the oracle here")


def tshark_verdicts(path) -> np.ndarray:
    """tshark's checksum verdict per frame, in our codes (UNCHECKED where it has none)."""
    out = subprocess.run([TSHARK, "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
                          "-e", "tcp.checksum.status"], capture_output=True, text=True, check=True).stdout
    codes = {"0": BAD, "1": GOOD}  # Wireshark's PROTO_CHECKSUM_E_BAD, _GOOD
    return np.array([codes.get(line.strip(), UNCHECKED) for line in out.splitlines()], dtype=np.int8)


def both(path) -> np.ndarray:
    p = read_packets(path)
    fast, plain = tcp_checksums(p), checksums_one_by_one(p)
    assert np.array_equal(fast, plain)
    return fast


@needs_tshark
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "captures")))
def test_every_shipped_capture_as_tshark_checks_it(path):
    assert np.array_equal(both(path), tshark_verdicts(path))


def with_bad_segments(v6: bool) -> Talk:
    t = Talk(v6=v6, client=("fd00::1", 40000) if v6 else ("10.0.0.1", 40000),
             server=("fd00::2", 25000) if v6 else ("10.0.0.2", 25000))
    t.handshake()
    t.send(C, b"odd\n!")  # five bytes: the last one is a word's high half
    t.send(S, b"even")
    wrong = t.send(C, b"wrong checksum\n")
    wrong[TCP].chksum = 0x1234
    t.ack(S)
    return t


@needs_tshark
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_crafted_segments_as_tshark_checks_them(tmp_path, v6):
    path = with_bad_segments(v6).write(tmp_path / "case.pcap")
    verdicts = both(path)
    assert verdicts.tolist() == [GOOD] * 5 + [BAD, GOOD]
    assert np.array_equal(verdicts, tshark_verdicts(path))


def test_a_segment_cut_short_by_the_snap_length_is_not_checked(tmp_path):
    t = with_bad_segments(False)
    path = tmp_path / "cut.pcap"
    t.write(path)
    data = bytearray(path.read_bytes())
    # the first record: keep only its first 40 captured bytes (incl_len), as a snap length would
    first = 24
    incl = int.from_bytes(data[first + 8:first + 12], "little")
    data[first + 8:first + 12] = (40).to_bytes(4, "little")
    del data[first + 16 + 40:first + 16 + incl]
    path.write_bytes(bytes(data))
    assert both(path).tolist() == [UNCHECKED] + [GOOD] * 4 + [BAD, GOOD]


def test_the_sum_of_one_segment():
    """A segment whose checksum field holds the right value sums to 0xFFFF; any other value does not."""
    segment = bytes(TCP(sport=1, dport=2, seq=3, flags="S", chksum=0))
    source, destination = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    total = checksum_of_one(source, destination, segment)
    right = (~total) & 0xFFFF
    fixed = segment[:16] + right.to_bytes(2, "big") + segment[18:]
    assert checksum_of_one(source, destination, fixed) == 0xFFFF
    assert checksum_of_one(source, destination, fixed[:16] + b"\x12\x34" + fixed[18:]) != 0xFFFF


def zeek_labels(path, check: bool) -> set[tuple]:
    found = set()
    for read in (analyze, analyze_plainly):
        analysis = read(path, check_checksums=check)
        found.add(tuple((str(c.conn_state), c.history, len(c.zeek_connections)) for c in analysis.connections))
    assert len(found) == 1, found  # fast and plain agree
    return found.pop()


def test_zeek_ignores_a_segment_with_a_wrong_checksum_but_writes_c(tmp_path):
    """The client's FIN has a wrong checksum: Zeek writes C and never sees the client
    close, so the connection is S3 (only the responder closed), not SF; and the
    server's ACK of that FIN covers a byte Zeek never saw: a content gap (G)."""
    t = Talk()
    t.handshake()
    t.send(C, b"alice\n")
    t.ack(S)
    fin = t.fin(C)
    fin[TCP].chksum = 0x1234
    t.fin(S)
    t.ack(C)
    path = t.write(tmp_path / "case.pcap")
    assert zeek_labels(path, check=False) == (("SF", "ShADaFf", 0),)
    assert zeek_labels(path, check=True) == (("S3", "ShADaCfG", 0),)


def test_wrong_checksums_are_scaled_like_retransmissions(tmp_path):
    t = Talk()
    t.handshake()
    for _ in range(10):
        t.send(C, b"x")[TCP].chksum = 0x1234
    t.ack(S)
    path = t.write(tmp_path / "case.pcap")
    # C at the 1st and the 10th; the server's ACK covers the ten bytes Zeek never read: G
    assert zeek_labels(path, check=True) == (("S1", "ShACCaG", 0),)


def test_annotate_says_how_many_checksums_are_wrong_only_when_asked(tmp_path, capsys):
    path = with_bad_segments(False).write(tmp_path / "case.pcap")
    assert main(["annotate", str(path), "--check-checksums"]) == 0
    assert "TCP checksums: 1 wrong of 7 checked" in capsys.readouterr().out
    assert main(["annotate", str(path)]) == 0
    assert "TCP checksums" not in capsys.readouterr().out
    for flag, expected in ((["--check-checksums"], 1), ([], None)):
        assert main(["annotate", str(path), "--json", *flag]) == 0
        assert json.loads(capsys.readouterr().out)["capture"]["bad_checksums"] == expected
