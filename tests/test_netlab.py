"""The lab network: a chat across a real router, built without root, captured at both ends.

Run as root (this process) and, for real, as the unprivileged user ``nobody``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_capture_rootless import as_nobody, run_as_nobody

from tcpchatx.analysis import analyze
from tcpchatx.capture import rootless_available
from tcpchatx.netlab import run_in_lab
from tcpchatx.netlab.play import PORT
from tcpchatx.netlab.topology import CLIENT, SERVER, commands

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
TARGET = "tcpchatx.netlab.selftest:chat_through_router"


def test_the_network_is_data():
    built = [" ".join(c) for c in commands()]
    assert "ip netns add client" in built and "ip netns add server" in built
    assert f"ip -n client route add default via {CLIENT.router_address}" in built
    assert f"ip -n server route add default via {SERVER.router_address}" in built


def assert_chat_crossed_the_router(outcome: dict, nothing_lost: bool = True) -> None:
    assert outcome["bob_heard"] == "hello across the router" and outcome["from"] == "alice"
    views = {name: analyze(path) for name, path in outcome["views"].items()}
    for name, a in views.items():
        assert [(c.client[0], c.server) for c in a.connections] == [(CLIENT.address, (SERVER.address, PORT))] * 2, name
        assert all(c.conn_state == "SF" and c.close_kind in ("three-way", "four-way")
                   for c in a.connections), name
        (message,) = a.messages
        assert message.text == "hello across the router" and len(message.deliveries) == 1, name
    # The same packets at both ends, each host's: nothing lost or added on the way.
    # Compared as sets, not sequences: with a delay on the path the two directions
    # interleave differently at each end, and the router's two CPUs may forward two
    # packets sent at the same moment (alice's goodbye, bob's notice that she left)
    # in either order.
    columns = ("sport", "dport", "seq", "ack", "flags", "payload_len")
    for host in (CLIENT.address, SERVER.address) if nothing_lost else ():
        sent = []
        for name in ("client", "server"):
            p = views[name].packets
            from_host = p.src == p.addresses.index(host)
            rows = np.stack([getattr(p, column)[from_host].astype(np.int64) for column in columns])
            sent.append(rows[:, np.lexsort(rows[::-1])])
        assert np.array_equal(*sent), host


@pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
def test_a_chat_across_the_router(shared_dir):
    assert_chat_crossed_the_router(run_in_lab(TARGET, {"out_dir": str(shared_dir)}))


def run_in_lab_as_nobody(target: str, kwargs: dict, cwd: Path) -> dict:
    """:func:`run_in_lab` run for real by the user nobody; its outcome."""
    return run_as_nobody(f"import json; from tcpchatx.netlab import run_in_lab; "
                         f"print(json.dumps(run_in_lab({target!r}, {kwargs!r})))", cwd)


@as_nobody
def test_a_chat_across_the_router_as_nobody(shared_dir):
    outcome = run_in_lab_as_nobody(TARGET, {"out_dir": str(shared_dir)}, shared_dir)
    assert all(Path(path).stat().st_uid != 0 for path in outcome["views"].values())  # nobody's files
    assert_chat_crossed_the_router(outcome)


@pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
def test_segments_are_cut_as_on_a_wire(shared_dir):
    """With the veth offloads off, no captured segment is larger than the link's MSS."""
    outcome = run_in_lab("tcpchatx.netlab.selftest:bulk_through_bottleneck",
                         {"out_dir": str(shared_dir), "size": 200_000})
    for path in outcome["views"].values():
        packets = analyze(path).packets
        assert int(packets.payload_len.max()) <= 1448, path  # 1500 - IP - TCP with timestamps


@pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
def test_a_relative_folder_is_where_the_captures_go(shared_dir, monkeypatch):
    monkeypatch.chdir(shared_dir)
    outcome = run_in_lab(TARGET, {"out_dir": "."})
    assert {Path(path) for path in outcome["views"].values()} == {
        shared_dir / "chat-client-view.pcapng", shared_dir / "chat-server-view.pcapng"}
    assert all(Path(path).is_file() for path in outcome["views"].values())
