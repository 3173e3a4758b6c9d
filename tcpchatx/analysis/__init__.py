"""Read a TCPChatX capture and explain it packet by packet.

    from tcpchatx.analysis import analyze, format_ladder
    a = analyze("captures/chat.pcapng")
    a.connections_df()          # one row per TCP connection, with Zeek labels
    print(format_ladder(a))     # a ladder diagram with the chat text

Modules, in the order data flows through them:
``capture_file`` (find records) -> ``packets`` (header columns, decoded by
``link``, ``ip``, ``tcp``: one module per layer) -> ``states`` (the table) + ``zeek``
(Zeek's labels) -> ``tracker`` (connections, steps) -> ``chat`` (lines, messages)
-> ``expert`` (Wireshark's TCP expert analysis) -> ``run`` (:func:`analyze`) ->
``tables``, ``export``, ``text``, ``pcapng`` (outputs).  ``labels`` defines every
label once; the pcapng format and the TCP flag bits live one level up, shared with
live capture (``tcpchatx.pcapng_format``, ``tcpchatx.tcp_flags``).
"""

from .capture_file import CaptureFormatError
from .chat import ChatLine, Delivery, Message
from .export import to_json, write_json
from .labels import (
    CLOSE_KINDS,
    CLOSERS,
    PHASES,
    ZEEK_CONN_STATES,
    ZEEK_HISTORY_LETTERS,
    CloseKind,
    ConnState,
)
from .packets import Packets, read_packets
from .pcapng import write_annotated
from .run import Analysis, analyze, analyze_plainly
from .states import TABLE, SegmentKind, State, Step
from .text import format_ladder, format_summary
from .tracker import Connection

__all__ = [
    "CLOSE_KINDS", "CLOSERS", "PHASES", "TABLE", "ZEEK_CONN_STATES", "ZEEK_HISTORY_LETTERS",
    "Analysis", "CaptureFormatError", "ChatLine", "CloseKind", "ConnState", "Connection", "Delivery",
    "Message", "Packets", "SegmentKind", "State", "Step", "analyze", "analyze_plainly", "format_ladder",
    "format_summary", "read_packets",
    "to_json", "write_annotated", "write_json",
]
