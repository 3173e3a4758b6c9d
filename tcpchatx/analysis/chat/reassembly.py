"""Step 1: each direction of each connection laid end to end as one byte stream (numpy).

Mirrors :func:`tcpchatx.analysis.plain.chat.reassemble` (the version to read first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capture_file import at_every_offset
from ..packets import Packets
from ..sorting import stable_argsort
from .windows import WIDTH, cut, write_end_to_end


@dataclass
class Streams:
    """Every reassembled byte stream, laid end to end in one array of bytes.

    Stream *k* (one direction of one connection) occupies ``data[begin[k]:begin[k+1]]``;
    run *i* of placed bytes starts at ``run_starts[i]`` (an offset in ``data``) and
    came from packet row ``run_rows[i]``; ``gaps`` are offsets where a hole was.
    ``data`` ends with :data:`WORD` zero bytes after the last stream, so that the
    8 bytes from any offset can be read as one number (see :func:`line_ids`).
    """

    data: np.ndarray  # uint8
    group: np.ndarray  # (conn * 2 + direction) of each stream
    begin: np.ndarray  # len(group) + 1 offsets
    run_starts: np.ndarray
    run_rows: np.ndarray
    gaps: np.ndarray


def reassemble_all(p: Packets, rows: np.ndarray, group: np.ndarray, rel_seq: np.ndarray) -> Streams:
    """Lay each group's segments end to end, all groups at once.

    Within a group, segments are taken in (sequence number, frame) order.  The next
    byte we expect is the furthest end placed so far (starting at relative seq 1),
    so a segment is placed iff it ends beyond it; it fills a hole iff it starts
    beyond it; and only its bytes beyond it are new.  A running maximum per group
    gives that for every segment at once.  Segments before the ISN (wrapped around,
    relative seq >= 2**31) are outside the stream.
    """
    if len(rows) and group.max() < 1 << 31 and (np.diff(rows) > 0).all():  # the usual case
        order = _by_group_then_seq(group, rel_seq)
    else:
        order = np.lexsort((rows, rel_seq, group))
    g, seq, rows = group[order], rel_seq[order].astype(np.int64), rows[order]
    del order
    # (Temporaries in place, and no copy where a mask keeps everything: labelling
    # runs beside this, and the two together are a peak of the analysis's memory.)
    inside = seq < 1 << 31
    if not inside.all():
        g, seq, rows = g[inside], seq[inside], rows[inside]
    del inside
    caplen = p.payload_caplen[rows].astype(np.int64)
    end = seq + caplen
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    shift = g.astype(np.int64) << 34  # keeps each group's running maximum apart
    furthest = np.maximum(end, 1)
    furthest += shift
    np.maximum.accumulate(furthest, out=furthest)
    furthest -= shift
    del shift
    expected = np.empty_like(furthest)
    expected[:1], expected[1:] = 1, furthest[:-1]
    del furthest
    expected[first] = 1
    del first
    placed = end > expected
    del end
    hole = placed & (seq > expected)
    skip = expected
    skip -= seq  # bytes already placed at the segment's start (negative: none)
    np.maximum(skip, 0, out=skip)
    del expected
    if not placed.all():
        g, rows, seq, caplen, skip, hole = g[placed], rows[placed], seq[placed], caplen[placed], skip[placed], hole[placed]
    del placed, seq
    size = caplen
    size -= skip
    src = p.payload_offsets(rows)
    src += skip
    del caplen, skip
    starts = np.r_[0, np.cumsum(size)[:-1]] if len(size) else np.zeros(0, np.int64)
    data = gather_runs(p.buffer, src, size)
    del src, size
    first_run = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, np.int64)
    groups = g[first_run]  # g is sorted
    begin = np.r_[starts[first_run], len(data) - WORD] if len(g) else np.zeros(1, np.int64)
    return Streams(data, groups, begin.astype(np.int64), starts, rows, starts[hole])


def _by_group_then_seq(group: np.ndarray, rel_seq: np.ndarray) -> np.ndarray:
    """``np.lexsort((rows, rel_seq, group))`` for segments in capture order.

    Usually each stream's segments were captured in sequence order (no
    retransmission, no reordering): then sorting stably by stream alone (one
    16-bit radix pass for up to 32,768 connections) gives that order, which we
    check.  Otherwise one int64 key per segment is sorted (three passes).
    """
    order = stable_argsort(group)
    g, seq = group[order], rel_seq[order].astype(np.int64)
    if not ((g[1:] == g[:-1]) & (seq[1:] < seq[:-1])).any():
        return order
    return stable_argsort(group.astype(np.int64) << 32 | rel_seq.astype(np.int64))


WORD = 8  # bytes copied, and compared, as one number


def every_word(data: np.ndarray) -> np.ndarray:
    """The 8 bytes at each offset of ``data`` as one little-endian number: a view, no copy.

    (Its last 7 offsets have no whole word; ``Streams.data`` ends in zeros for that.)
    """
    return at_every_offset(data, "<u8")


def gather_runs(buffer, src: np.ndarray, size: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """``b"".join(buffer[a:a + n] for a, n in zip(src, size))``, with numpy, then
    :data:`WORD` zero bytes.

    Runs are cut into pieces of up to 128 bytes, and each piece is copied as one
    128-byte window (:mod:`.windows`).  Pieces are copied in the order they sit in
    the file, ``chunk`` bytes' worth at a time, so that each part of the mapped file
    can be released (:func:`~tcpchatx.analysis.capture_file.release_pages`, in file
    order) once it has been copied.
    """
    piece_src, piece_size, _, _ = cut(src.astype(np.int64), size.astype(np.int64))
    out = np.zeros(int(piece_size.sum()) + WIDTH, dtype=np.uint8)
    in_file_order = stable_argsort(piece_src)
    copied = np.cumsum(piece_size[in_file_order])  # bytes copied once each piece is done
    spans, lo = [], 0
    while lo < len(copied):
        before = int(copied[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(copied, before + chunk, "right")), lo + 1)
        spans.append((lo, hi))
        lo = hi
    write_end_to_end(out, buffer, piece_src, piece_size, spans, in_file_order)
    return out[: len(out) - WIDTH + WORD]
