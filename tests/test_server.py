"""The threaded server over real loopback sockets: broadcast, peers, defences, shutdown."""

from __future__ import annotations

import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import HOST, chat_threads, open_fds
from tcpchatx.client import ChatClient, ConnectionClosed
from tcpchatx.protocol import Kind
from tcpchatx.server import ChatServer


def drain_notices(*clients: ChatClient) -> None:
    """Read join notices until each client has seen the last client join."""
    last = clients[-1].nick
    for client in clients[:-1]:
        client.receive_until(lambda line, nick=last: line.text.startswith(f"{nick} joined"))


def test_start_listens_at_once_and_port_zero_picks_a_free_port():
    server = ChatServer(HOST, 0).start()
    try:
        assert server.port > 0
        socket.create_connection((HOST, server.port), timeout=2).close()  # no wait needed
    finally:
        server.stop()


def test_restarting_on_the_same_port_works_like_rerunning_a_cell(connect, server):
    port = server.port
    alice = connect("alice")
    alice.send("/quit")
    alice.wait_closed()
    server.stop()  # the server closed first: its side is in TIME_WAIT
    again = ChatServer(HOST, port).start()  # SO_REUSEADDR makes this possible
    try:
        assert again.port == port
    finally:
        again.stop()


def test_three_clients_every_broadcast_reaches_every_other_client_once_in_order(connect):
    clients = [connect(nick) for nick in ("alice", "bob", "carol")]
    drain_notices(*clients)
    rounds = 8  # within the flood-control burst of 10 lines
    for round_number in range(rounds):
        for sender in clients:
            sender.send(f"{sender.nick} says {round_number}")
    for receiver in clients:
        got = [receiver.receive() for _ in range(2 * rounds)]
        assert all(line.kind is Kind.CHAT for line in got)
        for sender in clients:
            from_sender = [line.text for line in got if line.nick == sender.nick]
            expected = [] if sender is receiver else [f"{sender.nick} says {n}" for n in range(rounds)]
            assert from_sender == expected
        with pytest.raises(TimeoutError):
            receiver.receive(timeout=0.2)  # nothing more: no duplicates


@pytest.mark.parametrize("relaying", ["as it comes", "busy after every round", "one round at most"])
def test_concurrent_senders_every_client_sees_one_order(start_server, monkeypatch, relaying):
    """Readers write to each other's sockets themselves (one thread at a time per
    socket), and one may send for the others (relaying): clients sending lines at
    once, one line per send, must still give every receiver every line once, and the
    same order of the lines it shares with each other receiver.  They send in waves
    of 500 lines each until readers have relayed for each other.  Any recv may start
    relaying here (a busy machine would otherwise make it rare); relaying is also
    made to stop taking lines after every round (as if the server were busy), or
    after one round."""
    import tcpchatx.server

    monkeypatch.setattr(tcpchatx.server, "RELAY_LINES", 10**9)
    monkeypatch.setattr(tcpchatx.server, "BUSY_LINES", 10**9)
    if relaying == "as it comes":
        monkeypatch.setattr(tcpchatx.server, "RELAY_WAIT", float("inf"))
    elif relaying == "busy after every round":
        monkeypatch.setattr(tcpchatx.server, "RELAY_WAIT", 0.0)
        monkeypatch.setattr(tcpchatx.server, "RELAY_SLACK", -1.0)
        monkeypatch.setattr(tcpchatx.server, "BUSY_FOR", 0.001)
    elif relaying == "one round at most":
        monkeypatch.setattr(tcpchatx.server, "RELAY_ROUNDS", 1)
    server = start_server(flood_control=False, record_lines=relaying == "as it comes")
    nicks = [f"s{k}" for k in range(6)]
    socks = [socket.create_connection((HOST, server.port)) for _ in nicks]
    for sock, nick in zip(socks, nicks, strict=True):
        sock.sendall(f"{nick}\n".encode())
        server.timeline.wait_for(lambda e, nick=nick: e.kind == "nick-set" and e.nick == nick)
    received: dict[int, list[bytes]] = {k: [] for k in range(len(socks))}

    def read(k: int) -> None:  # until every other sender's "end"
        buffer, ends = b"", 0
        socks[k].settimeout(20)
        while ends < len(socks) - 1:
            data = socks[k].recv(65536)
            assert data, "the server closed the connection"
            *lines, buffer = (buffer + data).split(b"\n")
            received[k] += [line for line in lines if line.startswith(b"<")]
            ends += sum(line.endswith(b"> end") for line in lines)

    readers = [threading.Thread(target=read, args=(k,)) for k in range(len(socks))]
    for thread in readers:
        thread.start()

    def send(k: int, wave: int) -> None:
        start.wait()
        for n in range(500 * wave, 500 * (wave + 1)):
            socks[k].sendall(f"{n}\n".encode())

    waves, rounds_before = 0, server.relay_rounds  # (the join notices may have been relayed)
    while waves == 0 or (server.relay_rounds == rounds_before and waves < 20):
        start = threading.Barrier(len(socks))
        senders = [threading.Thread(target=send, args=(k, waves)) for k in range(len(socks))]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(30)
        waves += 1
    for sock in socks:
        sock.sendall(b"end\n")
    for thread in readers:
        thread.join(30)
    assert server.relay_rounds > rounds_before, f"no reader relayed for the others in {waves} waves"
    if server.record_lines:  # the console tells a relaying round from a reader's own fan-out
        assert any(e.kind == "sent" and e.nick is None and "relayed for other readers" in e.detail
                   for e in server.timeline_events())
    for k in received:  # every other sender's lines, once each, in its order
        for j, nick in enumerate(nicks):
            from_j = [line for line in received[k] if line.startswith(f"<{nick}> ".encode())]
            expected = [] if j == k else [f"<{nick}> {n}".encode() for n in range(500 * waves)] + [
                f"<{nick}> end".encode()]
            assert from_j == expected
    for k in received:
        for other in received:
            if other != k:  # lines neither of them sent: the same order at both
                shared = {f"<{nick}>".encode() for j, nick in enumerate(nicks) if j not in (k, other)}
                mine = [line for line in received[k] if line.split(b" ", 1)[0] in shared]
                theirs = [line for line in received[other] if line.split(b" ", 1)[0] in shared]
                assert mine == theirs
    for sock in socks:
        sock.close()


def test_a_recv_of_many_lines_stops_relaying_for_a_while(start_server):
    """Lines that waited for their reader mean the server is behind: then every
    reader sends its own lines for BUSY_FOR seconds (relaying would make the others
    wait for one reader's rounds); a recv of a few lines does not say so."""
    import tcpchatx.server
    from tcpchatx.protocol import Line

    server = start_server(flood_control=False, record_lines=False)
    alice, bob = socket.create_connection((HOST, server.port)), socket.create_connection((HOST, server.port))
    for sock, nick in ((alice, "alice"), (bob, "bob")):
        sock.sendall(f"{nick}\n".encode())
        server.timeline.wait_for(lambda e, nick=nick: e.kind == "nick-set" and e.nick == nick)
    reader = next(conn for conn in server._connections.values() if server.room.nick_of(conn.id) == "alice")
    few = [Line(f"few {n}") for n in range(tcpchatx.server.RELAY_LINES)]
    many = [Line(f"many {n}") for n in range(tcpchatx.server.BUSY_LINES + 1)]
    server._handle_lines(reader, few)
    assert server._busy_until < time.monotonic()
    before = time.monotonic()
    server._handle_lines(reader, many)
    assert before + tcpchatx.server.BUSY_FOR <= server._busy_until <= time.monotonic() + tcpchatx.server.BUSY_FOR
    got, buffer = [], b""
    bob.settimeout(10)
    while len(got) < len(few) + len(many):  # and the lines went out as ever
        data = bob.recv(65536)
        assert data
        *lines, buffer = (buffer + data).split(b"\n")
        got += [line.decode() for line in lines if line.startswith(b"<alice>")]
    assert got == [f"<alice> {line.text}" for line in few + many]
    alice.close()
    bob.close()


def test_private_message_reaches_only_its_recipient(connect):
    alice, bob, carol = (connect(n) for n in ("alice", "bob", "carol"))
    drain_notices(alice, bob, carol)
    alice.send("/msg carol psst")
    assert alice.receive().text == "-> carol: psst"
    line = carol.receive()
    assert (line.kind, line.nick, line.text) == (Kind.PRIVATE, "alice", "psst")
    with pytest.raises(TimeoutError):
        bob.receive(timeout=0.2)


def test_an_action_reaches_everyone_else_as_an_action_even_in_a_joins_words(connect):
    alice, bob, carol = (connect(n) for n in ("alice", "bob", "carol"))
    drain_notices(alice, bob, carol)
    alice.send("/me joined (4 online)")
    for other in (bob, carol):
        line = other.receive()
        assert (line.kind, line.nick, line.text) == (Kind.ACTION, "alice", "joined (4 online)")
    alice.send("/me")
    alice.send("/online")  # answered after anything queued for alice before it: her action was not
    assert [(line.kind, line.text) for line in alice.receive_all(2)] == [
        (Kind.ERROR, "Usage: /me TEXT"), (Kind.REPLY, "Online (3): alice, bob, carol")]


def test_netcat_a_client_nobody_here_wrote_joins_chats_and_quits(connect, server):
    alice = connect("alice")
    result = subprocess.run(
        ["nc", "-q", "5", HOST, str(server.port)],  # nc exits when the server closes
        input=b"carol\nhello from nc\n/online\n/quit\n", capture_output=True, timeout=20,
    )
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "*** Welcome to TCPChatX!" in out
    assert "--- Online (2): alice, carol" in out
    assert "--- Bye, carol!" in out
    got = alice.receive_until(lambda line: line.text.startswith("carol left"))
    assert [line.text for line in got if line.kind is Kind.CHAT] == ["hello from nc"]


def test_socat_with_crlf_line_endings(connect, server):
    alice = connect("alice")
    result = subprocess.run(
        ["socat", "-t", "5", "-", f"TCP:{HOST}:{server.port},crlf"],
        input=b"dave\nhi from socat\n/quit\n", capture_output=True, timeout=20,
    )
    assert b"--- Bye, dave!" in result.stdout
    texts = [line.text for line in alice.receive_until(lambda line: "dave left" in line.text)]
    assert "dave joined (2 online)" in texts and "hi from socat" in texts


def vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_client_that_never_reads_blocks_nobody_and_is_dropped(start_server):
    server = start_server(flood_control=False, queue_bytes=64 * 1024, record_lines=False)
    alice = ChatClient.connect(HOST, server.port, "alice")
    bob = ChatClient.connect(HOST, server.port, "bob")
    slow = socket.create_connection((HOST, server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"sloth\n")  # joins, then never reads again
    server.timeline.wait_for(lambda e: e.kind == "nick-set" and e.nick == "sloth")
    drain_notices(alice, bob)
    bob.receive_until(lambda line: "sloth joined" in line.text)
    rss_before = vm_rss_kib()
    text = "x" * 900
    sent, notices = 0, []
    for batch in range(400):  # 400 x 50 x ~910 bytes = ~18 MB towards the sloth
        alice.send_raw(b"".join(f"{batch}:{n}:{text}\n".encode() for n in range(50)))  # one write
        sent += 50
        got = bob.receive_all(50, timeout=10)
        notices += [line for line in got if line.kind is not Kind.CHAT]
        got = [line for line in got if line.kind is Kind.CHAT]
        if len(got) < 50:  # the notice that the sloth left took one place
            got += bob.receive_all(50 - len(got), timeout=10)
        assert [line.text.split(":")[1] for line in got] == [str(n) for n in range(50)]
    dropped = server.timeline.wait_for(lambda e: e.kind == "dropped")
    assert "too slow" in dropped.detail
    assert len(notices) == 1 and notices[0].text.startswith("sloth left (dropped: too slow")
    assert vm_rss_kib() - rss_before < 8 * 1024  # far below the 18 MB sent its way
    slow.close()
    assert sent == 20_000


def test_a_reader_slower_than_a_burst_falls_behind_and_catches_up_without_being_cut_off(start_server):
    """bob reads nothing until the server says he is behind (his queue passed the soft
    limit, 128 KiB here, once the kernel's buffers were full), then reads everything.
    The old rule cut him off at once; Redis's rule lets him catch up within the grace,
    and nothing is lost."""
    server = start_server(flood_control=False, queue_bytes=128 * 1024, queue_hard_bytes=64 * 1024 * 1024,
                          queue_grace=30.0)
    alice = ChatClient.connect(HOST, server.port, "alice")
    bob = socket.create_connection((HOST, server.port))
    bob.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # smaller would slow loopback to a crawl
    bob.sendall(b"bob\n")
    server.timeline.wait_for(lambda e: e.kind == "nick-set" and e.nick == "bob")
    lines = 80_000
    alice.send_raw(b"".join(b"%06d %s\n" % (n, b"x" * 90) for n in range(lines)))  # ~8 MB: past the kernel's
    server.timeline.wait_for(lambda e: e.kind == "behind", timeout=30)  # bob fell behind ...
    received = bytearray()
    arrived = 0
    bob.settimeout(30)
    while arrived < lines:  # ... and reads everything
        chunk = bob.recv(65536)
        assert chunk, "bob was cut off"
        received += chunk
        arrived += chunk.count(b"x\n")
    server.timeline.wait_for(lambda e: e.kind == "caught-up", timeout=10)
    numbers = [int(line.split(b" ", 2)[1]) for line in received.split(b"\n") if line.startswith(b"<alice> ")]
    assert numbers == list(range(lines))
    assert not [e for e in server.timeline_events() if e.kind == "dropped"]
    bob.close()


def test_a_client_that_stopped_reading_is_cut_off_after_the_grace_even_when_nobody_talks(start_server):
    """Over the soft limit, under the hard one, and no line comes after: the janitor
    cuts it off once the grace is over."""
    server = start_server(flood_control=False, queue_bytes=128 * 1024, queue_hard_bytes=64 * 1024 * 1024,
                          queue_grace=0.5)
    alice = ChatClient.connect(HOST, server.port, "alice")
    sloth = socket.create_connection((HOST, server.port))
    sloth.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sloth.sendall(b"sloth\n")
    server.timeline.wait_for(lambda e: e.kind == "nick-set" and e.nick == "sloth")
    alice.send_raw(b"".join(b"%06d %s\n" % (n, b"x" * 90) for n in range(80_000)))  # ~8 MB, once
    behind = server.timeline.wait_for(lambda e: e.kind == "behind", timeout=30)
    dropped = server.timeline.wait_for(lambda e: e.kind == "dropped", timeout=10)
    assert "too slow" in dropped.detail and dropped.client == behind.client
    assert dropped.mono - behind.mono >= 0.5  # not before the grace
    assert alice.receive_until(lambda line: line.text.startswith("sloth left (dropped: too slow"))
    sloth.close()


def attacker(server: ChatServer, nick: str = "mallory") -> ChatClient:
    return ChatClient.connect(HOST, server.port, nick)


def test_defences_answer_the_offender_and_nobody_else(start_server):
    server = start_server()
    alice = ChatClient.connect(HOST, server.port, "alice")
    mallory = attacker(server)
    alice.receive()  # mallory joined
    mallory.send_raw(b"y" * 5000 + b"\n")
    assert mallory.receive().text.startswith("Line too long")
    mallory.send_raw(b"caf\xe9 latin-1\n")
    assert "not valid UTF-8" in mallory.receive().text
    mallory.send("\x1b[2J\x1b[31mred\u202eevil\u200b\x07")
    assert "Removed" in mallory.receive().text
    line = alice.receive()
    assert (line.nick, line.text) == ("mallory", "[2J[31mredevil")
    mallory.send("still ok")
    assert alice.receive().text == "still ok"  # the connection survived every attack
    with pytest.raises(TimeoutError):
        alice.receive(timeout=0.2)


@pytest.mark.parametrize("nick, problem", [
    ("ALICE", "taken"), ("Ａｌｉｃｅ", "taken"), ("server", "reserved"),
    ("x" * 17, "at most"), ("a b", "letters"), ("9lives", "starts with a letter"),
])
def test_nickname_rules_over_the_wire(connect, server, nick, problem):
    connect("alice")
    with pytest.raises(ValueError, match=problem):
        ChatClient.connect(HOST, server.port, nick)


def test_nickname_deadline_closes_with_fin_and_reason(start_server):
    server = start_server(nick_timeout=0.3)
    quiet = ChatClient.open(HOST, server.port)
    lines = quiet.wait_closed(timeout=5)
    assert lines[-1].kind is Kind.ERROR and "No nickname" in lines[-1].text
    assert quiet.eof  # an orderly FIN, not a reset
    quiet.close()


def test_idle_timeout(start_server):
    server = start_server(idle_timeout=0.3)
    alice = ChatClient.connect(HOST, server.port, "alice")
    lines = alice.wait_closed(timeout=5)
    assert "Idle" in lines[-1].text


def test_flood_control_holds_a_burst_in_one_send_and_delivers_it_all_in_order_paced(start_server):
    """50 lines in one send: the 10 of the burst go at once, the rest are held and
    leave at the rate (50 per second here, to keep the test short); the sender is told
    once; the others get all 50, in order."""
    server = start_server(flood_rate=50, flood_burst=10)
    alice = ChatClient.connect(HOST, server.port, "alice")
    bob = ChatClient.connect(HOST, server.port, "bob")
    alice.receive()  # bob joined
    burst = [f"pasted line {n}" for n in range(50)]
    bob.send_raw(b"".join(f"{text}\n".encode() for text in burst))
    assert [alice.receive().text for _ in burst] == burst
    told = bob.receive()
    assert told.kind is Kind.ERROR and "held" in told.text
    with pytest.raises(TimeoutError):
        bob.receive(timeout=0.3)  # told once, not once per line
    events = server.timeline_events()
    held = [e for e in events if e.kind == "held" and e.nick == "bob"]
    released = [e.mono for e in events if e.kind == "released" and e.nick == "bob"]
    assert len(held) == len(released) >= 35  # (bob's nickname line took a token too)
    # paced: the held lines left no faster than the rate allows
    assert released[-1] - released[0] >= (len(released) - 1) / 50 * 0.9


def test_a_flooder_is_disconnected_and_the_others_keep_chatting(start_server):
    """100,000 lines as fast as a client can write: its backlog passes the hard limit,
    it is told why and disconnected; nothing of it is kept; the others chat on."""
    server = start_server(flood_rate=5, flood_burst=10, flood_hold_lines=200)
    alice = ChatClient.connect(HOST, server.port, "alice")
    bob = ChatClient.connect(HOST, server.port, "bob")
    alice.receive()  # bob joined
    flooder = attacker(server)
    drain_notices(alice, bob, flooder)
    try:
        flooder.send_raw(b"".join(b"spam %d\n" % n for n in range(100_000)))
    except OSError:
        pass  # the server closed the connection while we were still writing
    lines = flooder.wait_closed(timeout=10)
    assert any(line.text == "Disconnected for flooding." for line in lines)
    bob.send("still here")
    assert alice.receive_until(lambda line: line.kind is Kind.CHAT and line.text == "still here")
    held = [e for e in server.timeline_events() if e.kind == "held"]
    assert max(int(e.detail.split()[0]) for e in held) <= 200  # bounded: never more held than the limit
    left = [e for e in server.timeline_events() if e.kind == "left" and e.nick == "mallory"]
    assert [e.detail for e in left] == ["flooding"]


def test_max_clients(start_server):
    server = start_server(max_clients=2)
    a = ChatClient.connect(HOST, server.port, "a1")
    b = ChatClient.connect(HOST, server.port, "b1")
    third = ChatClient.open(HOST, server.port)
    lines = third.wait_closed()
    assert "Server full" in lines[0].text
    a.send("/online")
    assert a.receive_until(lambda line: line.kind is Kind.REPLY)[-1].text == "Online (2): a1, b1"
    for client in (a, b, third):
        client.close()


def test_quit_server_closes_first_and_others_are_told(connect):
    alice, bob = connect("alice"), connect("bob")
    drain_notices(alice, bob)
    assert [line.text for line in bob.quit()] == ["Bye, bob!"]
    assert alice.receive().text == "bob left (quit, 1 online)"


def test_a_reset_client_is_reported_and_others_unaffected(connect, server):
    alice, bob = connect("alice"), connect("bob")
    drain_notices(alice, bob)
    bob.abort()
    assert alice.receive().text.startswith("bob left (connection reset")


def test_half_closed_client_still_receives_until_the_server_closes(connect):
    alice, bob = connect("alice"), connect("bob")
    drain_notices(alice, bob)
    bob.half_close()  # our FIN: the server answers with its own after sending what is queued
    assert alice.receive().text.startswith("bob left (closed by client")
    with pytest.raises(ConnectionClosed):
        bob.receive()


def test_stop_with_50_busy_clients_leaks_no_thread_and_no_fd():
    fds_before, threads_before = open_fds(), len(threading.enumerate())
    server = ChatServer(HOST, 0).start()
    clients = [ChatClient.open(HOST, server.port) for _ in range(50)]
    keep_going = threading.Event()
    keep_going.set()

    def chatter(client: ChatClient, n: int) -> None:
        try:
            client.send(f"busy{n}")
            while keep_going.is_set():
                client.send(f"message from busy{n}")
                try:
                    client.receive(timeout=0.05)
                except TimeoutError:
                    pass
        except (OSError, ConnectionClosed):
            pass  # the server said goodbye

    workers = [threading.Thread(target=chatter, args=(c, n)) for n, c in enumerate(clients)]
    for worker in workers:
        worker.start()
    server.timeline.wait_for(lambda e: e.kind == "nick-set" and e.nick == "busy49", timeout=20)
    server.stop(timeout=1.0)
    assert chat_threads() == []  # every server thread joined
    keep_going.clear()
    for worker in workers:
        worker.join(timeout=10)
    for client in clients:
        client.close()
    assert server.client_count() == 0
    assert len(threading.enumerate()) == threads_before
    assert open_fds() == fds_before
    left = [e for e in server.timeline_events() if e.kind == "left"]
    assert len(left) == 50


def test_timeline_lines_up_application_events(connect, server):
    alice, bob = connect("alice"), connect("bob")
    drain_notices(alice, bob)
    alice.send("hello")
    bob.receive()
    events = server.timeline_events()
    kinds = [e.kind for e in events]
    for kind in ("listening", "accepted", "nick-set", "line-received", "queued", "sent"):
        assert kind in kinds
    broadcast = next(e for e in events if e.kind == "queued" and "<alice> hello" in e.detail)
    bob_id = next(e.client for e in events if e.kind == "nick-set" and e.nick == "bob")
    assert broadcast.recipients == (bob_id,)
    sent = server.timeline.wait_for(  # her reader sent it (and records so once the send is done)
        lambda e: e.kind == "sent" and e.nick == "alice" and e.recipients == (bob_id,))
    assert "bytes to 1 clients at once" in sent.detail and "relayed" not in sent.detail
    accepted = [e for e in events if e.kind == "accepted"]
    assert {e.peer for e in accepted} == {alice.local_address, bob.local_address}
    assert all(a.wall <= b.wall + 1e-3 and a.mono <= b.mono for a, b in zip(events, events[1:]))


def test_record_each_records_what_record_would_for_each_at_one_moment():
    """The server records a recv's lines with ``record_each``: the same events, in the
    same order, cut to the same length, each passed on, stamped with one moment."""
    from dataclasses import replace

    from tcpchatx.timeline import Timeline

    details = ["hello", "x" * 500, "", "last"]
    passed_on, by_one = [], Timeline()
    timeline = Timeline(on_event=passed_on.append)
    timeline.record("accepted", client=1)
    timeline.record_each("queued", details, client=1, nick="alice", recipients=(2, 3))
    for detail in details:
        by_one.record("queued", client=1, nick="alice", detail=detail, recipients=(2, 3))
    events = timeline.events()
    assert passed_on == events
    assert [e.kind for e in events] == ["accepted"] + ["queued"] * len(details)
    assert len({(e.wall, e.mono) for e in events[1:]}) == 1
    assert events[0].mono <= events[1].mono
    same_moment = [replace(e, wall=0.0, mono=0.0) for e in by_one.events()]
    assert [replace(e, wall=0.0, mono=0.0) for e in events[1:]] == same_moment
    assert len(events[2].detail) == 200 and events[2].detail.endswith("...")


def test_the_timeline_costs_the_cycle_collector_nothing():
    """A busy server keeps 100,000 events: the collector would walk every one at each
    full collection, a pause for every client.  Kept as plain tuples, they are not
    even tracked once a collection has seen them."""
    import gc

    from tcpchatx.timeline import Timeline

    timeline = Timeline()
    peer = ("127.0.0.1", 25000)
    gc.collect()
    tracked_before = len(gc.get_objects())
    for n in range(20_000):
        timeline.record("accepted", client=n, peer=peer, detail=f"#{n}", recipients=(1, 2, 3))
    timeline.record_each("queued", [f"line {n}" for n in range(20_000)], client=1, recipients=tuple(range(99)))
    gc.collect()
    assert len(gc.get_objects()) - tracked_before < 100  # not 40,000
    events = timeline.events()
    assert len(events) == 40_000 and events[0].peer == peer and events[-1].detail == "line 19999"


def test_a_reader_follows_the_timeline_with_since_and_counts_what_it_let_go():
    """``since`` gives what came after a reader's place (the console reads the
    timeline so, instead of being handed every event); a reader too slow for the
    timeline's bound learns how many events went before it read them."""
    from tcpchatx.timeline import Timeline, TimelineEvent

    timeline = Timeline(max_events=8)
    rows, place = timeline.since(0)
    assert (rows, place) == ([], 0)
    timeline.record("accepted", client=1, peer=("127.0.0.1", 5))
    timeline.record_each("queued", ["a", "b"], client=1)
    rows, place = timeline.since(0)
    assert place == 3 and [TimelineEvent(*row).detail for row in rows] == ["", "a", "b"]
    assert TimelineEvent(*rows[0]).peer == ("127.0.0.1", 5)
    assert timeline.since(place) == ([], 3)
    timeline.record_each("queued", [str(n) for n in range(20)], client=1)
    rows, now = timeline.since(place)
    assert now == 23 and [row[6] for row in rows] == [str(n) for n in range(12, 20)]  # 12 let go
    assert [e.detail for e in timeline.events()] == [str(n) for n in range(12, 20)]
    assert timeline.wait_for(lambda e: e.detail == "15", timeout=0.1).detail == "15"


def start_server_process(*options: str) -> tuple[subprocess.Popen, int]:
    """``tcpchatx server`` in its own process (its own GIL), on a free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tcpchatx", "server", "--host", HOST, "--port", "0", *options],
        stdout=subprocess.PIPE, text=True,
    )
    for _ in range(5):  # the banner follows the "listening" event
        found = re.search(r":(\d+)\. Connect", process.stdout.readline())
        if found:
            break
    else:
        process.kill()
        raise AssertionError("tcpchatx server printed no banner")
    port = int(found.group(1))
    threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe drained
    return process, port


def test_soak_200_clients_50_messages_nothing_lost_or_duplicated(record_property):
    """200 clients x 50 messages: 1,990,000 deliveries, per-sender order kept.

    The server runs in its own process; one selector thread here reads every
    client.  Senders run at most ``window`` rounds ahead of the slowest reader, so
    queues stay short and the test measures delivery, not overflow."""
    n_clients, n_messages, window = 200, 50, 4
    process, port = start_server_process("--no-flood-control", "--quiet", "--max-clients", "300")
    try:
        clients = [socket.create_connection((HOST, port)) for _ in range(n_clients)]
        for n, sock in enumerate(clients):
            sock.sendall(f"c{n}\n".encode())
        # received[r][s]: how many of sender s's messages receiver r has seen, in order
        received = [[0] * n_clients for _ in range(n_clients)]
        known = [0] * n_clients  # how many clients each one knows are online
        problems: list[str] = []
        progress = threading.Condition()
        rounds_done = [0] * n_clients
        chat = re.compile(rb"^<c(\d+)> (\d+):(\d+)$")

        def read_all() -> None:
            selector = selectors.DefaultSelector()
            buffers = {}
            for n, sock in enumerate(clients):
                selector.register(sock, selectors.EVENT_READ, n)
                buffers[n] = b""
            remaining = n_clients * (n_clients - 1) * n_messages
            while remaining and not problems:
                for key, _ in selector.select(timeout=30) or [(None, None)]:
                    if key is None:
                        problems.append("no data for 30 s")
                        return
                    me = key.data
                    data = buffers[me] + clients[me].recv(65536)
                    *lines, buffers[me] = data.split(b"\n")
                    for line in lines:
                        match = chat.match(line)
                        if match is None:  # "Welcome, c1! Online (N)" or "c2 joined (N online)"
                            count = re.search(rb"\((\d+)( online)?\)", line)
                            with progress:
                                known[me] = max(known[me], int(count[1]) if count else 0)
                                progress.notify_all()
                            continue
                        sender, number = int(match[1]), int(match[3])
                        if number != received[me][sender] or int(match[2]) != sender:
                            problems.append(f"c{me} got {line!r}, expected #{received[me][sender]}")
                            return
                        received[me][sender] += 1
                        remaining -= 1
                    done = min(received[me][:me] + received[me][me + 1 :])
                    if done > rounds_done[me]:
                        with progress:
                            rounds_done[me] = done
                            progress.notify_all()

        reader = threading.Thread(target=read_all)
        reader.start()
        with progress:  # nobody chats before everybody is in, or some would miss it
            assert progress.wait_for(lambda: min(known) == n_clients or problems, 60)
        start = time.perf_counter()
        for number in range(n_messages):
            with progress:
                assert progress.wait_for(
                    lambda number=number: min(rounds_done) >= number - window or problems, 60
                )
            for n, sock in enumerate(clients):
                sock.sendall(f"{n}:{number}\n".encode())
        reader.join(timeout=120)
        elapsed = time.perf_counter() - start
        assert not reader.is_alive()
        assert problems == []
        deliveries = sum(map(sum, received))
        assert deliveries == n_clients * (n_clients - 1) * n_messages
        assert all(row[me] == 0 for me, row in enumerate(received))  # never echoed to the sender
        for sock in clients:
            sock.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0  # Ctrl-C stops the server cleanly
    record_property("soak_deliveries_per_second", round(deliveries / elapsed))
    print(f"\nsoak: {n_clients} clients x {n_messages} messages, {deliveries} deliveries "
          f"in {elapsed:.2f} s = {deliveries / elapsed:,.0f} deliveries/s")


@pytest.mark.parametrize("line", [b"x\n", b"a longer line of chat\n"])
def test_enqueue_asks_the_backlog_rule_whenever_its_answer_could_matter(line):
    """enqueue skips the backlog rule below both soft limits: after every enqueue the
    queue must be behind exactly when the rule, asked itself, says so."""
    from tcpchatx.protocol.backlog import Backlog
    from tcpchatx.server import _Connection

    server = ChatServer(HOST, 0, queue_lines=5, queue_bytes=60, queue_grace=60.0)
    ours, theirs = socket.socketpair()
    try:
        conn = _Connection(1, ours, ("test", 1), server)
        rule = Backlog(server.backlog_limits)
        for _ in range(12):
            conn.enqueue(line, 1, wake=False)
            rule.too_far_behind(conn.queued_lines, conn.queued_bytes, time.monotonic())
            assert (conn.backlog.over_since is None) == (rule.over_since is None), conn.queued_lines
        assert conn.backlog.over_since is not None and not conn.dropped  # behind, within its grace
        assert [e.kind for e in server.timeline.events()] == ["behind"]
    finally:
        ours.close()
        theirs.close()
