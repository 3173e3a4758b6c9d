"""Write a copy of the capture whose packets carry their story as pcapng comments.

Open the result in Wireshark (the "Packet comments" item of each packet) or ask
tshark::

    tshark -r annotated.pcapng -Y frame.comment -T fields -e frame.comment

Each tracked TCP packet gets one ``opt_comment`` (option 1) on its Enhanced Packet
Block: the step, the note, and the chat line(s) it completed.  Timestamps keep
their precision: every interface is copied with its ``if_tsresol`` (nanoseconds
from dumpcap stay nanoseconds) and the original tick counts are written unchanged.
The file is written beside the target and renamed into place, so a reader never
sees half a file.
"""

from __future__ import annotations

import math
import os
import struct

from .run import Analysis, analyze

BLOCK_SHB, BLOCK_IDB, BLOCK_EPB = 0x0A0D0D0A, 1, 6
OPT_COMMENT, OPT_IF_TSRESOL = 1, 9


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


def _tsresol_byte(ticks_per_second: int, raw: int | None) -> int:
    if raw is not None:
        return raw
    exponent = round(math.log10(ticks_per_second))
    if 10**exponent == ticks_per_second:
        return exponent
    return 0x80 | round(math.log2(ticks_per_second))


def comment_for(a: Analysis, i: int) -> str | None:
    """The comment of row ``i``: "step: note", then each chat line it completed."""
    step = a.step(i)
    if step is None:
        return None
    text = f"{step.name}: {a.note(i)}"
    for line in a.lines_of_frame(int(a.packets.frame[i])):
        shown = line.text if line.text is not None else "(invalid line)"
        text += f'\nchat ({line.kind}): "{shown}"'
    return text


def write_annotated(analysis_or_path: Analysis | str | os.PathLike, out_path: str | os.PathLike) -> str:
    """Write the annotated pcapng copy; return its path."""
    a = analysis_or_path if isinstance(analysis_or_path, Analysis) else analyze(analysis_or_path)
    p = a.packets
    _ = a.lines  # build every line once: comment_for's lines_of_frame then slices that list
    index = p.index
    out_path = os.fspath(out_path)
    directory = os.path.dirname(os.path.abspath(out_path))
    import tempfile  # here: the commands that write no file skip its imports (~4 ms)

    fd, tmp = tempfile.mkstemp(prefix=".annotated-", suffix=".pcapng.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
            f.write(_block(BLOCK_SHB, shb + _option(OPT_COMMENT, b"Annotated by tcpchatx.analysis")
                           + b"\0" * 4))
            for iface in index.interfaces:
                resol = _tsresol_byte(iface.ticks_per_second, iface.tsresol_raw)
                body = struct.pack("<HHI", iface.linktype, 0, iface.snaplen)
                body += _option(OPT_IF_TSRESOL, bytes([resol])) + b"\0" * 4
                f.write(_block(BLOCK_IDB, body))
            buf = index.buffer
            chunk: list[bytes] = []
            for i in range(len(p)):
                start, caplen = int(index.data_offset[i]), int(index.caplen[i])
                ticks = int(p.ts_ticks[i])
                body = struct.pack("<IIIII", int(index.interface[i]), ticks >> 32 & 0xFFFFFFFF,
                                   ticks & 0xFFFFFFFF, caplen, int(index.origlen[i]))
                body += bytes(buf[start : start + caplen]) + b"\0" * (-caplen % 4)
                comment = comment_for(a, i)
                if comment:
                    body += _option(OPT_COMMENT, comment.encode("utf-8")) + b"\0" * 4
                chunk.append(_block(BLOCK_EPB, body))
                if len(chunk) >= 4096:
                    f.write(b"".join(chunk))
                    chunk.clear()
            f.write(b"".join(chunk))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out_path
