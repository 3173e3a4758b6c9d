"""TCP_INFO read from real sockets: the kernel's view of a connection."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from tcpchatx.tcpinfo import CA_STATES, Sampler, tcp_info

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's TCP_INFO")


@pytest.fixture
def connection():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        yield client, server
        client.close()
        server.close()


def test_an_established_connection(connection):
    client, server = connection
    client.sendall(b"x" * 10_000)
    info = tcp_info(client)
    assert info["state"] == 1 and info["ca_state_name"] == CA_STATES[0]  # ESTABLISHED, Open
    assert info["snd_mss"] > 0 and info["snd_cwnd"] >= 1 and 0 < info["rto"] <= 3
    assert info["bytes_sent"] == 10_000 and info["total_retrans"] == 0
    received = b""
    while len(received) < 10_000:
        received += server.recv(1 << 16)
    assert tcp_info(server)["bytes_received"] == 10_000 and tcp_info(server)["receive_queue"] == 0


def test_the_queues_in_bytes(connection):
    client, server = connection
    client.sendall(b"y" * 5_000)
    # the bytes wait in the server's receive queue until it reads them (on loopback
    # they arrive at once; polled with a deadline all the same)
    deadline = time.monotonic() + 5
    while tcp_info(server)["receive_queue"] < 5_000 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert tcp_info(server)["receive_queue"] == 5_000


def test_the_sampler_reads_until_stopped_and_skips_closed_sockets(connection):
    client, server = connection
    with Sampler({"client": client, "server": server}, interval=0.001) as sampler:
        client.sendall(b"z" * 1000)
        server.recv(1000)
    names = {s["name"] for s in sampler.samples}
    assert names == {"client", "server"} and len(sampler.samples) >= 4
    times = [s["time"] for s in sampler.samples]
    assert times == sorted(times)
    client.close()
    sampler.sample_once()  # the closed socket is simply not read
    assert sampler.samples[-1]["name"] == "server"


def test_the_first_sample_comes_before_the_block(connection):
    """The state at the start is read before the block runs, whenever the thread starts:
    a story judges what came after from it (notebook 08: cwnd = initial + delivered - 1)."""
    client, server = connection
    with Sampler({"client": client}, interval=60) as sampler:  # the thread reads again only at the end
        first = list(sampler.samples)
        client.sendall(b"w" * 1000)
        server.recv(1000)
    assert [s["name"] for s in first] == ["client"]
    assert first[0]["bytes_acked"] <= 1 and first[0]["bytes_sent"] == 0  # nothing sent yet
    assert sampler.samples[-1]["bytes_sent"] == 1000
