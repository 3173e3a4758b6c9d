"""Find every packet record in a pcap or pcapng file, in one pass, without copying.

Theory of operation
-------------------
A capture file is a header followed by records; each record says how long it is,
so finding the N-th packet means hopping over the N-1 before it.  That hop is the
only per-packet Python loop in the whole analysis: it collects record offsets with
``struct.unpack_from`` and nothing else.  Everything else (timestamps, lengths,
link type) is then gathered for all packets at once with numpy, straight from the
file's bytes (see :func:`gather_u32`).

Supported:

* pcap, little- or big-endian, microsecond (``a1b2c3d4``) or nanosecond
  (``a1b23c4d``) timestamps;
* pcapng: Section Header, Interface Description (with ``if_tsresol`` and
  ``if_tsoffset`` per interface), Enhanced Packet and Simple Packet blocks, the
  obsolete Packet block, several sections (each with its own interfaces and byte
  order).  Other blocks are skipped.

Timestamps are kept exactly as integer *ticks* with a ticks-per-second per packet,
because a float cannot hold nanoseconds since 1970 (a float64 has ~0.2 µs there).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field

import numpy as np

PCAP_MAGIC = {  # magic as read little-endian -> (byte order, ticks per second)
    0xA1B2C3D4: ("<", 1_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0xA1B23C4D: ("<", 1_000_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BLOCK_EPB = 1, 2, 3, 6
OPT_ENDOFOPT, OPT_COMMENT, OPT_IF_TSRESOL, OPT_IF_TSOFFSET = 0, 1, 9, 14


class CaptureFormatError(ValueError):
    """The file is not a capture we can read; the message says what was wrong."""


@dataclass
class Interface:
    """One pcapng interface (or the single implicit interface of a pcap file)."""

    linktype: int
    snaplen: int
    ticks_per_second: int
    tsresol_raw: int | None = None  # the if_tsresol byte, to copy it when rewriting
    tsoffset: int = 0  # seconds added to every timestamp (if_tsoffset)


@dataclass
class RecordIndex:
    """Where each packet is in the file, and the fields from its record header.

    All arrays have one entry per packet, in file order (frame 1 is index 0).
    ``data_offset`` is the offset of the packet's first byte in ``buffer``.
    """

    buffer: memoryview | bytes
    kind: str  # "pcap" or "pcapng"
    data_offset: np.ndarray  # int64
    caplen: np.ndarray  # int64, bytes captured
    origlen: np.ndarray  # int64, bytes on the wire
    ts_ticks: np.ndarray  # int64, since 1970 in units of 1/ticks_per_second
    ts_tps: np.ndarray  # int64, ticks per second of each packet's timestamp
    interface: np.ndarray  # int32, index into ``interfaces``
    interfaces: list[Interface] = field(default_factory=list)

    @property
    def linktype(self) -> np.ndarray:
        """Link-layer type of every packet (from its interface)."""
        types = np.array([i.linktype for i in self.interfaces] or [0], dtype=np.int32)
        return types[self.interface]

    def __len__(self) -> int:
        return len(self.data_offset)


def open_buffer(path: str | os.PathLike) -> memoryview | bytes:
    """Map the file read-only (no copy); empty files cannot be mapped, so read those."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b""
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def read_index(path: str | os.PathLike) -> RecordIndex:
    """Index a pcap or pcapng file (the format is recognised by its magic number)."""
    buf = open_buffer(path)
    if len(buf) < 4:
        raise CaptureFormatError(f"{path}: too short to be a pcap or pcapng file")
    (magic,) = struct.unpack_from("<I", buf, 0)
    if magic in PCAP_MAGIC:
        return index_pcap(buf)
    if magic == PCAPNG_SHB:
        return index_pcapng(buf)
    raise CaptureFormatError(
        f"{path}: unknown magic number {magic:#010x}; expected a pcap or pcapng capture"
    )


# --------------------------------------------------------------------------- gathering


def gather(data: np.ndarray, pos: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Read one ``dtype`` record at each position, all packets in one numpy call.

    ``sliding_window_view`` makes a (no-copy) view in which row ``p`` is the bytes
    starting at offset ``p``; indexing it with ``pos`` copies just those rows.
    Positions too close to the end are clamped: callers check lengths themselves.
    """
    dtype = np.dtype(dtype)
    if len(data) < dtype.itemsize:
        data = np.zeros(dtype.itemsize, dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(data, dtype.itemsize)
    rows = windows[np.clip(pos, 0, len(windows) - 1)]
    return np.ascontiguousarray(rows).view(dtype).reshape(len(pos))


def gather_u8(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return gather(data, pos, np.dtype("u1")).astype(np.int64)


def gather_u16(data: np.ndarray, pos: np.ndarray, big_endian: bool = True) -> np.ndarray:
    return gather(data, pos, np.dtype(">u2" if big_endian else "<u2")).astype(np.int64)


def gather_u32(data: np.ndarray, pos: np.ndarray, big_endian: bool = True) -> np.ndarray:
    return gather(data, pos, np.dtype(">u4" if big_endian else "<u4")).astype(np.int64)


def as_array(buf: memoryview | bytes) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.uint8)


# --------------------------------------------------------------------------- pcap


def index_pcap(buf: memoryview | bytes) -> RecordIndex:
    (magic,) = struct.unpack_from("<I", buf, 0)
    order, tps = PCAP_MAGIC[magic]
    if len(buf) < 24:
        raise CaptureFormatError("pcap file shorter than its 24-byte header")
    _, _, _, _, snaplen, network = struct.unpack_from(order + "HHiIII", buf, 4)
    linktype = network & 0x0FFFFFFF  # the top bits may carry FCS information

    rec = walk_pcap(buf, order)
    header = gather(as_array(buf), rec, np.dtype(f"{order}u4, {order}u4, {order}u4, {order}u4"))
    sec, frac, caplen, origlen = (header[f].astype(np.int64) for f in header.dtype.names)
    data_offset = rec + 16
    caplen = np.clip(caplen, 0, len(buf) - data_offset)  # a truncated final record
    return RecordIndex(
        buffer=buf,
        kind="pcap",
        data_offset=data_offset,
        caplen=caplen,
        origlen=origlen,
        ts_ticks=sec * tps + frac,
        ts_tps=np.full(len(rec), tps, dtype=np.int64),
        interface=np.zeros(len(rec), dtype=np.int32),
        interfaces=[Interface(linktype, snaplen, tps)],
    )


def walk_pcap_slowly(buf, order: str, pos: int = 24, stop: int | None = None) -> list[int]:
    """The plain way: hop from record to record (each header says how long it is).

    Stops at the end of the file, or at the first record starting at or after ``stop``.
    """
    incl_len = struct.Struct(order + "I").unpack_from
    offsets: list[int] = []
    end = len(buf) if stop is None else min(stop, len(buf))
    while pos + 16 <= len(buf) and pos < end:
        (length,) = incl_len(buf, pos + 8)
        offsets.append(pos)
        pos += 16 + length
    return offsets


def walk_pcap(buf, order: str, chunk: int = 1 << 24) -> np.ndarray:
    """Every record's offset, as :func:`walk_pcap_slowly` finds them, but with numpy.

    Guess, then verify.  Records are close together in time, so the high 16 bits
    of their seconds field are almost always those of the first record: every
    place in the file where those two bytes occur is a *candidate* record start
    (the real ones, and a few places inside packet data).  For each candidate,
    ``candidate + 16 + incl_len`` is where the next record would start.  Walking
    from the first record (a real one), whenever that next position is the next
    candidate, the next candidate is real too - so a whole run of consistent
    candidates is accepted in one numpy step.  Where the chain breaks (a false
    candidate in between, or a record whose seconds changed), we hop record by
    record with :func:`walk_pcap_slowly` until we are back on a candidate.
    The result is exactly the plain walk's.
    """
    data = as_array(buf)
    if len(buf) < 24 + 16:
        return np.array(walk_pcap_slowly(buf, order), dtype=np.int64)
    hi = slice(26, 28) if order == "<" else slice(24, 26)  # seconds' high half, first record
    pattern = np.frombuffer(bytes(buf[hi]), dtype=np.uint16)[0]
    first_byte = hi.start - 24
    found = []
    for lo in range(0, len(buf) - 16 + 1, chunk):  # chunks keep the temporaries small
        part = data[lo + first_byte : min(lo + chunk, len(buf) - 16 + 1) + first_byte + 1]
        for parity in (0, 1):
            words = part[parity : parity + (len(part) - parity) // 2 * 2].view(np.uint16)
            found.append(np.flatnonzero(words == pattern) * 2 + parity + lo)
    cand = np.sort(np.concatenate(found))
    cand = cand[cand + 16 <= len(buf)]
    length = gather(data, cand + 8, np.dtype(order + "u4")).astype(np.int64)
    nxt = cand + 16 + length
    consistent = np.r_[nxt[:-1] == cand[1:], False]
    # run_end[i]: the first j >= i whose successor is not the next candidate
    breaks = np.flatnonzero(~consistent)
    pieces: list[np.ndarray] = []
    pos, size = 24, len(buf)
    while pos + 16 <= size:
        i = int(np.searchsorted(cand, pos))
        if i < len(cand) and cand[i] == pos:
            j = int(breaks[np.searchsorted(breaks, i)])  # consistent[i:j] all True
            pieces.append(cand[i : j + 1])
            pos = int(nxt[j])
        else:  # not a candidate: hop plainly until we land on one
            stop = int(cand[i]) if i < len(cand) else None
            hops = walk_pcap_slowly(buf, order, pos, stop)
            pieces.append(np.array(hops, dtype=np.int64))
            if not hops:
                break
            last = hops[-1]
            pos = last + 16 + struct.unpack_from(order + "I", buf, last + 8)[0]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


# --------------------------------------------------------------------------- pcapng


def tsresol_to_tps(value: int) -> int:
    """``if_tsresol``: high bit clear = 10^-n seconds, set = 2^-n seconds."""
    return 2 ** (value & 0x7F) if value & 0x80 else 10 ** value


def parse_options(buf, start: int, end: int, order: str):
    """Yield (code, value bytes) for the options between start and end."""
    pos = start
    while pos + 4 <= end:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        if code == OPT_ENDOFOPT:
            return
        yield code, bytes(buf[pos + 4 : pos + 4 + length])
        pos += 4 + (length + 3) // 4 * 4


def index_pcapng(buf: memoryview | bytes) -> RecordIndex:
    interfaces: list[Interface] = []
    # One entry per packet block: where it is, its type, its section's byte order
    # and the index of its section's first interface (interface ids restart per section).
    offsets: list[int] = []
    types: list[int] = []
    big_endian: list[bool] = []
    first_interface: list[int] = []

    order, section_start, seen_shb = "<", 0, False
    pos, end = 0, len(buf)
    while pos + 12 <= end:
        (btype,) = struct.unpack_from(order + "I", buf, pos)
        if btype == PCAPNG_SHB:
            (bom,) = struct.unpack_from("<I", buf, pos + 8)
            order = "<" if bom == PCAPNG_BYTE_ORDER_MAGIC else ">"
            section_start, seen_shb = len(interfaces), True
        elif not seen_shb:
            raise CaptureFormatError("pcapng file does not start with a Section Header Block")
        (blen,) = struct.unpack_from(order + "I", buf, pos + 4)
        if blen < 12 or blen % 4:
            raise CaptureFormatError(f"pcapng block at offset {pos} has a bad length {blen}")
        if btype in (BLOCK_EPB, BLOCK_SPB, BLOCK_PB):
            offsets.append(pos)
            types.append(btype)
            big_endian.append(order == ">")
            first_interface.append(section_start)
        elif btype == BLOCK_IDB:
            interfaces.append(_read_idb(buf, pos, blen, order))
        pos += blen
    if not interfaces:
        interfaces.append(Interface(1, 0, 1_000_000))

    data = as_array(buf)
    n = len(offsets)
    rec = np.array(offsets, dtype=np.int64)
    btype_arr = np.array(types, dtype=np.int64)
    iface = np.array(first_interface, dtype=np.int64)
    ts = np.zeros(n, dtype=np.int64)
    caplen = np.zeros(n, dtype=np.int64)
    origlen = np.zeros(n, dtype=np.int64)
    data_off = np.zeros(n, dtype=np.int64)
    big_arr = np.array(big_endian, dtype=bool)
    for big in (False, True):
        for btype in (BLOCK_EPB, BLOCK_PB, BLOCK_SPB):
            sel = np.flatnonzero((btype_arr == btype) & (big_arr == big))
            if not len(sel):
                continue
            r = rec[sel]
            if btype == BLOCK_SPB:  # no timestamp, always the section's first interface
                origlen[sel] = gather_u32(data, r + 8, big)
                caplen[sel] = np.minimum(origlen[sel], gather_u32(data, r + 4, big) - 16)
                data_off[sel] = r + 12
                continue
            if btype == BLOCK_EPB:
                iface[sel] += gather_u32(data, r + 8, big)
            else:  # the obsolete Packet Block has a 16-bit interface id
                iface[sel] += gather_u16(data, r + 8, big)
            ts[sel] = gather_u32(data, r + 12, big) << 32 | gather_u32(data, r + 16, big)
            caplen[sel] = gather_u32(data, r + 20, big)
            origlen[sel] = gather_u32(data, r + 24, big)
            data_off[sel] = r + 28

    iface = np.clip(iface, 0, len(interfaces) - 1).astype(np.int32)
    tps = np.array([i.ticks_per_second for i in interfaces], dtype=np.int64)[iface]
    tsoffset = np.array([i.tsoffset for i in interfaces], dtype=np.int64)[iface]
    return RecordIndex(
        buffer=buf,
        kind="pcapng",
        data_offset=data_off,
        caplen=caplen,
        origlen=origlen,
        ts_ticks=ts + tsoffset * tps,
        ts_tps=tps,
        interface=iface,
        interfaces=interfaces,
    )


def _read_idb(buf, pos: int, blen: int, order: str) -> Interface:
    linktype, _, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
    iface = Interface(linktype, snaplen, 1_000_000)
    for code, value in parse_options(buf, pos + 16, pos + blen - 4, order):
        if code == OPT_IF_TSRESOL and value:
            iface.tsresol_raw = value[0]
            iface.ticks_per_second = tsresol_to_tps(value[0])
        elif code == OPT_IF_TSOFFSET and len(value) >= 8:
            (iface.tsoffset,) = struct.unpack(order + "q", value[:8])
    return iface
