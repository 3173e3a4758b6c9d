"""Many short byte ranges read and written at once, 128 bytes at a time (numpy).

The chat layer copies and compares hundreds of thousands of short ranges: segment
payloads laid end to end into streams, lines compared by their bytes.  numpy has
no "copy these ranges" call; copying a range a byte (or a word) at a time needs
an index for every byte (or word), and building those indexes costs more than the
copy.  Instead, the buffer is viewed as one :data:`WIDTH`-byte item starting at
*every* offset (:func:`windows_at`): indexing that view copies a whole window per
range with one ``memcpy`` each, no matter where the range starts.  A range longer
than a window is cut into pieces of at most :data:`WIDTH` bytes (:func:`cut`).

Reading a window reads bytes past a short range: harmless, the caller masks them
(:func:`mask_past`).  *Writing* a window writes past it, over the start of the
next range - see :func:`write_end_to_end` for how that is made right.

:func:`copy_exactly` (an index per byte) is the plain way, and the one used where
a window would not do; tests hold the results to ``b"".join`` of the slices.
"""

from __future__ import annotations

import numpy as np

from ..capture_file import at_every_offset, release_pages

WIDTH = 128  # bytes a window holds: most chat lines and segments fit in one
WORDS = WIDTH // 8
VOID = np.dtype((np.void, WIDTH))


def windows_at(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The :data:`WIDTH` bytes from each offset of ``data`` (zeros past its end), as one
    item each."""
    view = at_every_offset(data, VOID)
    if not len(offsets) or offsets.max() < len(view):  # the usual case: none near the end
        return view[offsets]
    got = np.empty(len(offsets), VOID)  # the last offsets read from a copy of the end
    inside = offsets < len(view)
    got[inside] = view[offsets[inside]]
    tail = np.zeros(len(data) - len(view) + WIDTH, np.uint8)
    tail[: len(data) - len(view)] = data[len(view):]
    got[~inside] = at_every_offset(tail, VOID)[offsets[~inside] - len(view)]
    return got


def words_at(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """:func:`windows_at` as rows of :data:`WORDS` little-endian 8-byte numbers."""
    return windows_at(data, offsets).view("<u8").reshape(len(offsets), WORDS)


def _masks() -> np.ndarray:
    """Row ``n``: the word masks that keep the first ``n`` bytes of a window."""
    kept = np.clip(np.arange(WIDTH + 1)[:, None] - 8 * np.arange(WORDS)[None, :], 0, 8)
    return np.array([(1 << 8 * r) - 1 for r in range(9)], dtype=np.uint64)[kept]


MASKS = _masks()


def mask_past(words: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Zero every byte of each window (a row of :func:`windows_at`) past its ``length``."""
    words &= MASKS[np.minimum(length, WIDTH)]
    return words


def cut(start: np.ndarray, length: np.ndarray):
    """Each range cut into pieces of at most :data:`WIDTH` bytes, in order.

    Returns each piece's start and length, and its range's index and its number
    within its range (0, 1, ...); those two are None when every range is one piece
    (the usual case: no arrays made for it).  An empty range has no piece.
    """
    count = (length + WIDTH - 1) // WIDTH
    if (count == 1).all():
        return start, length, None, None
    of_range = np.repeat(np.arange(len(start)), count)
    first_piece = np.cumsum(count) - count
    number = np.arange(len(of_range)) - first_piece[of_range]
    offset = number * WIDTH
    return start[of_range] + offset, np.minimum(length[of_range] - offset, WIDTH), of_range, number


def write_end_to_end(out: np.ndarray, source, src: np.ndarray, size: np.ndarray,
                     spans: list[tuple[int, int]], in_file_order: np.ndarray) -> None:
    """Copy range *i* of ``source`` (``src[i]``, ``size[i] <= WIDTH`` bytes) into ``out``,
    the ranges end to end in index order; ``out`` has :data:`WIDTH` bytes to spare at
    its end, zeros when done.

    A range is written as a whole window, so a range shorter than a window also
    writes over the start of the ranges after it.  That is harmless if they are
    written later, and wrong if they were written before.  So the ranges are
    written a span (of ``in_file_order``) at a time, and within a span in index
    order (one numpy call writes its items in order: a test checks it), except a
    range whose window would reach a range of an earlier span: that one is copied
    exactly (:func:`copy_exactly`), after the span's windows.

    Spans go in file order so that each part of a mapped file can be released
    (:func:`~tcpchatx.analysis.capture_file.release_pages`) once copied.
    """
    n = len(size)
    source_bytes = np.frombuffer(source, dtype=np.uint8)
    targets = at_every_offset(out, VOID)
    dest = np.cumsum(size) - size
    span_of = np.empty(n, np.int64)
    for number, (lo, hi) in enumerate(spans):
        span_of[in_file_order[lo:hi]] = number
    exact = np.zeros(n, bool)
    step = 1  # range i reaches range i + step if it starts before dest[i] + WIDTH
    while step < n and (reaches := dest[step:] < dest[:-step] + WIDTH).any():
        exact[:-step] |= reaches & (span_of[step:] < span_of[:-step])
        step += 1
    for lo, hi in spans:
        rows = np.sort(in_file_order[lo:hi])
        windowed, copied = rows[~exact[rows]], rows[exact[rows]]
        targets[dest[windowed]] = windows_at(source_bytes, src[windowed])
        copy_exactly(out, source_bytes, src[copied], size[copied], dest[copied])
        first, last = in_file_order[lo], in_file_order[hi - 1]
        release_pages(source, int(src[first]), int(src[last] + size[last]))
    out[len(out) - WIDTH:] = 0


def copy_exactly(out: np.ndarray, source: np.ndarray, src: np.ndarray, size: np.ndarray,
                 dest: np.ndarray) -> None:
    """``out[d:d + n] = source[s:s + n]`` for each range: the plain way, an index per byte."""
    out[ranges(dest, size)] = source[ranges(src, size)]


def ranges(start: np.ndarray, size: np.ndarray, step: int = 1) -> np.ndarray:
    """``start[i], start[i] + step, ...`` (``size[i]`` of them) for every i, end to end."""
    begin = np.cumsum(size) - size
    return np.arange(int(size.sum()) if len(size) else 0) * step + np.repeat(start - begin * step, size)
