"""The shipped reference captures: regenerated here, they must have the same shape."""

from __future__ import annotations

import json
import subprocess

import pytest

from tcpchatx.analysis import analyze
from tcpchatx.references import CAPTURES, fingerprint, regenerate
from tcpchatx.scenarios import SCENARIOS


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("references")
    regenerate(out, progress=lambda message: None)
    return out


def test_every_scenario_has_a_shipped_capture_its_timeline_and_an_index_entry():
    index = (CAPTURES / "README.md").read_text()
    for name in SCENARIOS:
        assert (CAPTURES / f"{name}.pcapng").is_file(), name
        played = json.loads((CAPTURES / f"{name}.json").read_text())
        assert played["scenario"] == name
        assert f"`{name}.pcapng`" in index


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_regenerated_capture_has_the_shipped_shape(regenerated, name):
    shipped = fingerprint(analyze(CAPTURES / f"{name}.pcapng"))
    fresh = fingerprint(analyze(regenerated / f"{name}.pcapng"))
    assert fresh == shipped
    expect = SCENARIOS[name].expect
    assert {c["close_kind"] for c in shipped} == {expect.close_kind}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_shipped_packet_carries_its_comment(name):
    path = CAPTURES / f"{name}.pcapng"
    comments = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.comment"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert len(comments) == len(analyze(path).packets)
    assert all(comment.strip() for comment in comments)


def test_regenerated_own_sockets_have_the_shipped_shape(regenerated):
    """Notebook 01's own calls, captured again: listen and accept send nothing, connect
    the three handshake packets, as in the shipped files reference mode shows."""
    shipped = sorted(path.name for path in (CAPTURES / "own-sockets").glob("*.pcapng"))
    assert shipped == ["watch-accept.pcapng", "watch-connect.pcapng", "watch-socket-bind-listen.pcapng"]
    for name in shipped:
        fresh = analyze(regenerated / "own-sockets" / name)
        assert fingerprint(fresh) == fingerprint(analyze(CAPTURES / "own-sockets" / name)), name
    assert analyze(CAPTURES / "own-sockets" / "watch-connect.pcapng").packets_df()["step"].tolist() == [
        "SYN", "SYN-ACK", "ACK (handshake)"]
