"""Find every packet record in a pcap or pcapng file, in one pass, without copying.

Theory of operation
-------------------
A capture file is a header followed by records; each record says how long it is,
so finding the N-th packet means hopping over the N-1 before it.  Hopping one
record at a time in Python is the plain way (:func:`walk_pcap_slowly`,
:func:`walk_pcapng_slowly`: the references the tests compare with, and the
fallback where a guess cannot be verified); :func:`walk_pcap` and
:func:`walk_pcapng` find the same records with numpy by guessing where records
start and verifying the guesses in long runs.  Everything else (timestamps,
lengths, link type) is then gathered for all packets at once with numpy, straight
from the file's bytes (see :func:`gather_u32`).

Memory: the file is mapped, not read, and its pages count in the process's RSS
once touched.  The indexers go over the file front to back and hand each part
back to the OS once they are :data:`KEEP_MAPPED` bytes past it
(:func:`release_behind`); the decoder, which reads the same pages next, releases
the rest as it goes.  A released page is re-read from the page cache if needed
later.  Columns that are the same for every packet (the interface and tick rate
of a single-interface file) are broadcast views that take no memory.

Supported:

* pcap, little- or big-endian, microsecond (``a1b2c3d4``) or nanosecond
  (``a1b23c4d``) timestamps;
* pcapng: Section Header, Interface Description (with ``if_tsresol`` and
  ``if_tsoffset`` per interface), Enhanced Packet and Simple Packet blocks, the
  obsolete Packet block, several sections (each with its own interfaces and byte
  order).  Other blocks are skipped.  What the blocks look like, and how to hop
  from one to the next, is :mod:`tcpchatx.pcapng_format`'s.

Timestamps are kept exactly as integer *ticks* with a ticks-per-second per packet,
because a float cannot hold nanoseconds since 1970 (a float64 has ~0.2 µs there).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..pcapng_format import (
    BLOCK_EPB,
    BLOCK_IDB,
    BLOCK_PB,
    BLOCK_SHB,
    BLOCK_SPB,
    OPT_IF_TSOFFSET,
    OPT_IF_TSRESOL,
    PACKET_BLOCKS,
    PcapngError,
    parse_options,
    tsresol_to_tps,
    walk_blocks,
)
from .workers import in_order

PCAP_MAGIC = {  # magic as read little-endian -> (byte order, ticks per second)
    0xA1B2C3D4: ("<", 1_000_000),
    0xD4C3B2A1: (">", 1_000_000),
    0xA1B23C4D: ("<", 1_000_000_000),
    0x4D3CB2A1: (">", 1_000_000_000),
}


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
    ``ts_tps`` and ``interface`` are read-only broadcast views (no memory) when every
    packet has the same value, as in any single-interface file: read them, index
    them, but do not write into them.
    """

    buffer: memoryview | bytes
    kind: str  # "pcap" or "pcapng"
    data_offset: np.ndarray  # int64
    caplen: np.ndarray  # int32 (int64 if a value needs it), bytes captured
    origlen: np.ndarray  # int32 (int64 if a value needs it), bytes on the wire
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


def release_pages(buffer, start: int = 0, stop: int | None = None) -> None:
    """Tell the OS we are done, for now, with bytes ``start:stop`` of a mapped file.

    The pages leave the process's RSS; touching them again re-reads them from the
    page cache, so the data stay readable.  The range is rounded *outwards* to whole
    pages: for a read-only file mapping dropping a page we still need only costs a
    re-read, while rounding inwards would leave the boundary pages of unaligned
    ranges resident for good.  A no-op for ``bytes`` (nothing is mapped) and where
    ``madvise(MADV_DONTNEED)`` is not available (Windows, some macOS builds).
    ``buffer`` is what :func:`open_buffer` returns (or the mmap itself).
    """
    mapping = buffer.obj if isinstance(buffer, memoryview) else buffer
    if not isinstance(mapping, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    if isinstance(buffer, memoryview) and buffer.nbytes != len(mapping):
        return  # a slice of the mapping: its offsets are not the file's
    stop = len(mapping) if stop is None else min(stop, len(mapping))
    start = max(start, 0) // mmap.PAGESIZE * mmap.PAGESIZE
    if start >= stop:
        return
    try:
        mapping.madvise(mmap.MADV_DONTNEED, start, stop - start)  # the kernel rounds the end up
    except (OSError, ValueError):  # only advice; a closed or odd mapping is not an error
        pass


KEEP_MAPPED = 128 << 20
"""Bytes of the file the indexers leave mapped behind them.  The decoder reads the
same pages right after; had they been released, it would fault each one in again,
and a page fault per page is what fresh memory costs.  A 1M-packet chat capture fits whole, and
holding it costs less than the analysis holds later; a bigger file is released
as the indexers go, this much behind them, as one of big packets should be."""


def release_behind(buffer, lo: int, hi: int) -> None:
    """The indexers are done with bytes ``lo:hi``: release the part that is now
    :data:`KEEP_MAPPED` bytes behind (:func:`release_pages`)."""
    release_pages(buffer, lo - KEEP_MAPPED, hi - KEEP_MAPPED)


def record_chunks(rec: np.ndarray, size: int, chunk: int = 1 << 24) -> list[slice]:
    """Slices of ``rec`` (sorted record offsets in a file of ``size`` bytes), each
    covering about ``chunk`` bytes of the file: work for :func:`.workers.in_order`."""
    bounds = np.searchsorted(rec, np.arange(chunk, size + chunk, chunk)).tolist()
    return [slice(a, b) for a, b in zip([0, *bounds[:-1]], bounds, strict=True) if b > a]


def _by_parts(buf, rec: np.ndarray, read_headers: Callable[[slice], slice]) -> None:
    """``read_headers(part)`` (which returns its part) for each :func:`record_chunks`
    part of the records, two at once (each writes its own rows), releasing the
    file behind them."""
    for part in in_order(read_headers, record_chunks(rec, len(buf))):
        release_behind(buf, *_file_span(rec, part, len(buf)))


def _file_span(rec: np.ndarray, part: slice, size: int) -> tuple[int, int]:
    """The bytes of the file a slice of records covers (up to the next record)."""
    return (int(rec[part.start]) if part.start < len(rec) else size,
            int(rec[part.stop]) if part.stop < len(rec) else size)


def compact(values: np.ndarray) -> np.ndarray:
    """int32 if every value fits (half the memory of int64), else the values as they are."""
    if not len(values) or (values.min() >= -(2**31) and values.max() < 2**31):
        return values.astype(np.int32)
    return values


def constant_column(value, n: int, dtype) -> np.ndarray:
    """``n`` times ``value``, costing no memory: a read-only broadcast view."""
    return np.broadcast_to(np.array(value, dtype=dtype), (n,))


def is_constant(column: np.ndarray) -> bool:
    """Whether ``column`` is a :func:`constant_column` (a view of one value)."""
    return len(column) > 0 and column.strides[0] == 0


def take(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``column[rows]``; a :func:`constant_column` stays one (no memory per row)."""
    if is_constant(column):
        return constant_column(column[0], len(rows), column.dtype)
    return column[rows]


def rows_where(mask: np.ndarray) -> np.ndarray | slice:
    """The rows where ``mask`` holds; ``slice(None)`` if that is all of them.

    Usually every packet is IPv4 and TCP: then columns are copied whole, which
    is much quicker than through an index array.
    """
    return slice(None) if mask.all() else np.flatnonzero(mask)


def has_rows(rows: np.ndarray | slice) -> bool:
    """Whether :func:`rows_where` found any row."""
    return isinstance(rows, slice) or len(rows) > 0


def read_index(path: str | os.PathLike) -> RecordIndex:
    """Index a pcap or pcapng file (the format is recognised by its magic number)."""
    buf = open_buffer(path)
    if len(buf) < 4:
        raise CaptureFormatError(f"{path}: too short to be a pcap or pcapng file")
    (magic,) = struct.unpack_from("<I", buf, 0)
    if magic in PCAP_MAGIC:
        return index_pcap(buf)
    if magic == BLOCK_SHB:  # a pcapng file starts with a Section Header Block
        return index_pcapng(buf)
    raise CaptureFormatError(
        f"{path}: unknown magic number {magic:#010x}; expected a pcap or pcapng capture"
    )


# --------------------------------------------------------------------------- gathering


def gather(data: np.ndarray, pos: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Read one ``dtype`` record at each position, all packets in one numpy call.

    :func:`at_every_offset` makes a (no-copy) view with one record starting at every
    offset; indexing it with ``pos`` copies just those records.  A record with
    fields is read as that many raw bytes (one ``memcpy`` each), then viewed as its
    fields.  Positions too close to the end are clamped: callers check lengths themselves.
    """
    dtype = np.dtype(dtype)
    if len(data) < dtype.itemsize:
        data = np.zeros(dtype.itemsize, dtype=np.uint8)
    raw = dtype if dtype.fields is None else np.dtype((np.void, dtype.itemsize))
    every = at_every_offset(data, raw)
    return every[np.clip(pos, 0, len(every) - 1)].view(dtype)


def at_every_offset(data: np.ndarray, dtype) -> np.ndarray:
    """A view of ``data`` (bytes) with one plain ``dtype`` number starting at each offset.

    No copy: indexing it reads the numbers at any positions in one numpy step.  The
    last ``itemsize - 1`` offsets have no whole number, so the view is that much shorter.
    """
    dtype = np.dtype(dtype)
    return np.ndarray((max(len(data) - dtype.itemsize + 1, 0),), dtype=dtype, buffer=data, strides=(1,))


def gather_u8(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return gather(data, pos, np.dtype("u1")).astype(np.int64)


def gather_u8_within(data: np.ndarray, pos: np.ndarray, end: np.ndarray) -> np.ndarray:
    """:func:`gather_u8`, with 0 for a byte at or past ``end`` (the frame's end: the bytes
    there are the next record's, not this frame's)."""
    return np.where(pos < end, gather_u8(data, pos), 0)


def gather_u16_within(data: np.ndarray, pos: np.ndarray, end: np.ndarray) -> np.ndarray:
    """:func:`gather_u16` (big-endian), with 0 where the two bytes do not both lie before ``end``."""
    return np.where(pos + 2 <= end, gather_u16(data, pos), 0)


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
    n, data = len(rec), as_array(buf)
    ts = np.empty(n, dtype=np.int64)
    caplen = np.empty(n, dtype=np.int64)
    origlen = np.empty(n, dtype=np.int64)
    record_header = np.dtype(f"{order}u4, {order}u4, {order}u4, {order}u4")

    def read_headers(part: slice) -> slice:  # parts write to their own rows: two at once
        header = gather(data, rec[part], record_header)
        sec, frac, incl, orig = (header[f] for f in record_header.names)
        ts[part] = sec.astype(np.int64) * tps + frac
        caplen[part], origlen[part] = incl, orig
        return part

    _by_parts(buf, rec, read_headers)
    data_offset = rec
    data_offset += 16  # rec is not needed any more: reuse its memory
    np.clip(caplen, 0, len(buf) - data_offset, out=caplen)  # a truncated final record
    return RecordIndex(
        buffer=buf,
        kind="pcap",
        data_offset=data_offset,
        caplen=compact(caplen),
        origlen=compact(origlen),
        ts_ticks=ts,
        ts_tps=constant_column(tps, n, np.int64),
        interface=constant_column(0, n, np.int32),
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


class _Chain:
    """Candidate record starts (``cand``, sorted) and where each one's record would end
    (``nxt``): a run of candidates each ending where the next begins is followed at once."""

    def __init__(self, cand: np.ndarray, nxt: np.ndarray) -> None:
        self.cand, self.nxt = cand, nxt
        # Where runs end: candidates whose record does not end at the next candidate.
        self.breaks = np.flatnonzero(~np.r_[nxt[:-1] == cand[1:], False])

    def follow(self, pos: int) -> tuple[np.ndarray | None, int | None]:
        """From ``pos``: the run of candidates starting there and where it ends; or, if
        ``pos`` is no candidate, None and the next candidate (None if there is none)."""
        i = int(np.searchsorted(self.cand, pos))
        if i < len(self.cand) and self.cand[i] == pos:
            j = int(self.breaks[np.searchsorted(self.breaks, i)])  # cand[i..j] follow each other
            return self.cand[i : j + 1], int(self.nxt[j])
        return None, int(self.cand[i]) if i < len(self.cand) else None


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

    def candidates(lo: int) -> tuple[np.ndarray, np.ndarray]:
        """The candidates in ``[lo, lo + chunk)`` and their records' lengths."""
        part = data[lo + first_byte : min(lo + chunk, len(buf) - 16 + 1) + first_byte + 1]
        here = []
        for parity in (0, 1):
            words = part[parity : parity + (len(part) - parity) // 2 * 2].view(np.uint16)
            here.append(np.flatnonzero(words == pattern) * 2 + parity + lo)
        cand = np.concatenate(here)
        cand.sort(kind="stable")  # two sorted runs: the stable sort (timsort) merges them, in place
        cand = cand[cand + 16 <= len(buf)]
        return cand, gather(data, cand + 8, np.dtype(order + "u4"))

    found, lengths = [], []
    chunks = range(0, len(buf) - 16 + 1, chunk)  # chunks keep the temporaries small
    for lo, (cand, length) in zip(chunks, in_order(candidates, chunks)):
        found.append(cand)
        lengths.append(length)
        release_behind(buf, lo, lo + chunk)  # done with this part of the file
    cand = np.concatenate(found)
    chain = _Chain(cand, cand + 16 + np.concatenate(lengths))
    pieces: list[np.ndarray] = []
    pos, size = 24, len(buf)
    while pos + 16 <= size:
        run, pos_or_stop = chain.follow(pos)
        if run is not None:
            pieces.append(run)
            pos = pos_or_stop
        else:  # not a candidate: hop plainly until we land on one
            hops = walk_pcap_slowly(buf, order, pos, pos_or_stop)
            pieces.append(np.array(hops, dtype=np.int64))
            if not hops:
                break
            last = hops[-1]
            pos = last + 16 + struct.unpack_from(order + "I", buf, last + 8)[0]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


# --------------------------------------------------------------------------- pcapng


@dataclass
class Section:
    """One pcapng section: where its header block is, its byte order, its interfaces."""

    offset: int
    order: str  # "<" or ">"
    first_interface: int  # index in the file's interface list of the section's interface 0


def walk_pcapng_slowly(buf, sections: list[Section], interfaces: list[Interface], pos: int = 0,
                       stop: int | None = None, stop_after_shb: bool = False) -> tuple[list[int], int]:
    """The plain way: hop from block to block (each block says how long it is), with
    :func:`~tcpchatx.pcapng_format.walk_blocks`.

    Returns the offsets of the packet blocks (EPB, SPB, PB) met, and where it stopped.
    Section Header and Interface Description blocks are appended to ``sections`` and
    ``interfaces`` (interface ids restart at each section).  Stops at the end of the
    file, at the first block starting at or after ``stop``, or - if ``stop_after_shb`` -
    just after a Section Header Block, since a new section may change the byte order.
    """
    offsets: list[int] = []
    end = len(buf) if stop is None else min(stop, len(buf))
    if pos >= end:
        return offsets, pos
    try:  # before the first section (no order yet), the first block must be a Section Header
        for block in walk_blocks(buf, pos, sections[-1].order if sections else None):
            if block.type == BLOCK_SHB:
                sections.append(Section(block.offset, block.order, len(interfaces)))
            elif block.type in PACKET_BLOCKS:
                offsets.append(block.offset)
            elif block.type == BLOCK_IDB:
                interfaces.append(_read_idb(buf, block.offset, block.length, block.order))
            pos = block.offset + block.length
            if pos >= end or (block.type == BLOCK_SHB and stop_after_shb):
                break
    except PcapngError as error:
        raise CaptureFormatError(str(error)) from None
    return offsets, pos


def find_packet_blocks(buf, order: str, chunk: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Offsets that look like packet blocks in byte order ``order``, and where each would end.

    Blocks are 4-byte aligned, so the file is read as 32-bit words.  A *candidate* is
    a word equal to 6, 3 or 2 (EPB, SPB, PB) followed by a sane length (at least 12,
    a multiple of 4, inside the file) that is repeated in the block's last word, as
    every pcapng block repeats it.  Every well-formed packet block is a candidate; a
    few places inside packet data may be too (the walk sorts those out).
    """
    words = np.frombuffer(buf, dtype=order + "u4", count=len(buf) // 4)
    step = max(chunk // 4, 1)

    def candidates(lo: int) -> tuple[np.ndarray, np.ndarray]:
        """The candidates among words ``[lo, lo + step)``, and their ends."""
        part = words[lo : lo + step]
        k = np.flatnonzero(part - BLOCK_PB <= BLOCK_EPB - BLOCK_PB) + lo  # 2 to 6, unsigned
        k = k[np.isin(words[k], PACKET_BLOCKS) & (k + 1 < len(words))]
        blen = words[k + 1].astype(np.int64)
        end = 4 * k + blen
        sane = (blen >= 12) & (blen % 4 == 0) & (end <= len(buf))
        k, blen, end = k[sane], blen[sane], end[sane]
        repeated = words[end // 4 - 1] == blen
        return 4 * k[repeated], end[repeated]

    starts, ends = [], []
    chunks = range(0, len(words), step)  # chunks keep the temporaries small
    for lo, (start, end) in zip(chunks, in_order(candidates, chunks)):
        starts.append(start)
        ends.append(end)
        release_behind(buf, 4 * lo, 4 * (lo + step))  # done with this part of the file
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts), np.concatenate(ends)


def walk_pcapng(buf, sections: list[Section], interfaces: list[Interface],
                chunk: int = 1 << 24) -> np.ndarray:
    """Every packet block's offset, as :func:`walk_pcapng_slowly` finds them, but with numpy.

    Guess, then verify, as in :func:`walk_pcap`.  The guesses are the candidates of
    :func:`find_packet_blocks` (in the current section's byte order, found once per
    order).  Walking from a real block, whenever a candidate ends exactly where the
    next candidate starts, that next one is real too - so a whole run of packet
    blocks is accepted in one numpy step.  Where the chain breaks (a Section Header,
    an Interface Description or any other block, a false candidate in packet data,
    a malformed block), we hop block by block with :func:`walk_pcapng_slowly` until
    we are back on a candidate.  The result - offsets, sections, interfaces and the
    errors raised - is exactly the plain walk's.
    """
    chains: dict[str, _Chain] = {}  # one per byte order
    pieces: list[np.ndarray] = []
    pos = 0
    while pos + 12 <= len(buf):
        stop = None  # before the first section: take the first block (it must be an SHB)
        if sections:
            order = sections[-1].order
            if order not in chains:
                chains[order] = _Chain(*find_packet_blocks(buf, order, chunk))
            run, pos_or_stop = chains[order].follow(pos)
            if run is not None:
                pieces.append(run)
                pos = pos_or_stop
                continue
            stop = pos_or_stop
        hops, pos = walk_pcapng_slowly(buf, sections, interfaces, pos, stop, stop_after_shb=True)
        pieces.append(np.array(hops, dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


# An Enhanced (or old-style) Packet Block from its 9th byte: interface, timestamp
# (high and low 32 bits), captured and original length; little- or big-endian.
_PACKET_BLOCK_FIELDS = {
    big: np.dtype([(name, (">" if big else "<") + "u4")
                   for name in ("interface", "ts_high", "ts_low", "caplen", "origlen")])
    for big in (False, True)
}


def _pcapng_headers(buf, rec: np.ndarray, sections: list[Section]) -> tuple[np.ndarray, ...]:
    """Each packet block's interface, timestamp, lengths and data offset (int64 columns)."""
    # Per section: where it starts, its byte order, its first interface.
    section_start = np.array([s.offset for s in sections], dtype=np.int64)
    section_big = np.array([s.order == ">" for s in sections], dtype=bool)
    section_iface = np.array([s.first_interface for s in sections], dtype=np.int64)
    data, n = as_array(buf), len(rec)
    iface = np.zeros(n, dtype=np.int64)
    ts = np.zeros(n, dtype=np.int64)
    caplen = np.zeros(n, dtype=np.int64)
    origlen = np.zeros(n, dtype=np.int64)
    data_off = np.zeros(n, dtype=np.int64)

    def read_headers(part: slice) -> slice:  # parts write to their own rows: two at once
        r = rec[part]
        section = np.searchsorted(section_start, r, side="right") - 1
        big_arr = section_big[section]
        btype_arr = gather(data, r, np.dtype("<u4"))
        btype_arr = np.where(big_arr, btype_arr.byteswap(), btype_arr)
        iface[part] = section_iface[section]
        for big in (False, True):
            for btype in (BLOCK_EPB, BLOCK_PB, BLOCK_SPB):
                sel = np.flatnonzero((btype_arr == btype) & (big_arr == big))
                if not len(sel):
                    continue
                if len(sel) == len(r):  # the usual case: every block alike, whole slices
                    rs, at = r, part
                else:
                    rs, at = r[sel], sel + part.start  # offsets; rows of the whole columns
                if btype == BLOCK_SPB:  # no timestamp, always the section's first interface
                    origlen[at] = gather_u32(data, rs + 8, big)
                    caplen[at] = np.minimum(origlen[at], gather_u32(data, rs + 4, big) - 16)
                    data_off[at] = rs + 12
                    continue
                header = gather(data, rs + 8, _PACKET_BLOCK_FIELDS[big])  # the 20 bytes at once
                if btype == BLOCK_EPB:
                    iface[at] += header["interface"]
                else:  # the obsolete Packet Block has a 16-bit interface id
                    iface[at] += gather_u16(data, rs + 8, big)
                ts[at] = header["ts_high"].astype(np.int64) << 32 | header["ts_low"]
                caplen[at], origlen[at] = header["caplen"], header["origlen"]
                data_off[at] = rs + 28
        return part

    _by_parts(buf, rec, read_headers)
    return iface, ts, caplen, origlen, data_off


def index_pcapng(buf: memoryview | bytes) -> RecordIndex:
    sections: list[Section] = []
    interfaces: list[Interface] = []
    rec = walk_pcapng(buf, sections, interfaces)
    if not interfaces:
        interfaces.append(Interface(1, 0, 1_000_000))

    iface, ts, caplen, origlen, data_off = _pcapng_headers(buf, rec, sections)
    n = len(rec)
    del rec  # free it before the per-interface columns are made

    np.clip(iface, 0, len(interfaces) - 1, out=iface)
    tps_of = np.array([i.ticks_per_second for i in interfaces], dtype=np.int64)
    shift_of = np.array([i.tsoffset for i in interfaces], dtype=np.int64) * tps_of  # if_tsoffset
    if n and (iface == iface[0]).all():  # one interface (the usual case): constant columns
        k = int(iface[0])
        ts += shift_of[k]
        interface = constant_column(k, n, np.int32)
        tps = constant_column(tps_of[k], n, np.int64)
    else:
        ts += shift_of[iface]
        interface = iface.astype(np.int32)
        tps = tps_of[iface]
    return RecordIndex(
        buffer=buf,
        kind="pcapng",
        data_offset=data_off,
        caplen=compact(caplen),
        origlen=compact(origlen),
        ts_ticks=ts,
        ts_tps=tps,
        interface=interface,
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
