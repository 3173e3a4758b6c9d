"""A chat load generator: many clients in a few processes, every message stamped.

    report = run_load("127.0.0.1", port, Load(clients=100, senders=10, messages=200))
    print(report.summary())

Theory of operation
-------------------
* ``Load.clients`` clients connect and choose a nickname; they are spread over
  ``Load.processes`` worker processes (round-robin by client id; at a fixed rate the
  senders in a process of their own, so that busy receivers do not make them late),
  each of which runs one non-blocking ``selectors`` loop, so the load generator is not
  one GIL.
  Clients ``0 .. senders-1`` also send; every client receives.
* Every message carries a **stamp**: ``@SSSS.QQQQQQQ.TTTTTTTTTTTTTTTTTTT~``, the
  sender's id, its sequence number and the send time in wall-clock nanoseconds
  (``time.time_ns()``: one clock for every process on the machine).
* **Fixed rate** (``Load.rate`` messages/s over all senders): message ``k`` of the
  schedule is *due* at ``t0 + k / rate`` and is stamped with that *intended* time,
  not the moment it was actually written.  A server that stalls the sender cannot
  hide the stall by making us send later (no coordinated omission): the wait shows
  up in the latency.  **Flat out** (``rate=None``): each sender writes its next
  message whenever the loop comes round to it, stamped with the time of writing.
* Receivers never parse lines: during the run they only keep each ``recv()`` chunk
  with its arrival time and count ``~`` bytes to know when everything is in.
  Afterwards a regular expression finds the stamps in each client's byte stream
  (a stamp split over two chunks is found too).  So a server that relays bytes
  without framing lines (the seed) is counted as fairly as one that does.
* Latency of a delivery = arrival time of the chunk that completes its stamp minus
  the stamp's time.  Lost = deliveries expected (each message reaches every other
  welcomed client once) minus the distinct ones that arrived; duplicated = stamps
  seen twice by one client.
* ``Load.stalled`` extra clients choose a nickname, then never read again (with a
  tiny receive buffer); they are not counted as receivers.  Against TCPChatX such
  a client first fills the kernel's buffers with private messages to itself (see
  ``_prefill``), so that the server feels the stall during the run, not after it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import resource
import selectors
import socket
import struct
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field, replace

STAMP = re.compile(rb"@(\d{4})\.(\d{7})\.(\d{19})~")
STAMP_BYTES = len(b"@0000.0000000.0000000000000000000~")
END = b"~"  # the last byte of a stamp; no other line the servers send contains it

# How each server greets a client: (its question, then the answer that says we are in).
DIALECTS = {
    "tcpchatx": (b"Choose a nickname", b"--- Welcome, {nick}!"),
    "seed": (b"Type your nickname", b"Connected to server! Hello {nick}"),
}
RECV_BYTES = 256 * 1024
CATCH_UP_AT_MOST = 256  # messages a late sender writes at once
RECEIVED_AT_MOST = 24 << 20  # bytes a receiver keeps in the buffer it makes before the clock starts
STALLED_RCVBUF = 4096
RECEIVER_RCVBUF = 1 << 20  # the kernel doubles it; capped by net.core.rmem_max
HANDSHAKES_AT_ONCE = 64  # per process: stays under the server's listen backlog


def stamp(sender: int, seq: int, t_ns: int) -> bytes:
    return b"@%04d.%07d.%019d~" % (sender, seq, t_ns)


def raise_fd_limit() -> int:
    """Let this process (and the processes it starts) open as many sockets as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True)
class Load:
    clients: int = 100  # receiving clients (the senders among them)
    senders: int = 10  # clients 0 .. senders-1 also send
    messages: int = 200  # per sender
    rate: float | None = None  # messages per second over all senders; None: flat out
    stalled: int = 0  # extra clients that never read after choosing a nickname
    dialect: str = "tcpchatx"  # or "seed"
    receive_buffer: int | None = RECEIVER_RCVBUF  # SO_RCVBUF of receivers; None: the kernel's own
    processes: int = 4  # receivers' worker processes, so that the generator keeps up
    text: bytes = b"hello"  # what follows the stamp in each message
    connect_timeout: float = 60.0
    idle_timeout: float = 3.0  # end the run once nothing arrives for this long after the last send
    run_timeout: float = 120.0
    nick_prefix: str = "c"  # run_load makes it unique per run: the last run's may still be leaving


@dataclass
class Report:
    load: Load
    welcomed: int  # clients (receivers and stalled) through the nickname handshake
    failures: Counter  # why the others were not: connect error, closed (last words), asked...
    sent: int  # messages written by the senders
    expected: int  # deliveries due: every message to every other welcomed receiver
    deliveries: int  # stamps found by the receivers, duplicates included, echoes not
    echoes: int  # a sender's own messages sent back to it (the seed does; not deliveries)
    lost: int
    duplicated: int
    seconds: float  # first send (intended) to last delivery
    latencies_ns: array = field(repr=False)
    send_lag_p99_ms: float  # how late the load generator wrote messages (its own health)
    stalled_dropped: int  # stalled clients the server had disconnected by the end
    disconnected: int  # receivers the server closed on during the run (e.g. "too slow")
    server_cpu_s: float | None = None  # the server process's CPU time (user + system) during the run
    generator_cpu_s: float = 0.0  # the worker processes' CPU time during the run

    @property
    def complete(self) -> bool:
        """Every client got in and every delivery arrived once: the figures mean something."""
        everyone = self.load.clients + self.load.stalled
        return self.welcomed == everyone and self.lost == 0 and self.duplicated == 0

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        import numpy as np

        if not self.latencies_ns:
            return float("nan")
        return float(np.percentile(np.frombuffer(self.latencies_ns, dtype=np.int64), q)) / 1e6

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    @property
    def cores(self) -> tuple[float, float] | None:
        """The server's and the load generator's CPU time over the run, in cores (None: unknown)."""
        if self.server_cpu_s is None or self.seconds <= 0:
            return None
        return self.server_cpu_s / self.seconds, self.generator_cpu_s / self.seconds

    @property
    def bottleneck(self) -> str:
        """Which side was busier during the run, in cores: the server or the load generator.

        A Python server runs its Python code on one core at a time (the GIL); the
        generator has several processes.  Whichever used more of the machine while the
        load ran was the one the other waited for."""
        cores = self.cores
        if cores is None:
            return "unknown"
        server, generator = cores
        side = "server" if server >= generator else "generator"
        return f"{side} (server {server:.2f} cores, generator {generator:.2f} cores)"

    def summary(self) -> str:
        return (
            f"{self.load.dialect}: {self.welcomed} welcomed, {self.sent} sent, "
            f"{self.deliveries}/{self.expected} delivered ({self.lost} lost, {self.duplicated} dup, "
            f"{self.disconnected} receivers cut off) "
            f"in {self.seconds:.2f} s = {self.deliveries_per_s:,.0f}/s, "
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, send lag p99 {self.send_lag_p99_ms:.1f} ms"
            + (f", {self.echoes} echoes" if self.echoes else "")
            + f"; busier: {self.bottleneck}"
            + (f"; not welcomed: {dict(self.failures)}" if self.failures else "")
        )


# ---------------------------------------------------------------------- the parent

_runs = 0


def run_load(host: str, port: int, load: Load, server_pid: int | None = None) -> Report:
    """Start the workers, wait until every client is in, start the clock, merge results.

    With ``server_pid`` (Linux), the report also has the server's CPU time during the run."""
    raise_fd_limit()
    global _runs
    _runs += 1
    load = replace(load, nick_prefix=f"r{_runs % 1000}c")
    # fork: a worker starts at once with this module loaded (and needs no __main__ guard
    # in the caller); the benchmark process has no threads of its own at this point.
    context = multiprocessing.get_context("fork")
    workers = []
    for ids in _assign(load):
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_worker, args=(child_end, host, port, load, ids), daemon=True)
        process.start()
        workers.append((process, parent_end))
    try:
        ready = [_receive(pipe, load.connect_timeout + 30) for _, pipe in workers]
        t0_ns = time.time_ns() + 200_000_000  # every worker has the "go" well before t0
        server_cpu_before = _cpu_seconds(server_pid)
        for _, pipe in workers:
            pipe.send(("go", t0_ns))
        results = [_receive(pipe, load.run_timeout + 60) for _, pipe in workers]
        server_cpu_after = _cpu_seconds(server_pid)
        for _, pipe in workers:
            pipe.send(("close", None))
    finally:
        for process, _ in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
    report = _merge(load, ready, results)
    if server_cpu_before is not None and server_cpu_after is not None:
        report.server_cpu_s = server_cpu_after - server_cpu_before
    return report


def _assign(load: Load) -> list[list[int]]:
    """Client ids, one list per worker process.  At a fixed rate the senders get a
    process of their own: a worker that also reads for 25 busy receivers comes round
    to its senders late, and the messages' stamps (their due times) count that as latency."""
    everyone = range(load.clients + load.stalled)
    if load.rate and load.processes > 1:
        rest = [i for i in everyone if i >= load.senders]
        others = load.processes - 1
        return [list(range(load.senders)), *(rest[w::others] for w in range(others))]
    return [[i for i in everyone if i % load.processes == w] for w in range(load.processes)]


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid``, all its threads (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _receive(pipe, timeout: float):
    if not pipe.poll(timeout):
        raise TimeoutError(f"a load worker said nothing for {timeout:g} s")
    try:
        kind, value = pipe.recv()
    except EOFError:
        raise RuntimeError("a load worker died without a word") from None
    if kind == "error":
        raise RuntimeError(f"a load worker failed: {value}")
    return value


def _merge(load: Load, ready: list[dict], results: list[dict]) -> Report:
    sent: dict[int, int] = {}
    got: dict[int, Counter] = {}
    latencies = array("q")
    lags = array("q")
    duplicated = deliveries = echoes = stalled_dropped = disconnected = 0
    generator_cpu = 0.0
    for result in results:
        sent.update(result["sent"])
        got.update(result["got"])
        latencies.frombytes(result["latencies"])
        lags.frombytes(result["lags"])
        duplicated += result["duplicated"]
        deliveries += result["deliveries"]
        echoes += result.get("echoes", 0)
        generator_cpu += result.get("cpu_s", 0.0)
        stalled_dropped += result["stalled_dropped"]
        disconnected += result["disconnected"]
    total_sent = sum(sent.values())
    expected = lost = 0
    for receiver, counts in got.items():  # got has one entry per welcomed receiver
        for sender, n in sent.items():
            if sender != receiver:
                expected += n
                lost += max(0, n - counts.get(sender, 0))
    starts = [r["first_send_ns"] for r in results if r["first_send_ns"]]
    ends = [r["last_delivery_ns"] for r in results if r["last_delivery_ns"]]
    seconds = (max(ends) - min(starts)) / 1e9 if starts and ends else 0.0
    lag_p99 = 0.0
    if lags:
        ordered = sorted(lags)
        lag_p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 1e6
    return Report(
        load=load,
        welcomed=sum(r["welcomed"] for r in ready),
        failures=sum((r["failures"] for r in ready), Counter()),
        sent=total_sent,
        expected=expected,
        deliveries=deliveries,
        echoes=echoes,
        lost=lost,
        duplicated=duplicated,
        seconds=seconds,
        latencies_ns=latencies,
        send_lag_p99_ms=lag_p99,
        stalled_dropped=stalled_dropped,
        disconnected=disconnected,
        generator_cpu_s=generator_cpu,
    )


# ---------------------------------------------------------------------- a worker


class _Client:
    def __init__(self, client_id: int, load: Load) -> None:
        self.id = client_id
        self.nick = f"{load.nick_prefix}{client_id}".encode()
        self.stalled = client_id >= load.clients
        self.sender_index = client_id if client_id < load.senders else None
        self.sock: socket.socket | None = None
        self.greeting = b""  # bytes received during the handshake
        self.state = "new"  # new -> asked (question seen, nick sent) -> in; or failed
        self.failure: str | None = None  # why the handshake failed
        self.chunks: list[tuple[int, bytes | memoryview]] = []  # (arrival ns, bytes) during the run
        # The run's bytes, received into a buffer made (every page touched) before the
        # clock starts: a second of flat-out fan-out brings each receiver megabytes, and
        # fresh pages cost the generator more than reading them does.  Past its end, recv().
        self.received = bytearray()
        self.view = memoryview(self.received)
        self.filled = 0
        self.next_seq = 0
        self.unsent = b""  # the part of a message the socket did not take yet
        self.eof = False


def _worker(pipe, host: str, port: int, load: Load, ids: list[int]) -> None:
    # A process of its own that makes no reference cycles: the cycle collector would
    # only walk the run's growing list of chunks (views of the buffers), pausing the
    # receivers, and the pauses would count as the server's latency.
    gc.disable()
    try:
        raise_fd_limit()
        clients = [_Client(i, load) for i in ids]
        selector = selectors.DefaultSelector()
        _handshake(clients, selector, host, port, load)
        welcomed = sum(c.state == "in" for c in clients)
        failures = Counter(c.failure or c.state for c in clients if c.state != "in")
        for client in clients:
            if client.state == "in" and not client.stalled:
                client.received = bytearray(_expected_bytes(load))  # zero-filled: faulted in now
                client.view = memoryview(client.received)
        pipe.send(("ready", {"welcomed": welcomed, "failures": failures}))
        while not pipe.poll(0):  # keep reading join notices until the start
            _read(selector, 0.02, keep=False)
        _, t0_ns = pipe.recv()
        result = _run(clients, selector, load, t0_ns)
        pipe.send(("result", result))
        pipe.recv()  # "close": everybody is done, so closing disturbs no measurement
        for client in clients:
            if client.sock is not None:
                client.sock.close()
    except Exception as error:  # the parent must hear about it, not wait forever
        pipe.send(("error", f"{type(error).__name__}: {error}"))


def _handshake(clients, selector, host, port, load) -> None:
    question, answer_template = DIALECTS[load.dialect]
    waiting = list(reversed(clients))
    busy = 0
    deadline = time.monotonic() + load.connect_timeout
    while (waiting or busy) and time.monotonic() < deadline:
        while waiting and busy < HANDSHAKES_AT_ONCE:
            client = waiting.pop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Before connecting: the window scale is agreed in the handshake.  A stalled
            # client gets a tiny buffer (it stalls at once); the others a large one, so
            # that a burst waits in our kernel, not in the server's per-client queue
            # (which would drop a receiver that falls 1,000 lines behind).
            rcvbuf = STALLED_RCVBUF if client.stalled else load.receive_buffer
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one message, one segment
            try:
                sock.connect((host, port))
            except OSError as error:
                client.state, client.failure = "failed", f"connect: {error.strerror or error}"
                sock.close()
                continue
            sock.setblocking(False)
            client.sock = sock
            selector.register(sock, selectors.EVENT_READ, client)
            busy += 1
        for key, _ in selector.select(0.1):
            client = key.data
            data = _recv(client.sock)
            if data is None:
                continue
            if not data:
                client.state = "failed"
                client.failure = "closed: " + client.greeting[-120:].decode(errors="replace").strip()
                selector.unregister(client.sock)
                busy -= 1
                continue
            client.greeting += data
            if client.state == "new" and question in client.greeting:
                client.sock.sendall(client.nick + b"\n")
                client.state = "asked"
            welcome = answer_template.replace(b"{nick}", client.nick)
            if client.state == "asked" and welcome in client.greeting:
                client.state = "in"
                client.greeting = b""
                busy -= 1
                if client.stalled:  # from now on it never reads
                    selector.unregister(client.sock)
                    _prefill(client, load)


def _prefill(client: _Client, load: Load) -> None:
    """Send ourselves private messages we never read, until the kernel holds no more.

    A stalled client is felt by the server only once the kernel's buffers on the
    path are full, and Linux sizes the server's send buffer on its own (from a few
    hundred KB to 4 MB): that would be seconds of chat.  So the stalled client first
    fills them with ``/msg`` to itself, watching the server socket's send queue in
    ``/proc/net/tcp``; once it stops growing, the server's writer to us is blocked
    and the run's own lines go to its queue, which overflows during the run.
    """
    if load.dialect != "tcpchatx":
        return
    batch = (b"/msg " + client.nick + b" " + b"x" * 900 + b"\n") * 64  # ~58 KB, under 256 KiB
    client.sock.settimeout(10)
    before = -1
    for _ in range(200):  # at most ~12 MB
        client.sock.sendall(batch)
        time.sleep(0.05)
        queued = _server_send_queue(client.sock)
        if queued is None or queued <= before:
            break
        before = queued
    client.sock.setblocking(False)


def _server_send_queue(sock: socket.socket) -> int | None:
    """Bytes the server side of this loopback connection has in its send queue (Linux)."""
    def hex_address(address: tuple[str, int]) -> str:
        ip = struct.unpack("=I", socket.inet_aton(address[0]))[0]  # as the kernel prints it
        return f"{ip:08X}:{address[1]:04X}"

    server_side, client_side = hex_address(sock.getpeername()), hex_address(sock.getsockname())
    try:
        with open("/proc/net/tcp") as table:
            for row in table:
                fields = row.split()
                if fields[1] == server_side and fields[2] == client_side:
                    return int(fields[4].split(":")[0], 16)
    except OSError:
        pass
    return None


def _recv(sock: socket.socket) -> bytes | None:
    """Bytes, or b"" at EOF/reset, or None if nothing is there after all."""
    try:
        return sock.recv(RECV_BYTES)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _expected_bytes(load: Load) -> int:
    """What one receiver may be sent in a run, generously: every sender's messages, each
    with its stamp, its text and room for the server's prefix (the seed sends the
    sender its own too)."""
    return min(RECEIVED_AT_MOST, load.messages * load.senders * (STAMP_BYTES + len(load.text) + 32) + RECV_BYTES)


def _recv_into_buffer(client: _Client) -> memoryview | None:
    """:func:`_recv` into the client's buffer: the new bytes (empty at EOF/reset), or None."""
    start = client.filled
    try:
        n = client.sock.recv_into(client.view[start : start + RECV_BYTES])
    except BlockingIOError:
        return None
    except OSError:
        n = 0
    client.filled += n
    return client.view[start : start + n]


def _read(selector, timeout: float, keep: bool) -> tuple[int, int]:
    """One pass over the readable sockets; returns (stamps seen, arrival ns of the last)."""
    stamps = last = 0
    for key, _ in selector.select(timeout):
        client = key.data
        buffered = keep and len(client.received) - client.filled >= RECV_BYTES
        data = _recv_into_buffer(client) if buffered else _recv(client.sock)
        if data is None:
            continue
        if not data:
            client.eof = True
            selector.unregister(client.sock)
            continue
        if keep:
            now = time.time_ns()
            client.chunks.append((now, data))
            n = client.received.count(END, client.filled - len(data), client.filled) if buffered \
                else data.count(END)
            if n:
                stamps += n
                last = now
    return stamps, last


def _run(clients, selector, load: Load, t0_ns: int) -> dict:
    senders = [c for c in clients if c.sender_index is not None and c.state == "in"]
    receivers = [c for c in clients if not c.stalled and c.state == "in"]
    hears_itself = load.dialect == "seed"  # its broadcast goes to the sender too
    expected_here = sum(
        load.messages * (load.senders - (1 if r.sender_index is not None and not hears_itself else 0))
        for r in receivers
    )
    lags = array("q")
    cpu_at_start = time.process_time()
    seen = 0
    last_delivery = 0
    first_send = 0
    quiet_since = None
    ns_per_message = 1e9 / load.rate if load.rate else 0.0
    while time.time_ns() < t0_ns:  # keep what arrives: another process may start first
        seen += _read(selector, max(0.0, min(0.02, (t0_ns - time.time_ns()) / 1e9)), keep=True)[0]
    stop_at = time.monotonic() + load.run_timeout
    while time.monotonic() < stop_at:
        now = time.time_ns()
        next_due = None
        for s in senders:
            if s.unsent and not _flush(s):
                continue
            if not load.rate:  # flat out: one message per sender per pass, then read
                if s.next_seq == load.messages:
                    continue
                due = time.time_ns()
                first_send = first_send or due
                s.unsent = stamp(s.id, s.next_seq, due) + b" " + load.text + b"\n"
                s.next_seq += 1
                lags.append(0)
                _flush(s)
                continue
            # At a fixed rate, every message that is due goes out in one write (a
            # generator that fell behind catches up at once, as a client's stream would);
            # each keeps its own due time, so the lateness still counts.
            due_times = []
            while s.next_seq < load.messages and len(due_times) < CATCH_UP_AT_MOST:
                due = t0_ns + int((s.next_seq * load.senders + s.sender_index) * ns_per_message)
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    break
                due_times.append(due)
                s.next_seq += 1
            if len(due_times) == CATCH_UP_AT_MOST:  # more may be due: come back at once
                next_due = now
            if due_times:
                first_seq = s.next_seq - len(due_times)
                if not first_send or due_times[0] < first_send:
                    first_send = due_times[0]
                s.unsent = b"".join(stamp(s.id, first_seq + k, due) + b" " + load.text + b"\n"
                                    for k, due in enumerate(due_times))
                written = time.time_ns()
                lags.extend(written - due for due in due_times)
                _flush(s)
        sending = any(s.next_seq < load.messages or s.unsent for s in senders)
        if not sending and seen >= expected_here:
            break
        if not load.rate and sending:
            timeout = 0.0
        elif next_due is not None:
            timeout = max(0.0, min(0.05, (next_due - time.time_ns()) / 1e9))
        else:
            timeout = 0.05
        stamps, last = _read(selector, timeout, keep=True)
        if stamps:
            seen += stamps
            last_delivery = last
            quiet_since = None
        elif not sending:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > load.idle_timeout:
                break
    cpu_s = time.process_time() - cpu_at_start  # the run only, not the counting after it
    result = _count(receivers)
    result.update(
        cpu_s=cpu_s,
        sent={s.id: s.next_seq - (1 if s.unsent else 0) for s in senders},
        first_send_ns=first_send,
        last_delivery_ns=last_delivery,
        lags=lags.tobytes(),
        stalled_dropped=sum(_was_dropped(c) for c in clients if c.stalled and c.state == "in"),
        disconnected=sum(c.eof for c in receivers),
    )
    return result


def _flush(sender: _Client) -> bool:
    """Write what is unsent; True once all of it is in the socket."""
    try:
        n = sender.sock.send(sender.unsent)
    except BlockingIOError:
        return False
    sender.unsent = sender.unsent[n:]
    return not sender.unsent


def _count(receivers) -> dict:
    """Find every stamp in each receiver's byte stream: latencies, counts, duplicates."""
    latencies = array("q")
    got: dict[int, Counter] = {}
    duplicated = deliveries = echoes = 0
    for client in receivers:
        own = b"%04d" % client.id
        seen: set[tuple[bytes, bytes]] = set()
        tail = b""
        for arrived, data in client.chunks:
            buffer = tail + data
            for sender, seq, sent_ns in STAMP.findall(buffer):
                if sender == own:  # the seed sends a message back to its sender too
                    echoes += 1
                    continue
                deliveries += 1
                if (sender, seq) in seen:
                    duplicated += 1
                    continue
                seen.add((sender, seq))
                latencies.append(arrived - int(sent_ns))
            # A stamp cut in two by recv() is at most STAMP_BYTES - 1 bytes at the end;
            # a whole stamp never fits there, so nothing is counted twice.
            tail = buffer[-(STAMP_BYTES - 1):]
        got[client.id] = Counter(int(sender) for sender, _ in seen)
        client.chunks = []
        client.received = bytearray()  # the run's buffer goes with the last view of it
        client.view = memoryview(client.received)
    return {"got": got, "latencies": latencies.tobytes(), "duplicated": duplicated,
            "deliveries": deliveries, "echoes": echoes}


def _was_dropped(client: _Client, wait: float = 2.0) -> bool:
    """Read what a stalled client was sent: did the server end with a FIN or a reset?"""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            data = client.sock.recv(RECV_BYTES)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        except OSError:
            return True
        if not data:
            return True
    return False
