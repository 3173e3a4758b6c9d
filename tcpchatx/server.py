"""The threaded chat server: sockets and threads around the sans-IO ``ChatRoom``.

Theory of operation
-------------------
* One **acceptor** thread waits for connections (and for a wake-up from ``stop()``).
* Each client gets a **reader** thread (``recv`` -> ``LineSplitter`` -> ``ChatRoom``)
  and a **writer** thread for its own queue.  The lines one ``recv`` produced are
  queued as one block per recipient, and the reader then writes each recipient's
  queue itself, in one ``send`` that may not wait (``MSG_DONTWAIT``); what other
  readers queued for that recipient meanwhile goes in the same turn.  What the
  kernel does not take at once is left to that client's writer, which sends
  everything queued in one blocking ``sendall``.  So a client that keeps up costs
  one ``send`` per ``recv`` and no thread hand-off; a client that never reads only
  fills its own queue, and nobody waits for it.
* **Relaying**, while the room is quiet: when a reader brings a few lines and no
  other reader is sending, it also sends, in rounds, what other readers queue
  meanwhile; they go straight back to ``recv``.  Each ``send`` lets go of the GIL,
  and ten readers each sending to 99 clients would hand it to each other about a
  thousand times a message; one relaying reader sends everything queued for a
  client in one ``send``.  When a reader brings many lines, or a round shows the
  relaying reader waited for the GIL (the server is busy), every reader sends its
  own again for a while, in parallel (see :meth:`ChatServer._relay`).
* How far behind a client may fall is :mod:`tcpchatx.protocol.backlog`'s rule: past
  a soft limit for a moment (a burst), never past a hard one.  Past either, it is
  dropped as too slow.
* One **janitor** thread wakes twice a second to let the room enforce its
  deadlines (nickname, idle), to cut clients that stayed behind too long, and to
  cut connections that never finish closing.
* The room is called under ``self._lock``; actions are applied under it too, so
  every client sees the conversation in the same order.  Lock order is always
  room lock, then a connection's queue lock; sends happen outside the room lock,
and only one thread at a time writes to a socket (``sending``), which keeps each
client's bytes in queue order.

Closing is orderly: the writer sends what is queued, then ``shutdown(SHUT_WR)``
(our FIN); the reader keeps reading until the peer's FIN, so ``close()`` never
finds unread data (which would make the kernel send RST instead of FIN).
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from . import protocol as p
from .protocol import DEFAULT_HOST, DEFAULT_PORT, LineSplitter, encode_line
from .protocol.backlog import Backlog, BacklogLimits
from .room import ChatRoom, Disconnect, Held, Released, RoomConfig, Send, SendLines, SetNick
from .timeline import Timeline, TimelineEvent

RECV_BYTES = 65536
SEND_ROUNDS = 8  # a reader sends what others queued meanwhile at most this often, then hands over
# Relaying (ChatServer._relay): when one reader sends for the others.
RELAY_LINES = 4  # a reader whose recv brought at most this many lines may relay
RELAY_ROUNDS = 64  # at most this many rounds: the relaying reader's own client is not read meanwhile
# The server is busy, and for BUSY_FOR seconds every reader sends its own lines, when a
# relaying round's wall time passes RELAY_WAIT times its CPU time plus RELAY_SLACK (the
# reader waited for the GIL), or when a recv brings more than BUSY_LINES lines (they
# waited for their reader).
RELAY_WAIT = 10.0
RELAY_SLACK = 0.0005  # seconds
BUSY_LINES = 16
BUSY_FOR = 0.1  # seconds


class _Connection:
    """One client's socket, its outgoing queue and its two threads."""

    def __init__(self, client_id: int, sock: socket.socket, peer: tuple[str, int], server: ChatServer):
        self.id = client_id
        self.sock = sock
        self.peer = peer
        self.server = server
        self.splitter = LineSplitter()
        self.queue: deque[bytes] = deque()  # blocks of whole lines
        self.queued_lines = 0
        self.queued_bytes = 0
        self.writing_lines = self.writing_bytes = 0  # taken by the writer, in a sendall that may block
        self.backlog = Backlog(server.backlog_limits)
        self.soft_lines, self.soft_bytes = server.backlog_limits.soft_lines, server.backlog_limits.soft_bytes
        # One lock guards the queue and its flags; the writer waits on ``ready`` (built on
        # it).  The hot paths take the bare lock: a Condition's ``with`` costs a Python call.
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.sending = False  # a thread is writing to the socket: nobody else may
        self.finishing = False  # close once the queue is sent
        self.finishing_since: float | None = None
        self.dropped: str | None = None  # why we cut the connection, if we did
        self.how_left: str | None = None
        self.reader = threading.Thread(target=self._read_loop, name=f"chat-reader-{client_id}", daemon=True)
        self.writer = threading.Thread(target=self._write_loop, name=f"chat-writer-{client_id}", daemon=True)

    # -- called by any thread, with the server lock held ---------------------------

    def enqueue(self, data: bytes, lines: int = 1, wake: bool = True) -> None:
        """Queue a block of ``lines`` whole lines; drop the client if it is too far behind
        (:mod:`tcpchatx.protocol.backlog`).

        ``wake=False``: the caller will call :meth:`send_now` (after releasing the
        room lock), so the writer thread need not wake up."""
        with self.lock:
            if self.finishing or self.dropped:
                return
            self.queue.append(data)
            self.queued_lines += lines
            self.queued_bytes += len(data)
            waiting = self.queued_lines + self.writing_lines
            # The backlog rule is asked only past a soft limit or while behind: this runs
            # once per recipient of every line, and below both limits its answer is "fine".
            if (self.backlog.over_since is None and waiting <= self.soft_lines
                    and self.queued_bytes + self.writing_bytes <= self.soft_bytes) \
                    or not self._too_far_behind(time.monotonic()):
                if wake and len(self.queue) == 1 and not self.sending:
                    self.ready.notify()
                return
        self.drop(p.too_slow_reason(waiting))

    def wake_writer(self) -> None:
        """Let the writer send what is queued (a relaying reader that stopped early)."""
        with self.lock:
            if self.queue and not self.sending:
                self.ready.notify()

    def too_far_behind(self, now: float) -> bool:
        """Has the client been behind for too long?  (The janitor asks.)"""
        with self.lock:
            return not self.dropped and self._too_far_behind(now)

    def _too_far_behind(self, now: float) -> bool:
        """Ask the backlog rule about what waits for this client: its queue and what the
        writer is still sending.  Records when it falls behind and when it catches up.
        Caller holds ``self.lock``."""
        was_behind = self.backlog.over_since is not None
        lines, size = self.queued_lines + self.writing_lines, self.queued_bytes + self.writing_bytes
        too_far = self.backlog.too_far_behind(lines, size, now)
        if not was_behind and self.backlog.over_since is not None:
            self.server.timeline.record(
                "behind", client=self.id, peer=self.peer,
                detail=f"{lines} lines, {size} bytes waiting: cut off unless it catches up "
                       f"within {self.backlog.limits.grace:g} s",
            )
        elif was_behind and self.backlog.over_since is None:
            self.server.timeline.record("caught-up", client=self.id, peer=self.peer,
                                        detail=f"{lines} lines, {size} bytes waiting")
        return too_far

    def send_now(self) -> tuple[int, bool]:
        """Write the queue from the calling thread, as far as the kernel takes it at once.

        Called by a reader after its recv's lines are queued, without the room lock.
        It never waits: what the socket buffer has no room for goes back to the head
        of the queue, for the writer thread.  Lines other readers queued while this
        one was sending (they found ``sending`` set) go in the next round, from this
        thread: handing them to the writer would cost a thread wake-up each time.
        Returns (bytes sent, all of them?)."""
        with self.lock:
            if self.sending or not self.queue or self.dropped:
                return 0, False  # whoever is sending will see the queue when done
            self.sending = True
            data = self._take()
        total = rounds = 0
        while True:
            try:
                sent = self.sock.send(data, socket.MSG_DONTWAIT)
            except OSError:  # full (EAGAIN) or broken: the writer retries and reports
                sent = 0
            total += sent
            rounds += 1
            with self.lock:  # one lock per round: what was sent, what is next, or done
                whole = sent == len(data)
                if whole and self.queue and not self.dropped and rounds < SEND_ROUNDS:
                    data = self._take()  # queued meanwhile: send it too
                    continue
                if not whole and not self.dropped:
                    rest = data[sent:]
                    self.queue.appendleft(rest)
                    self.queued_lines += rest.count(b"\n")
                    self.queued_bytes += len(rest)
                self.sending = False  # rounds used up, or the kernel took what it could
                if self.queue or self.finishing:
                    self.ready.notify()  # the writer sends the rest
                if self.backlog.over_since is not None:  # it may have caught up (never worse)
                    self._too_far_behind(time.monotonic())
                return total, whole and not self.queue

    def _take(self) -> bytes:
        """Everything queued, as one block to send.  Caller holds ``self.lock``."""
        data = self.queue[0] if len(self.queue) == 1 else b"".join(self.queue)
        self.queue.clear()
        self.queued_lines = self.queued_bytes = 0
        return data

    def finish(self) -> None:
        """Send what is queued, then our FIN."""
        with self.lock:
            if not self.finishing:
                self.finishing = True
                self.finishing_since = time.monotonic()
                self.ready.notify()

    def drop(self, reason: str) -> None:
        """Cut the connection now: both threads wake up with an error or EOF."""
        with self.lock:
            if self.dropped:
                return
            self.dropped = reason
            self.queue.clear()
            self.ready.notify()
        self.server.timeline.record("dropped", client=self.id, peer=self.peer, detail=reason)
        try:  # best effort: the line cannot block, it is sent only if there is room
            self.sock.send(encode_line(p.disconnected_line(reason)), socket.MSG_DONTWAIT)
        except (OSError, AttributeError):
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- threads ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self.lock:
                while not self.dropped and (self.sending or (not self.queue and not self.finishing)):
                    self.ready.wait()
                if self.dropped:
                    return
                lines = self.queued_lines
                data = self._take() if self.queue else b""
                self.writing_lines, self.writing_bytes = lines, len(data)  # still behind, if it was
                last = self.finishing
                self.sending = bool(data)
            if data:
                try:
                    self.sock.sendall(data)
                except OSError as error:
                    self.server.timeline.record("sent", client=self.id, detail=f"send failed: {error}")
                    return
                with self.lock:
                    self.sending = False
                    self.writing_lines = self.writing_bytes = 0
                    if self.backlog.over_since is not None:
                        self._too_far_behind(time.monotonic())
                if self.server.record_lines:
                    self.server.timeline.record("sent", client=self.id, detail=f"{lines} lines, {len(data)} bytes")
            if last:
                with self.lock:
                    if self.queue:  # lines queued while we were sending: send them first
                        continue
                self.server.timeline.record("closing", client=self.id, peer=self.peer, detail="FIN sent")
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return

    def _read_loop(self) -> None:
        server = self.server
        how = p.HowLeft.CLOSED
        try:
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    break
                if self.finishing:
                    continue  # we said goodbye: read (and ignore) until the peer's FIN
                events = self.splitter.feed(data)
                if events:
                    server._handle_lines(self, events)
        except ConnectionResetError:
            how = p.HowLeft.RESET
        except OSError as error:
            how = p.how_left(p.HowLeft.CONNECTION_ERROR, error.strerror or str(error))
        if self.dropped:
            how = p.how_left(p.HowLeft.DROPPED, self.dropped)
        server._client_gone(self, how)
        self.writer.join()
        self.sock.close()
        server._forget(self)


class ChatServer:
    """A threaded TCP chat server.

    >>> with ChatServer("127.0.0.1", 0) as server:   # port 0: the OS picks a free port
    ...     print(server.port)                       # doctest: +SKIP

    ``start()`` returns once the socket is listening; ``stop()`` returns once
    every thread has been joined.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        config: RoomConfig | None = None,
        queue_lines: int = 10_000,
        queue_bytes: int = 256 * 1024,
        queue_hard_bytes: int | None = None,
        queue_grace: float = 2.0,
        close_timeout: float = 10.0,
        max_events: int = 100_000,
        record_lines: bool = True,
        on_event: Callable[[TimelineEvent], None] | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.room = ChatRoom(config or RoomConfig())
        # A client's queue may pass queue_lines / queue_bytes for queue_grace seconds,
        # and never pass queue_hard_bytes (16 x queue_bytes unless given).
        self.backlog_limits = BacklogLimits(queue_lines, queue_bytes,
                                            queue_hard_bytes or 16 * queue_bytes, queue_grace)
        self.close_timeout = close_timeout
        self.record_lines = record_lines
        self.timeline = Timeline(max_events, on_event)
        self._lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._next_id = 1
        # Relaying (_relay), guarded by self._lock: a reader is relaying; it still takes
        # other readers' lines; the clients they queued lines for; until when every
        # reader sends its own.
        self._relaying = self._relay_open = False
        self._relay_pending: dict[_Connection, None] = {}
        self._busy_until = 0.0
        self.relay_rounds = 0  # rounds a reader sent for others (how often relaying paid off)
        self._listener: socket.socket | None = None
        self._waker_r: socket.socket | None = None
        self._waker_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._janitor_wake = threading.Event()  # a line was held: its release may be due sooner
        self._threads: list[threading.Thread] = []
        self.address: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self.address is None:
            raise RuntimeError("the server is not started")
        return self.address[1]

    def start(self) -> ChatServer:
        """Bind, listen, start the acceptor; returns once connections are accepted."""
        if self._listener is not None:
            raise RuntimeError("the server is already running")
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            self.host, self.requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        listener = socket.socket(family, kind, proto)
        if os.name != "nt":  # re-running a notebook cell must not fail with "address in use"
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(sockaddr)
            listener.listen(128)
        except OSError as error:
            listener.close()
            raise OSError(
                error.errno,
                f"cannot listen on {self.host}:{self.requested_port}: {error.strerror}. "
                "Is another server running there? Try another --port, or 0 for any free port.",
            ) from None
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._waker_r, self._waker_w = socket.socketpair()
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._accept_loop, name="chat-acceptor", daemon=True),
            threading.Thread(target=self._janitor_loop, name="chat-janitor", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.timeline.record("listening", peer=self.address, detail=f"{self.host}:{self.port}")
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Say goodbye to every client, close orderly, join every thread.

        Clients get ``timeout`` seconds to answer our FIN with theirs; the rest are cut.
        """
        if self._listener is None:
            return
        self._stopping.set()
        self._janitor_wake.set()
        assert self._waker_w is not None
        self._waker_w.send(b"x")
        for thread in self._threads:
            thread.join()
        self._listener.close()
        with self._lock:
            self._apply(self.room.shutdown())
            connections = list(self._connections.values())
        for conn in connections:
            conn.finish()
        deadline = time.monotonic() + timeout
        for conn in connections:
            conn.reader.join(max(0.0, deadline - time.monotonic()))
        for conn in connections:
            if conn.reader.is_alive():
                conn.drop(p.SERVER_STOPPED)
                conn.reader.join()
        for sock in (self._waker_r, self._waker_w):
            if sock is not None:
                sock.close()
        self._listener = None
        self.timeline.record("stopped")

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ queries

    def timeline_events(self) -> list[TimelineEvent]:
        return self.timeline.events()

    def online(self) -> list[str]:
        with self._lock:
            return self.room.online()

    def client_count(self) -> int:
        with self._lock:
            return len(self._connections)

    # ------------------------------------------------------------------ threads

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._waker_r is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._waker_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._listener and not self._stopping.is_set():
                        self._accept_one()

    def _accept_one(self) -> None:
        assert self._listener is not None
        try:
            sock, peer = self._listener.accept()
        except OSError:
            return  # e.g. the peer reset before we accepted
        # Our writer already gathers queued lines into one send; Nagle would only add
        # a delayed-ACK wait (~40 ms on Linux) to the fan-out of the next message.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            conn = _Connection(self._next_id, sock, peer[:2], self)
            self._next_id += 1
            self._connections[conn.id] = conn
            self.timeline.record("accepted", client=conn.id, peer=conn.peer)
            conn.writer.start()
            conn.reader.start()
            self._apply(self.room.connect(conn.id, time.monotonic()))

    def _janitor_loop(self) -> None:
        """Timeouts twice a second, and each held line as soon as flood control lets it go."""
        while not self._stopping.is_set():
            with self._lock:
                release_at = self.room.next_release(time.monotonic())
            wait = 0.5 if release_at is None else min(0.5, max(0.0, release_at - time.monotonic()))
            self._janitor_wake.wait(wait)
            self._janitor_wake.clear()
            if self._stopping.is_set():
                break
            now = time.monotonic()
            with self._lock:
                self._apply(self.room.tick(now))
                connections = list(self._connections.values())
            for conn in connections:
                if conn.finishing_since is not None and now - conn.finishing_since > self.close_timeout:
                    conn.drop(p.no_fin_reason(self.close_timeout))
                elif conn.too_far_behind(now):
                    conn.drop(p.too_slow_reason(conn.queued_lines))

    # ------------------------------------------------------------------ called by readers

    def _handle_lines(self, conn: _Connection, events) -> None:
        """Feed one recv()'s lines to the room, then write what they produced.

        Lines for the same recipients are gathered into one block (a burst of 15
        broadcast lines to 99 clients: 99 queue operations, not 1485), each client's
        share is queued once under the room lock, and written after it is released."""
        now = time.monotonic()
        outbox: list[list] = []
        with self._lock:
            if self.record_lines:  # one event per line, all at the moment of this recv
                self.timeline.record_each("line-received", [getattr(event, "text", type(event).__name__)
                                                            for event in events],
                                          client=conn.id, nick=self.room.nick_of(conn.id))
            self._apply(self.room.receive_all(conn.id, events, now), outbox)
            written = self._flush(outbox, wake=False)
            if not written:
                return
            quiet = len(events) <= RELAY_LINES
            if len(events) > BUSY_LINES:  # lines waited for this reader: the server is behind
                self._busy_until = now + BUSY_FOR
            elif quiet and self._relay_open:  # a reader relays: it sends these in its next round
                self._relay_pending.update(dict.fromkeys(written))
                return
            relaying = quiet and not self._relaying and now >= self._busy_until
            if relaying:
                self._relaying = self._relay_open = True
        self._send_each(written, conn)
        if relaying:
            self._relay()

    def _relay(self) -> None:
        """Send, in rounds, what other readers queue while this one sends, until a round
        finds nothing new.  Called by the reader that started relaying.

        Each round takes everything queued since the last one: one ``send`` per client,
        however many readers queued lines for it.  Relaying stops taking new work (the
        readers then send their own) after ``RELAY_ROUNDS`` rounds, for this reader's own
        client is not read meanwhile, and when a round took far longer than its CPU
        time: that reader waited for the GIL, so the other threads are busy, and many
        readers sending at once beat one reader sending for all (so does a recv that
        brings many lines: see ``_handle_lines``).  Every change of these
        flags happens under the room lock, where readers look at them: a reader either
        leaves its lines to a round that is still to come, or sends them itself."""
        rounds = 0
        try:
            while True:
                with self._lock:
                    written, self._relay_pending = list(self._relay_pending), {}
                    if not written:
                        self._relaying = self._relay_open = False
                        return
                    rounds += 1
                    self.relay_rounds += 1
                    if rounds >= RELAY_ROUNDS:
                        self._relay_open = False  # a last round: later lines are sent by their readers
                wall, cpu = time.perf_counter(), time.thread_time()
                self._send_each(written, None)
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                if wall > RELAY_WAIT * cpu + RELAY_SLACK:
                    with self._lock:
                        self._relay_open = False
                        self._busy_until = time.monotonic() + BUSY_FOR
        finally:
            with self._lock:
                if self._relaying:  # an error on the way: hand what is left to the writers
                    self._relaying = self._relay_open = False
                    written, self._relay_pending = list(self._relay_pending), {}
                else:
                    written = []
            for recipient in written:
                recipient.wake_writer()

    def _send_each(self, written: list[_Connection], reader: _Connection | None) -> None:
        """Write each client's queue now (:meth:`_Connection.send_now`): a reader's own
        fan-out, or (``reader`` None) a relaying round."""
        sends = [recipient.send_now() for recipient in written]
        if self.record_lines:
            self._record_fan_out(written, sends, reader)

    def _record_fan_out(self, written: list[_Connection], sends: list[tuple[int, bool]],
                        reader: _Connection | None) -> None:
        """One "sent" event for a whole fan-out, or a relaying round (not one per recipient)."""
        reached, total, left = [], 0, 0  # one pass: this runs once per line, over every recipient
        for recipient, (sent, whole) in zip(written, sends):
            if sent:
                reached.append(recipient.id)
                total += sent
            left += not whole
        detail = f"{total} bytes to {len(reached)} clients at once"
        if reader is None:
            detail += ", relayed for other readers"
        if left:
            detail += f"; {left} could not take it all (their writers send the rest)"
        nick = self.room.nick_of(reader.id) if reader is not None else None
        self.timeline.record("sent", nick=nick, detail=detail, recipients=tuple(reached))

    def _client_gone(self, conn: _Connection, how: str) -> None:
        with self._lock:
            nick = self.room.nick_of(conn.id)
            self._apply(self.room.disconnect(conn.id, how))
            if conn.how_left is None:
                conn.how_left = how
                self.timeline.record("left", client=conn.id, nick=nick, peer=conn.peer, detail=how)
        conn.finish()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.pop(conn.id, None)

    # ------------------------------------------------------------------ actions

    def _flush(self, outbox: list[list], wake: bool = True) -> list[_Connection]:
        """Queue each client's gathered lines as one block; return those clients.

        ``outbox`` is a list of [recipients, blocks, lines in them] runs, in order.
        Caller holds ``self._lock``."""
        share: dict[int, list[bytes]] = {}
        counts: dict[int, int] = {}
        for recipients, blocks, lines in outbox:
            block = b"".join(blocks)
            for client in recipients:
                share.setdefault(client, []).append(block)
                counts[client] = counts.get(client, 0) + lines
        outbox.clear()
        written = []
        for client, blocks in share.items():
            conn = self._connections.get(client)
            if conn is not None:
                conn.enqueue(blocks[0] if len(blocks) == 1 else b"".join(blocks), counts[client], wake)
                written.append(conn)
        return written

    def _apply(self, actions, outbox: list | None = None) -> None:
        """Carry out the room's actions.  Caller holds ``self._lock``.

        With an ``outbox``, lines are gathered in runs of the same recipients for
        :meth:`_flush`; it is flushed before a disconnect, so a goodbye line still
        goes out first."""
        for action in actions:
            if isinstance(action, Send | SendLines):
                if not action.to:
                    continue
                lines = [action.line] if isinstance(action, Send) else action.lines
                data = encode_line("\n".join(lines))  # one line, or a run of them
                if self.record_lines:
                    kind = action.kind.value
                    self.timeline.record_each("queued", [f"{kind}: {line}" for line in lines],
                                              client=action.sender, recipients=action.to)
                if outbox is None:
                    for client in action.to:
                        conn = self._connections.get(client)
                        if conn is not None:
                            conn.enqueue(data, len(lines))
                elif outbox and outbox[-1][0] == action.to:
                    outbox[-1][1].append(data)
                    outbox[-1][2] += len(lines)
                else:
                    outbox.append([action.to, [data], len(lines)])
            elif isinstance(action, Held):
                self.timeline.record("held", client=action.client, nick=self.room.nick_of(action.client),
                                     detail=f"{action.waiting} waiting: {action.text}")
                if action.waiting == 1:  # the first held line: the janitor's next wake may be too late
                    self._janitor_wake.set()
            elif isinstance(action, Released):
                self.timeline.record("released", client=action.client, nick=self.room.nick_of(action.client),
                                     detail=f"{action.waiting} still waiting: {action.text}")
            elif isinstance(action, SetNick):
                self.timeline.record(
                    "nick-set", client=action.client, nick=action.nick,
                    detail=f"was {action.old}" if action.old else "",
                )
            elif isinstance(action, Disconnect):
                if outbox:
                    self._flush(outbox)
                conn = self._connections.get(action.client)
                nick = self.room.nick_of(action.client)
                self._apply(self.room.disconnect(action.client, action.how))
                if conn is not None:
                    if conn.how_left is None:
                        conn.how_left = action.how
                        self.timeline.record(
                            "left", client=conn.id, nick=nick, peer=conn.peer, detail=action.how
                        )
                    conn.finish()
