"""Write a copy of the capture whose packets carry their story as pcapng comments.

Open the result in Wireshark (the "Packet comments" item of each packet) or ask
tshark::

    tshark -r annotated.pcapng -Y frame.comment -T fields -e frame.comment

Each tracked TCP packet gets one ``opt_comment`` (option 1) on its Enhanced Packet
Block: the step, the note, what Wireshark's expert analysis marks it with (as its
Info column shows it), and the chat line(s) it completed.  Timestamps keep
their precision: every interface is copied with its ``if_tsresol`` (nanoseconds
from dumpcap stay nanoseconds) and the original tick counts are written unchanged.
The file is written beside the target and renamed into place, so a reader never
sees half a file.  The blocks are built by :mod:`tcpchatx.pcapng_format`.
"""

from __future__ import annotations

import os

from ..pcapng_format import (
    BLOCK_EPB,
    OPT_COMMENT,
    OPT_IF_TSRESOL,
    block,
    enhanced_packet_fields,
    interface_description,
    section_header,
    tsresol_byte,
)
from .run import Analysis, analyze


def comment_for(a: Analysis, i: int) -> str | None:
    """The comment of row ``i``: "step: note", the expert analysis's marks, then each
    chat line it completed."""
    step = a.step(i)
    if step is None:
        return None
    text = f"{step.name}: {a.note(i)}"
    marks = a.info(i)
    if marks:
        text += f"\nexpert analysis: {marks}"
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
    import tempfile  # here: the commands that write no file skip its imports

    fd, tmp = tempfile.mkstemp(prefix=".annotated-", suffix=".pcapng.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(section_header([(OPT_COMMENT, b"Annotated by tcpchatx.analysis")]))
            for iface in index.interfaces:
                resol = iface.tsresol_raw  # as the file had it: the ticks are copied unchanged
                if resol is None:  # a pcap file: its clock's resolution
                    resol = tsresol_byte(iface.ticks_per_second)
                f.write(interface_description(iface.linktype, iface.snaplen,
                                              [(OPT_IF_TSRESOL, bytes([resol]))]))
            buf = index.buffer
            chunk: list[bytes] = []
            for i in range(len(p)):
                start, caplen = int(index.data_offset[i]), int(index.caplen[i])
                fields = enhanced_packet_fields(int(index.interface[i]), int(p.ts_ticks[i]), caplen,
                                                int(index.origlen[i]))
                comment = comment_for(a, i)
                options = [(OPT_COMMENT, comment.encode("utf-8"))] if comment else []
                chunk.append(block(BLOCK_EPB, fields + bytes(buf[start : start + caplen]), options))
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
