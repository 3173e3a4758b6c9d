"""Build the benchmark inputs: a real chat session, replicated into a million packets.

    python -m benchmarks.make_capture            # prints the paths (cached after the first run)

Theory of operation
-------------------
1. **One real session.**  A :class:`~tcpchatx.server.ChatServer` and a few
   :class:`~tcpchatx.client.ChatClient`\\ s chat on loopback while
   :class:`~tcpchatx.capture.LiveCapture` records them: joins, chat messages that the
   server broadcasts, private messages, a nickname change, quits.  Every packet in
   the benchmark is a packet the kernel really sent.  Nicknames end in the
   placeholder ``QQQQ`` so that copies can be told apart (step 2).
2. **Copies.**  The session is copied until the file holds ``--packets`` packets.
   Copy *r* gets its own client ports, its own random ISNs (every sequence and
   acknowledgement number of a direction shifted by one random 32-bit number, so
   some copies wrap around 2^32), its own start time (copies overlap, so the file
   interleaves many conversations, as a class stress test does), and its own
   nicknames (``QQQQ`` becomes four hex digits of *r*: same length, so sequence
   numbers stay right).  Checksums are not recomputed (loopback captures have
   offloaded checksums anyway, and no reader here checks them).
3. **Two formats.**  The same packets are written as pcap (microseconds) and as
   pcapng (Enhanced Packet Blocks, nanoseconds, as dumpcap writes them).

The files are cached in ``$TCPCHATX_BENCH_DIR`` (default: ``tcpchatx-benchmarks``
in the system's temporary directory) and rebuilt only when missing.
"""

from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from tcpchatx import pcapng_format
from tcpchatx.tcp_flags import ACK

PLACEHOLDER = b"QQQQ"
SESSION_FILE = "session.pcapng"
DEFAULT_PACKETS = 1_000_000
SEED = 20240611


def bench_dir() -> Path:
    path = Path(os.environ.get("TCPCHATX_BENCH_DIR") or Path(tempfile.gettempdir()) / "tcpchatx-benchmarks")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- 1. the session


def record_session(out: Path, clients: int = 5, rounds: int = 12) -> Path:
    """Run a real chat on loopback and capture it (needs capture permission)."""
    from tcpchatx.capture import LiveCapture
    from tcpchatx.client import ChatClient
    from tcpchatx.protocol import Kind
    from tcpchatx.room import RoomConfig
    from tcpchatx.server import ChatServer

    server = ChatServer("127.0.0.1", 0, config=RoomConfig(flood_control=False)).start()
    try:
        with LiveCapture(server.port, out, backend="dumpcap"):
            people = []
            for i in range(clients):
                people.append(ChatClient.connect("127.0.0.1", server.port, f"u{i}{PLACEHOLDER.decode()}",
                                                 nodelay=True))
                for earlier in people[:-1]:  # everyone sees the join notice
                    earlier.receive_until(lambda line: "joined" in line.text)

            def everyone_gets(sender, kind):
                for other in people:
                    if other is not sender:
                        other.receive_until(lambda line: line.kind is kind)

            for k in range(rounds):
                for i, person in enumerate(people):
                    person.send(f"round {k}: hello everyone, this is message {i} of the round")
                    everyone_gets(person, Kind.CHAT)
                sender, target = people[k % clients], people[(k + 1) % clients]
                sender.send(f"/msg {target.nick or f'u{(k + 1) % clients}QQQQ'} psst {k}")
                target.receive_until(lambda line: line.kind is Kind.PRIVATE)
            people[0].send(f"/nick v0{PLACEHOLDER.decode()}")
            for person in people:
                person.receive_until(lambda line: "now known as" in line.text)
            for person in people:
                person.quit()
            deadline = time.monotonic() + 5
            while server.client_count() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # the last FIN/ACKs
    finally:
        server.stop()
    return out


# --------------------------------------------------------------------------- 2. the copies


def _session_packets(path: Path):
    """The session's frames as bytes, with the tracker's view of each (conn, direction)."""
    from tcpchatx.analysis import analyze

    a = analyze(path)
    p, t = a.packets, a.tracking
    keep = np.flatnonzero(t.conn >= 0)
    buf = p.buffer
    frames = [bytes(buf[int(p.index.data_offset[i]): int(p.index.data_offset[i] + p.index.caplen[i])])
              for i in keep]
    start = p.index.data_offset[keep]
    return {
        "frames": frames,
        "ticks": p.ts_ticks[keep] * (10**9 // p.ts_tps[keep]),  # nanoseconds
        "conn": t.conn[keep].astype(np.int64),
        "direction": t.direction[keep].astype(np.int64),
        "tcp": p.tcp_header_offsets(keep) - start,  # TCP header offset inside the frame
        "is_ack": (p.flags[keep] & ACK) != 0,
        "server_port": a.chat.server[1],
        "n_conn": len(a.connections),
    }


def build_copies(session: Path, n_packets: int, seed: int = SEED):
    """Frames of enough session copies for ``n_packets``, merged in time order.

    Returns (one bytes object holding every frame, frame lengths, nanosecond times).
    """
    s = _session_packets(session)
    per = len(s["frames"])
    copies = -(-n_packets // per)
    rng = np.random.default_rng(seed)
    t0 = int(s["ticks"][0])
    span = int(s["ticks"][-1]) - t0
    starts = np.arange(copies, dtype=np.int64) * max(span // 16, 1)  # ~16 copies at once
    ticks = (s["ticks"][None, :] - t0 + starts[:, None] + 1_700_000_000 * 10**9).ravel()
    copy_of = np.repeat(np.arange(copies), per)
    j = np.tile(np.arange(per), copies)
    order = np.lexsort((j, copy_of, ticks))[:n_packets]
    copy_of, j, ticks = copy_of[order], j[order], ticks[order]

    lengths = np.array([len(f) for f in s["frames"]], dtype=np.int64)[j]
    frames = s["frames"]
    blob = bytearray(b"".join([frames[k] for k in j.tolist()]))
    data = np.frombuffer(blob, dtype=np.uint8)
    offset = np.r_[0, np.cumsum(lengths)[:-1]]

    # Ports: every (copy, connection) gets its own client port.
    n_conn = s["n_conn"]
    conn = s["conn"][j]
    direction = s["direction"][j]
    port_pool = np.array([p for p in range(1024, 65536) if p != s["server_port"]], dtype=np.int64)
    client_port = port_pool[(copy_of * n_conn + conn) % len(port_pool)]
    tcp = offset + s["tcp"][j]
    port_field = tcp + np.where(direction == 0, 0, 2)  # the client's port: sport or dport
    _put_u16(data, port_field, client_port)
    # Sequence numbers: one random shift per (copy, connection, direction).
    shift = rng.integers(0, 2**32, size=(copies, n_conn, 2), dtype=np.int64)
    mine = shift[copy_of, conn, direction]
    theirs = shift[copy_of, conn, 1 - direction]
    _put_u32(data, tcp + 4, (_get_u32(data, tcp + 4) + mine) & 0xFFFFFFFF)
    acked = s["is_ack"][j]
    _put_u32(data, tcp[acked] + 8, (_get_u32(data, tcp[acked] + 8) + theirs[acked]) & 0xFFFFFFFF)
    # Nicknames: QQQQ -> four hex digits of the copy number.
    hits = [(k, pos) for k, f in enumerate(frames) for pos in _find_all(f, PLACEHOLDER)]
    if hits:
        hit_frame = np.array([k for k, _ in hits])
        hit_pos = np.array([pos for _, pos in hits])
        per_frame = np.bincount(hit_frame, minlength=per)
        first_hit = np.r_[0, np.cumsum(per_frame)[:-1]]
        count = per_frame[j]
        rows = np.repeat(np.arange(len(j)), count)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
        where = offset[rows] + hit_pos[first_hit[j[rows]] + within]
        digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
        for d in range(4):
            data[where + d] = digits[(copy_of[rows] >> (4 * (3 - d))) & 0xF]
    del data
    return bytes(blob), lengths, ticks


def _find_all(data: bytes, needle: bytes):
    pos = data.find(needle)
    while pos >= 0:
        yield pos
        pos = data.find(needle, pos + 1)


def _get_u32(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    b = data[pos[:, None] + np.arange(4)].astype(np.int64)
    return b[:, 0] << 24 | b[:, 1] << 16 | b[:, 2] << 8 | b[:, 3]


def _put_u32(data: np.ndarray, pos: np.ndarray, value: np.ndarray) -> None:
    for k in range(4):
        data[pos + k] = (value >> (8 * (3 - k))) & 0xFF


def _put_u16(data: np.ndarray, pos: np.ndarray, value: np.ndarray) -> None:
    data[pos] = (value >> 8) & 0xFF
    data[pos + 1] = value & 0xFF


# --------------------------------------------------------------------------- 3. the files


def write_pcap(path: Path, blob: bytes, lengths: np.ndarray, ticks: np.ndarray) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    usec = ticks // 1000
    record = struct.Struct("<IIII").pack
    view = memoryview(blob)
    parts, pos = [header], 0
    for length, us in zip(lengths.tolist(), usec.tolist(), strict=True):
        parts.append(record(us // 1_000_000, us % 1_000_000, length, length))
        parts.append(view[pos: pos + length])
        pos += length
    _write_atomically(path, parts)


def write_pcapng(path: Path, blob: bytes, lengths: np.ndarray, ticks: np.ndarray) -> None:
    """Ethernet frames with nanosecond timestamps, in Enhanced Packet Blocks (as dumpcap)."""
    nanoseconds = [(pcapng_format.OPT_IF_TSRESOL, bytes([pcapng_format.tsresol_byte(10**9)]))]
    parts = [pcapng_format.section_header(), pcapng_format.interface_description(1, 262144, nanoseconds)]
    view, pos = memoryview(blob), 0
    for length, ns in zip(lengths.tolist(), ticks.tolist(), strict=True):
        head, tail = pcapng_format.block_frame(pcapng_format.BLOCK_EPB, 20 + length)
        parts += (head, pcapng_format.enhanced_packet_fields(0, ns, length, length),
                  view[pos: pos + length], tail)  # the frame's bytes passed on uncopied
        pos += length
    _write_atomically(path, parts)


def _write_atomically(path: Path, parts) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        for k in range(0, len(parts), 1 << 16):
            f.write(b"".join(parts[k: k + (1 << 16)]))
    os.replace(tmp, path)


def inputs(n_packets: int = DEFAULT_PACKETS, directory: Path | None = None) -> dict[str, Path]:
    """``{"pcap": path, "pcapng": path}`` of ``n_packets`` packets, built if missing."""
    directory = directory or bench_dir()
    session = directory / SESSION_FILE
    if not session.exists():
        record_session(session)
    paths = {"pcap": directory / f"chat-{n_packets}.pcap", "pcapng": directory / f"chat-{n_packets}.pcapng"}
    if not all(p.exists() for p in paths.values()):
        blob, lengths, ticks = build_copies(session, n_packets)
        write_pcap(paths["pcap"], blob, lengths, ticks)
        write_pcapng(paths["pcapng"], blob, lengths, ticks)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS)
    args = parser.parse_args(argv)
    for kind, path in inputs(args.packets).items():
        print(f"{kind}: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
