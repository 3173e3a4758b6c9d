"""The kernel's socket states: parsing /proc/net/tcp, and sampling a real close."""

from __future__ import annotations

import socket
import sys

import pytest

from tcpchatx import sockstate
from tcpchatx.sockstate import (
    STATE_CODES,
    STATE_MEANINGS,
    SocketKey,
    SocketStateSampler,
    parse_proc_net_tcp,
    role,
    sample_once,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")

# Real lines (x86, little-endian words): a listener, a TIME_WAIT socket, an IPv6 listener
# and an IPv4-mapped connection on an IPv6 socket.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:61A8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1577 1 0 100 0 0 10 0
   1: 0100007F:EA68 0100007F:61A8 06 00000000:00000000 03:00000274 00000000     0        0 0 3 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:61A8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0
   1: 0000000000000000FFFF00000100007F:61A8 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0
"""


@pytest.mark.skipif(sys.byteorder != "little", reason="the sample lines are little-endian")
def test_parse_proc_net_tcp():
    assert parse_proc_net_tcp(TCP) == [
        (SocketKey(("127.0.0.1", 25000), ("0.0.0.0", 0)), "LISTEN"),
        (SocketKey(("127.0.0.1", 60008), ("127.0.0.1", 25000)), "TIME_WAIT"),
    ]
    assert parse_proc_net_tcp(TCP6) == [
        (SocketKey(("::1", 25000), ("::", 0)), "LISTEN"),
        (SocketKey(("127.0.0.1", 25000), ("127.0.0.1", 54321)), "ESTABLISHED"),  # mapped -> IPv4
    ]


def test_every_state_is_explained_once():
    assert set(STATE_CODES.values()) <= set(STATE_MEANINGS)
    assert STATE_CODES[0x06] == "TIME_WAIT" and STATE_CODES[0x0A] == "LISTEN"
    assert all(meaning and "\n" not in meaning for meaning in STATE_MEANINGS.values())


def test_roles_from_ports():
    assert role(SocketKey(("127.0.0.1", 25000), ("0.0.0.0", 0)), [25000]) == "listener"
    assert role(SocketKey(("127.0.0.1", 25000), ("127.0.0.1", 40000)), [25000]) == "server"
    assert role(SocketKey(("127.0.0.1", 40000), ("127.0.0.1", 25000)), [25000]) == "client"


def test_not_linux_says_so(monkeypatch):
    monkeypatch.setattr(sockstate.sys, "platform", "darwin")
    with pytest.raises(NotImplementedError, match="only Linux.*reference timeline"):
        SocketStateSampler([25000])
    with pytest.raises(NotImplementedError, match="only Linux"):
        sample_once([25000])


@pytest.fixture
def listener():
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


@linux_only
def test_sample_once_sees_both_ends(listener):
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    try:
        cport = client.getsockname()[1]
        states = sample_once([port])
        assert states[SocketKey(("127.0.0.1", port), ("0.0.0.0", 0))] == "LISTEN"
        assert states[SocketKey(("127.0.0.1", cport), ("127.0.0.1", port))] == "ESTABLISHED"
        assert states[SocketKey(("127.0.0.1", port), ("127.0.0.1", cport))] == "ESTABLISHED"
        assert all(port in (k.local[1], k.remote[1]) for k in states)
    finally:
        client.close()
        accepted.close()


@linux_only
def test_sampler_records_a_half_close_transitions_only(listener):
    port = listener.getsockname()[1]
    with SocketStateSampler([port], interval=0.001) as sampler:
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        cport = client.getsockname()[1]
        client_key = SocketKey(("127.0.0.1", cport), ("127.0.0.1", port))
        server_key = SocketKey(("127.0.0.1", port), ("127.0.0.1", cport))
        sampler.wait_for("ESTABLISHED", local_port=port, remote_port=cport)
        client.shutdown(socket.SHUT_WR)  # the client's FIN: it closes first
        assert sampler.wait_for("FIN_WAIT2", local_port=cport) == client_key
        assert sampler.wait_for("CLOSE_WAIT", local_port=port, remote_port=cport) == server_key
        accepted.close()  # the server's FIN; the client's last ACK
        sampler.wait_for("TIME_WAIT", local_port=cport)
        sampler.wait_for("CLOSED", local_port=port, remote_port=cport)
        client.close()
    assert sampler.samples > 3 and sampler.period is not None and sampler.period > 0

    # Transitions only: never the same state twice in a row.
    for changes in sampler.transitions.values():
        states = [s for _, s in changes]
        assert all(a != b for a, b in zip(states, states[1:]))
        assert [w for w, _ in changes] == sorted(w for w, _ in changes)
    client_states, server_states = sampler.states(client_key), sampler.states(server_key)
    # The handshake states and LAST_ACK last microseconds on loopback, FIN_WAIT1 until the
    # (possibly delayed) ACK of the FIN: a sample may or may not see them.
    brief = {"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV", "FIN_WAIT1", "LAST_ACK"}
    assert [s for s in client_states if s not in brief] == ["ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"]
    assert [s for s in server_states if s not in brief] == ["ESTABLISHED", "CLOSE_WAIT", "CLOSED"]
    assert sampler.states(SocketKey(("127.0.0.1", port), ("0.0.0.0", 0))) == ["LISTEN"]

    df = sampler.transitions_df()
    assert list(df.columns) == ["local", "local_port", "remote", "remote_port", "role", "time",
                                "state", "meaning"]
    assert df.time.is_monotonic_increasing
    assert set(df[df.local_port == cport].role) == {"client"}
    assert set(df[df.remote_port == cport].role) == {"server"}
    assert df[df.state == "TIME_WAIT"].meaning.iloc[0] == STATE_MEANINGS["TIME_WAIT"]
    with pytest.raises(TimeoutError, match="SYN_SENT"):
        sampler.wait_for("SYN_SENT", local_port=cport, timeout=0.05)
