"""The router as a program: each frame in on one veth end, out of the other, when the
script says (delay, jitter, loss, and named drops, holds and duplicates).

The kernel here has no netem, and an ordinary user cannot load it, so the lab's
router forwards in user space: an AF_PACKET socket on each of its veth ends (``c0``,
``s0``) receives every frame, :mod:`tcpchatx.netlab.script` decides when to deliver
it, and the frame leaves by the other end - as a router would send it: addressed to
the next host's MAC, from the router's own, one hop less to live.  The kernel's own
forwarding is switched off meanwhile (``ip_forward=0``), or each packet would arrive
twice.  A rate limit still works: frames the relay sends pass the outgoing end's
``tc`` queue (:func:`tcpchatx.netlab.impair.bottleneck`), and a full queue drops them.

The relay runs as a process of its own (``python -m tcpchatx.netlab.relay SCRIPT``),
so that its loop shares no interpreter lock with the chat it carries.  It reads
commands on stdin, one JSON object per line, and answers on stdout:

- ``{"set": SCRIPT}``: follow a new script from now on (its counts start again);
- ``{"break": true}`` / ``{"heal": true}``: drop everything both ways, until healed;
- ``{"report": true}``: say what it has done so far (:func:`Forwarder.report`).

End of input stops it, after a last report.  :class:`Relay` is the other end of that
conversation, for the lab's stories.
"""

from __future__ import annotations

import heapq
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .script import DIRECTIONS, Direction, parse
from .topology import CLIENT, SERVER, Side

ETH_P_ALL = 0x0003
ETHERTYPE_IPV4 = b"\x08\x00"
PACKET_OUTGOING = 4  # the sll_pkttype of a frame this host sent
PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h: don't hand us our own frames back
PACKET_STATISTICS = 6
SOL_PACKET = 263
BATCH = 256  # frames read from one socket before looking at the other and the clock


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


@dataclass
class Port:
    """One of the router's veth ends, and where frames leaving by it go."""

    side: Side
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # the kernel caps it
        self.sock.bind((self.side.router_link, 0))
        self.sock.setblocking(False)
        # a frame leaving here: to the host's MAC, from ours, IPv4
        self.header = mac_bytes(self.side.host_mac) + mac_bytes(self.side.router_mac) + ETHERTYPE_IPV4
        self.subnet = socket.inet_aton(self.side.address)[:3]  # a /24
        self.own_address = socket.inet_aton(self.side.router_address)

    def socket_drops(self) -> int:
        """Frames the kernel could not queue for us (our receive buffer was full)."""
        _packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return drops


def routed(frame: bytes) -> bytearray | None:
    """The IPv4 packet in *frame* with one hop less to live (and its checksum updated,
    RFC 1624), or None if it has no hop left."""
    packet = bytearray(frame[14:])
    if packet[8] <= 1:
        return None
    packet[8] -= 1
    checksum = struct.unpack_from("!H", packet, 10)[0] + 0x0100  # TTL is the high byte of its word
    struct.pack_into("!H", packet, 10, (checksum & 0xFFFF) + (checksum >> 16))
    return packet


class Forwarder:
    """The relay's loop and its counts: frames in from each port, out of the other."""

    def __init__(self, script: dict) -> None:
        self.ports = {"to_server": Port(SERVER), "to_client": Port(CLIENT)}  # the port a direction leaves by
        self.arriving = {"to_server": self.ports["to_client"], "to_client": self.ports["to_server"]}
        self.links: dict[str, Direction] = parse(script)
        self.broken = False
        self.pending: list[tuple[float, int, str, bytes]] = []  # (release, order, direction, packet)
        self.order = 0
        self.counts = {name: {"received": 0, "forwarded": 0, "lost": 0, "broken": 0, "duplicated": 0,
                              "queue_full": 0} for name in DIRECTIONS}
        self.log: dict[str, list[dict]] = {name: [] for name in DIRECTIONS}
        self.started = time.monotonic()

    def set_script(self, script: dict) -> None:
        for name, link in self.links.items():
            self.log[name] += link.log  # keep what the old script did
        self.links = parse(script)

    def receive(self, direction: str) -> None:
        """Everything waiting on the port *direction*'s frames arrive by."""
        port = self.arriving[direction]
        for _ in range(BATCH):
            try:
                frame, address = port.sock.recvfrom(65536)
            except BlockingIOError:
                return
            if address[2] == PACKET_OUTGOING or frame[12:14] != ETHERTYPE_IPV4:
                continue  # ARP and the like: the router's kernel answers for its own addresses
            destination = frame[30:34]
            if destination[:3] != self.ports[direction].subnet or destination == port.own_address:
                continue  # for the router itself (or nowhere we route): its kernel's business
            self._forward(direction, frame, time.monotonic())

    def _forward(self, direction: str, frame: bytes, now: float) -> None:
        counts = self.counts[direction]
        counts["received"] += 1
        if self.broken:
            counts["broken"] += 1
            return
        link = self.links[direction]
        times = link.decide(frame, now)
        if not times:
            counts["lost"] += 1
            return
        counts["duplicated"] += len(times) - 1
        packet = routed(frame)
        if packet is None:
            return
        for release in times:
            if release <= now and not self.pending:
                self._send(direction, packet)
            else:
                self.order += 1
                heapq.heappush(self.pending, (release, self.order, direction, packet))

    def send_due(self) -> float | None:
        """Send every frame whose time has come; return the seconds until the next one."""
        while self.pending:
            release, _, direction, packet = self.pending[0]
            wait = release - time.monotonic()
            if wait > 0:
                return wait
            heapq.heappop(self.pending)
            self._send(direction, packet)
        return None

    def _send(self, direction: str, packet: bytes) -> None:
        port = self.ports[direction]
        try:
            port.sock.send(port.header + packet)
            self.counts[direction]["forwarded"] += 1
        except (BlockingIOError, OSError) as exc:  # ENOBUFS: the link's tc queue is full (a tail drop)
            if isinstance(exc, BlockingIOError) or exc.errno == 105:
                self.counts[direction]["queue_full"] += 1
            else:
                raise

    def report(self) -> dict[str, Any]:
        """What the relay has done: counts per direction, and every loss, hold and
        duplicate it made on purpose, with its time since the relay started."""
        events = {}
        for name in DIRECTIONS:
            events[name] = [{**entry, "at": round(entry["at"] - self.started, 6)}
                            for entry in self.log[name] + self.links[name].log]
        used = os.times()
        return {"engine": "relay", "counts": self.counts, "events": events, "still_delayed": len(self.pending),
                "cpu_seconds": {"user": used.user, "system": used.system},
                "socket_drops": sum(port.socket_drops() for port in self.ports.values())}


def serve(script: dict, control: int = 0, out=sys.stdout) -> None:
    """Run the relay until *control* (a file descriptor) ends; see the module's docstring."""
    forwarder = Forwarder(script)
    sockets = {port.sock.fileno(): name for name, port in forwarder.arriving.items()}
    buffered = b""
    say = lambda message: (out.write(json.dumps(message) + "\n"), out.flush())  # noqa: E731
    say({"ready": True})
    while True:
        readable, _, _ = select.select([*sockets, control], [], [], forwarder.send_due())
        for fd in readable:
            if fd != control:
                forwarder.receive(sockets[fd])
                continue
            chunk = os.read(control, 65536)
            if not chunk:
                forwarder.send_due()
                say(forwarder.report())
                return
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                say(_obey(forwarder, json.loads(line)))


def _obey(forwarder: Forwarder, command: dict) -> dict:
    if "set" in command:
        forwarder.set_script(command["set"])
    elif command.get("break"):
        forwarder.broken = True
    elif command.get("heal"):
        forwarder.broken = False
    return forwarder.report() if command.get("report") else {"ok": True}


class RelayError(RuntimeError):
    """The relay did not start, or stopped answering; the message has what it said."""


class Relay:
    """The relay, started in the router's namespace (this process's), with the kernel's
    own forwarding off while it runs::

        with Relay({"to_server": {"delay_ms": 25}}) as relay:
            ...
            relay.break_path(); ...; relay.heal_path()
        relay.final   # its last report
    """

    def __init__(self, script: dict | None = None) -> None:
        parse(script or {})  # a bad script fails here, with its reason, not in the child
        self.script = script or {}
        self.final: dict[str, Any] | None = None

    def __enter__(self) -> Relay:
        _set_forwarding(False)
        self.process = subprocess.Popen([sys.executable, "-m", "tcpchatx.netlab.relay", json.dumps(self.script)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, bufsize=1)
        self._answer()  # {"ready": true}
        return self

    def _ask(self, command: dict) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise RelayError(f"the relay stopped ({self.process.returncode}): {self.process.stderr.read()[-2000:]}")
        return json.loads(line)

    def set(self, script: dict) -> None:
        parse(script)
        self._ask({"set": script})

    def break_path(self) -> None:
        self._ask({"break": True})

    def heal_path(self) -> None:
        self._ask({"heal": True})

    def report(self) -> dict:
        return self._ask({"report": True})

    def __exit__(self, *exc_info) -> None:
        try:
            self.process.stdin.close()
            self.final = self._answer()
            self.process.wait(10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            _set_forwarding(True)


def _set_forwarding(on: bool) -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as forwarding:
        forwarding.write("1" if on else "0")


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
