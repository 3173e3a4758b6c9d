"""Step 2: the streams cut into lines, the same lines found by their bytes, and each
distinct line decoded with the server's rules.

Mirrors :func:`tcpchatx.analysis.plain.chat.cut_into_lines` (the version to read first).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tcpchatx import protocol as proto

from ..sorting import stable_argsort
from ..workers import for_each
from .reassembly import WORD, Streams, gather_runs
from .windows import WORDS, cut, mask_past, words_at


def find_lines(s: Streams):
    """Every complete line of every stream: (stream index, start, end) offsets in ``s.data``.

    ``end`` is just past the ``\\n``.  A line with a hole inside it is left out (we
    cannot know it); bytes after a stream's last ``\\n`` are an unfinished line.
    """
    data = np.frombuffer(s.data, dtype=np.uint8)
    # 4 MB at a time: no array of booleans as long as the data (fresh memory costs a
    # page fault per page).
    step = 1 << 22
    newline = np.concatenate([np.flatnonzero(data[lo : lo + step] == 10) + lo
                              for lo in range(0, len(data), step)] or [np.zeros(0, np.int64)])
    stream = np.searchsorted(s.begin, newline, "right") - 1
    prev = np.r_[-1, newline[:-1]]
    same = np.r_[False, stream[1:] == stream[:-1]]
    start = np.where(same, prev + 1, s.begin[stream])
    end = newline + 1
    if not len(s.gaps):
        return stream, start, end
    holes = np.searchsorted(s.gaps, newline, "right") - np.searchsorted(s.gaps, start, "right")
    keep = holes == 0
    return stream[keep], start[keep], end[keep]


KEEP_LOW_BYTES = np.array([(1 << 8 * r) - 1 for r in range(WORD + 1)], dtype=np.uint64)


def _splitmix64(n: int) -> np.ndarray:
    """``n`` well-mixed pseudo-random 64-bit numbers (SplitMix64; no numpy.random import)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# A random odd multiplier for each word position in a line (a valid line has at most
# 129 words; longer ones reuse them, and the word-by-word check keeps that exact).
_MULTIPLIERS = _splitmix64(4096) | np.uint64(1)


def line_ids(data: np.ndarray, start: np.ndarray, end: np.ndarray,
              chunk: int = 1 << 14) -> tuple[np.ndarray, np.ndarray]:
    """Number the lines by content (``data[a:b]``), in order of first appearance.

    Returns each line's id and the first line of each id.  A busy chat repeats
    one ``<nick> text`` to every client, so there are far fewer texts than lines:
    each line gets a hash of its 8-byte words (numpy, no Python object per
    line), lines with the same hash (its top 32 bits) are compared word by word
    with the first of them, and only lines that turn out to differ (a collision:
    ~n**2 / 2**33 pairs among n distinct texts, so rare) are sorted out by a dict
    of their bytes.
    """
    n = len(start)
    length = end - start
    hashes = np.empty(n, dtype=np.uint64)

    def hash_lines(lo: int) -> None:
        hashes[lo : lo + chunk] = _hashes(data, start[lo : lo + chunk], length[lo : lo + chunk])

    for_each(hash_lines, range(0, n, chunk))
    hashes >>= np.uint64(32)  # the top 32 bits: two radix passes; the check finds collisions
    order = stable_argsort(hashes)  # stable: the first line of each hash leads
    sorted_hashes = hashes[order]
    leads = np.r_[True, sorted_hashes[1:] != sorted_hashes[:-1]] if n else np.zeros(0, bool)
    first = np.empty(n, dtype=np.int64)
    first[order] = order[np.flatnonzero(leads)][np.cumsum(leads) - 1]
    del order, sorted_hashes, leads
    # Check every line against the first line with its hash.
    others = np.flatnonzero(first != np.arange(n))
    differs = np.zeros(n, dtype=bool)

    def check(lo: int) -> None:
        mine, theirs = others[lo : lo + chunk], first[others[lo : lo + chunk]]
        same_length = length[mine] == length[theirs]
        differs[mine[~same_length]] = True
        mine, theirs = mine[same_length], theirs[same_length]
        differs[mine[_unequal(data, start[mine], start[theirs], length[mine])]] = True

    for_each(check, range(0, len(others), chunk))
    firsts_seen: dict[bytes, int] = {}
    for i in np.flatnonzero(differs).tolist():
        first[i] = firsts_seen.setdefault(data[start[i] : end[i]].tobytes(), i)
    leads = first == np.arange(n)
    return (np.cumsum(leads) - 1)[first].astype(np.int32), np.flatnonzero(leads)


def _hashes(data: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each line ``data[a:a + n]``: its words, each times a random odd
    number for its position in the line, summed (modulo 2**64), and its length mixed in.

    Read a window at a time (:mod:`.windows`): a line of up to 128 bytes is one
    window, with the bytes past its end masked out.
    """
    piece_start, piece_length, of_line, number = cut(start, length)
    words = mask_past(words_at(data, piece_start), piece_length)
    per_piece = _MULTIPLIERS.reshape(-1, WORDS)  # a row of multipliers for each piece of a line
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64, on purpose
        words *= per_piece[0] if number is None else per_piece[number % len(per_piece)]
        piece_hash = words.sum(axis=1, dtype=np.uint64)
        h = _sum_per_line(piece_hash, of_line, len(start))
        h ^= length.astype(np.uint64) * _MULTIPLIERS[-1]
    return h


def _unequal(data: np.ndarray, a: np.ndarray, b: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Whether ``data[a:a + n]`` and ``data[b:b + n]`` differ, for each pair (a window at a time)."""
    piece_a, piece_length, of_line, _ = cut(a, length)
    piece_b = cut(b, length)[0]
    differ = mask_past(words_at(data, piece_a) ^ words_at(data, piece_b), piece_length).any(axis=1)
    return _sum_per_line(differ.astype(np.uint64), of_line, len(a)) != 0


def _sum_per_line(per_piece: np.ndarray, of_line: np.ndarray | None, n: int) -> np.ndarray:
    """Each line's pieces' values summed (a line's pieces are next to each other;
    ``of_line`` None: one piece each)."""
    if of_line is None:
        return per_piece
    count = np.bincount(of_line, minlength=n)
    total = np.zeros(n, dtype=per_piece.dtype)
    has = count > 0
    total[has] = np.add.reduceat(per_piece, (np.cumsum(count) - count)[has])
    return total


def joined_lines(data: np.ndarray, start: np.ndarray, end: np.ndarray, chunk: int = 1 << 18) -> memoryview:
    """The lines ``data[a:b]`` end to end (runs copied as in reassembly), as bytes:
    a view of the copy, not a second copy of every line's bytes."""
    size = end - start
    return memoryview(gather_runs(data, start, size, chunk)[:-WORD])


def decode_line(raw: bytes, max_bytes: int = proto.MAX_LINE_BYTES) -> str | None:
    """A line's text as the server's LineSplitter would decode it; None if invalid."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if len(raw) > max_bytes:
        return None
    try:
        return raw.decode(proto.ENCODING)
    except UnicodeDecodeError:
        return None


def decode_all(joined: bytes | memoryview) -> Sequence[str | None]:
    """``[decode_line(raw) for raw in joined.split(b"\\n")[:-1]]`` (every line ends in
    ``\\n``), decoding them all in one call when we can.

    UTF-8 never uses byte 10 inside a character, so if the whole decodes, the
    pieces between newlines are the texts.  If they are all plain ASCII and
    valid (the usual case), they stay one string: see :class:`AsciiTexts`.
    """
    if not joined:
        return []
    try:
        decoded = str(joined, proto.ENCODING)
    except UnicodeDecodeError:
        return [decode_line(raw) for raw in bytes(joined).split(b"\n")[:-1]]
    # Over-long lines and a trailing "\r" need decode_line's rules.
    raw = np.frombuffer(joined, dtype=np.uint8)
    newline = np.flatnonzero(raw == 10)
    length = np.diff(newline, prepend=-1) - 1
    with_cr = (length > 0) & (raw[np.maximum(newline - 1, 0)] == 13)
    special = np.flatnonzero((length > proto.MAX_LINE_BYTES) | with_cr).tolist()
    if not special and decoded.isascii():
        return AsciiTexts(decoded, newline)
    pieces = decoded.split("\n")[:-1]
    if special:
        lines = bytes(joined).split(b"\n")
        for i in special:
            pieces[i] = decode_line(lines[i])
    return pieces


class AsciiTexts(Sequence):
    """Texts that are all ASCII, kept as one string: text ``k`` is made on demand.

    A busy chat has many distinct texts, and the analysis reads most of them only
    as bytes (:func:`_server_facts`): a string each would be a Python object made,
    in fresh memory, for nothing.  In ASCII a character is a byte, so where a text
    sits in ``decoded`` is where its bytes sit in the encoded texts too.
    """

    def __init__(self, decoded: str, newline: np.ndarray) -> None:
        self.decoded = decoded  # every text, each followed by "\n"
        self.ends = newline  # where each text's "\n" is
        self.starts = np.r_[0, newline[:-1] + 1]

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return self.decoded[self.starts[k] : self.ends[k]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded.split("\n")[:-1])

    def __contains__(self, text) -> bool:
        return isinstance(text, str) and text in iter(self)

    def pick(self, ids: np.ndarray) -> list[str]:
        """``[self[k] for k in ids]``, without a numpy int per id."""
        text = self.decoded
        return [text[a:b] for a, b in zip(self.starts[ids].tolist(), self.ends[ids].tolist(), strict=True)]


def pick(values: Sequence, ids: np.ndarray) -> list:
    """``[values[k] for k in ids]``, indexed by numpy in C: no Python int per id
    (``ids.tolist()`` would make a Python int per id, in fresh memory: a fault a page)."""
    if isinstance(values, AsciiTexts):
        return values.pick(ids)
    return np.array(values, dtype=object)[ids].tolist()
