"""The pipeline in one call: capture -> packets -> connections -> chat, expert -> Analysis.

Data flows one way: :mod:`.packets` reads columns, :mod:`.tracker`
adds connections and steps, :mod:`.chat` adds lines and messages, :mod:`.expert`
Wireshark's TCP expert analysis of every packet.  An :class:`Analysis` holds them
all; tables, JSON, text and pcapng comments are made from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .chat import Chat, ChatLine, Message, find_chat_lines, read_chat_lines, reassemble_chat
from .checksums import tcp_checksums
from .expert import Expert, analyse
from .labels import DIRECTIONS, OFFLOAD_NOTE, ROLE_NAMES, UNTRACKED_NOTE
from .packets import Packets, read_packets
from .states import STEPS, State, Step
from .tracker import Connection, Tracking, connect, fits_beside, label
from .workers import beside

PHASE_OF_STEP = np.array([s.phase for s in STEPS] + ["other"], dtype=object)


@dataclass
class Analysis:
    path: str
    packets: Packets
    tracking: Tracking
    chat: Chat
    expert: Expert  # Wireshark's TCP expert analysis, a column each (analysis.expert)
    checksums: np.ndarray | None = None  # per frame (analysis.checksums), when asked to check them

    # ------------------------------------------------------------------ the parts

    @property
    def connections(self) -> list[Connection]:
        return self.tracking.connections

    @property
    def messages(self) -> list[Message]:
        return self.chat.messages

    @property
    def lines(self) -> list[ChatLine]:
        return self.chat.lines

    def __len__(self) -> int:
        return len(self.packets)

    @cached_property
    def phase(self) -> np.ndarray:
        """Each frame's phase (labels.PHASES); "other" for frames we do not track."""
        return PHASE_OF_STEP[self.tracking.step]  # step -1 picks the trailing "other"

    # ------------------------------------------------------------------ one packet

    def step(self, i: int) -> Step | None:
        """The table step of row ``i`` (frame ``i + 1``), or None if not tracked."""
        return self.tracking.step_of(i)

    def direction(self, i: int) -> str | None:
        d = int(self.tracking.direction[i])
        return DIRECTIONS[d] if d >= 0 else None

    def note(self, i: int) -> str:
        """The plain-English sentence for row ``i``: its step's, and why its length is
        the frame's when its IP header said 0 (segmentation offload)."""
        if i in self.offloaded:
            return f"{self.step_note(i)} {OFFLOAD_NOTE}"
        return self.step_note(i)

    @cached_property
    def offloaded(self) -> frozenset[int]:
        """Rows whose IP length was 0, read from the frame (``Packets.length_from_frame``)."""
        return frozenset(self.packets.length_from_frame.tolist())

    def step_note(self, i: int) -> str:
        """The sentence of row ``i``'s step in the state table."""
        step = self.step(i)
        if step is None:
            return UNTRACKED_NOTE
        p, t = self.packets, self.tracking
        d = int(t.direction[i])
        conn = self.connections[int(t.conn[i])]
        sender, peer = ROLE_NAMES[DIRECTIONS[d]], ROLE_NAMES[DIRECTIONS[1 - d]]
        length, seq = int(p.payload_len[i]), int(t.rel_seq[i])
        return step.note.format(
            Sender=sender.capitalize(), sender=sender, peer=peer,
            isn=int(p.seq[i]), len=length, seq=seq, seq_end=seq + max(length, 1) - 1,
            ack=int(t.rel_ack[i]), port=conn.server[1],
            state=State(int(t.state_before[i])).name,
        )

    def events(self, i: int) -> list[str]:
        """What Wireshark's expert analysis finds in row ``i`` (``tcp.analysis.<name>``)."""
        return self.expert.names(i)

    def info(self, i: int) -> str:
        """Row ``i``'s findings as Wireshark's Info column starts: ``"[TCP Dup ACK 5#1]"``, or ``""``."""
        return self.expert.info(i)

    def lines_of_frame(self, frame: int) -> list[ChatLine]:
        """Chat lines completed by this frame (the frame carrying their newline)."""
        return self.chat.lines_of_frame(frame)

    # ------------------------------------------------------------------ tables

    def packets_df(self):
        from .tables import packets_df

        return packets_df(self)

    def connections_df(self):
        from .tables import connections_df

        return connections_df(self)

    def messages_df(self):
        from .tables import messages_df

        return messages_df(self)

    def lines_df(self):
        from .tables import lines_df

        return lines_df(self)


def analyze(path: str | os.PathLike, server: tuple[str, int] | None = None,
            check_checksums: bool = False) -> Analysis:
    """Read a capture and analyse it: packets, TCP connections, chat lines, messages.

    ``server`` (address, port) names the chat server; by default it is the endpoint
    that answered the most connections.  ``check_checksums`` checks every TCP checksum,
    as Zeek does by default (:mod:`.checksums` says why it is off here).

    It changes nothing outside itself: no malloc setting, no garbage collector pause.
    A process that exists to analyse one big capture (``tcpchatx annotate``, the
    benchmarks) tunes itself around this call (:func:`tcpchatx.memory.tuned_for_analysis`);
    a notebook's kernel, which may host the chat server too, stays as it was.
    """
    packets = read_packets(path)
    checksums = tcp_checksums(packets) if check_checksums else None
    flows = connect(packets)
    # The chat layer needs the connections, not the labels, and labelling every
    # packet and its expert analysis are mostly numpy, which lets go of the GIL: they
    # run beside the chat layer, on the second core.  Labelling goes beside reassembly,
    # the expert beside reading the lines (mostly Python, one core); finding the lines
    # has both cores.  Each fits under the peak of memory of the part it runs beside -
    # unless a very long connection would need too much memory for that.
    alone = not fits_beside(flows)
    with beside(label, packets, flows, None, checksums, first=alone) as labelled:
        server, streams = reassemble_chat(packets, flows, server)
        del flows  # label() holds them until it is done
    tracking = labelled.result()
    lines = find_chat_lines(packets, streams, server)
    del streams  # only the distinct lines' bytes are needed from here on
    with beside(analyse, packets, tracking, first=alone) as analysed:
        chat = read_chat_lines(packets, lines)
        del lines
    expert = analysed.result()
    return Analysis(os.fspath(path), packets, tracking, chat, expert, checksums)


def analyze_plainly(path: str | os.PathLike, server: tuple[str, int] | None = None,
                    check_checksums: bool = False) -> Analysis:
    """The same :class:`Analysis` as :func:`analyze`, made the slow and obvious way: the
    plain tracker and expert analysis, one packet at a time, and the plain chat layer,
    one line at a time (:mod:`tcpchatx.analysis.plain`, the version to read first).

    Only reading the file is shared with :func:`analyze`.  ``tcpchatx annotate --plain``
    runs this; tests hold its outputs to be byte-identical to :func:`analyze`'s.
    """
    from .expert import from_findings
    from .plain.chat import analyze_chat_line_by_line
    from .plain.checksums import checksums_one_by_one
    from .plain.expert import analyse_one_by_one
    from .plain.tracker import track_one_by_one

    packets = read_packets(path)
    checksums = checksums_one_by_one(packets) if check_checksums else None
    tracking = track_one_by_one(packets, checksums)
    chat = analyze_chat_line_by_line(packets, tracking, server)
    expert = from_findings(packets, analyse_one_by_one(packets, tracking))
    return Analysis(os.fspath(path), packets, tracking, chat, expert, checksums)
