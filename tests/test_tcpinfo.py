"""TCP_INFO read from real sockets: the kernel's view of a connection."""

from __future__ import annotations

import socket
import sys
import threading
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


def test_in_flight_is_never_beyond_the_window_while_the_queue_moves(connection):
    """send_queue (an ioctl) and notsent_bytes (TCP_INFO) are read together: while one
    thread keeps writing and a slow reader keeps the window small, the bytes in flight
    (the queue less what is not sent yet) stay within the receiver's window in every
    reading.  Read one after the other, about one reading in ten thousand paired a
    queue with a later write's notsent_bytes and came out a write's size beyond it."""
    client, server = connection
    done = threading.Event()

    def write() -> None:
        while not done.is_set():
            try:
                client.send(b"x" * 1000)
            except OSError:
                return

    def read_slowly() -> None:
        while not done.is_set():
            server.recv(700)
            done.wait(0.0002)  # a slow application: the window stays small

    threads = [threading.Thread(target=write), threading.Thread(target=read_slowly)]
    for thread in threads:
        thread.start()
    try:
        readings = [tcp_info(client) for _ in range(30_000)]
    finally:
        done.set()
        client.shutdown(socket.SHUT_RDWR)  # unblocks the writer
        for thread in threads:
            thread.join(10)
    beyond = [(r["send_queue"], r["notsent_bytes"], r["snd_wnd"]) for r in readings
              if not 0 <= r["send_queue"] - r["notsent_bytes"] <= r["snd_wnd"]]
    assert beyond == []
    assert max(r["notsent_bytes"] for r in readings) > 0  # the queue really moved: bytes waited unsent
