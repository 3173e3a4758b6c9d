"""From TCP segments back to chat lines, and from lines to who received what.

Theory of operation
-------------------
1. **Reassembly.**  Each direction of a connection is a byte stream numbered by the
   relative sequence number (byte 1 is the first after the SYN).  We sort that
   direction's data segments by sequence number and lay them end to end: bytes
   already placed (retransmissions, duplicates) are skipped; a hole (bytes never
   captured) ends the line in progress, which is dropped, since we cannot know it.
   Each placed run of bytes remembers the frame that carried it.  All directions
   are reassembled at once with numpy (:func:`reassemble_all`), into one array of bytes.
2. **Lines.**  The streams are cut at every ``\\n`` (found with numpy); each line is
   decoded with the server's rules (:func:`decode_line`: the same as
   :class:`tcpchatx.protocol.LineSplitter`, which a test checks).  A line knows its
   byte range, hence every frame that carried a part of it (a line split over two
   segments has two frames; one segment may carry several lines).
3. **Meaning.**  The *server* is the endpoint that answers connections (the
   responder seen most often).  Lines towards it are client lines: nicknames,
   commands and messages (:func:`~tcpchatx.protocol.parse_client_line`); lines from
   it are server lines (:func:`~tcpchatx.protocol.parse_server_line`).
4. **Fan-out.**  For each chat message a client sent, the server should send
   ``<nick> text`` to every *other* client; a ``/msg bob text`` becomes
   ``*nick* text`` to bob, and a ``/me waves`` becomes ``* nick waves`` to every
   other client.  We match each to the first unmatched such line on the other
   connections sent after the message arrived, and call the time between the two
   frames the delivery's fan-out latency.

Columns, not objects
--------------------
A big capture has hundreds of thousands of lines, so lines and messages are kept
as numpy columns (:class:`Chat`), and a :class:`ChatLine` or :class:`Message` is
only built when someone asks for it (``chat.lines``, ``chat.line(i)``, ...).
Python still does the parts that need Python, but once per *distinct* thing:

* each distinct line text is decoded and parsed once (a broadcast repeats the
  same ``<nick> text`` to every client), and its facts become numbers (a kind
  code, a nick id, a text id); which lines are the same is found without a
  Python object per line, by a hash of their bytes (:func:`line_ids`).  Server
  texts, most of them ``<nick> text``, are even parsed as bytes, so that only
  their distinct nicks and payloads become strings (:func:`_server_facts`); when
  all texts are plain ASCII, they stay one string, and a text becomes a string
  of its own only when it is read (:class:`AsciiTexts`);
* nicknames change only on a few lines (the first line of a client, the server's
  ``Welcome, nick!`` and ``X is now known as Y``): a loop over those lines only
  records each change, and every line then looks up its connection's nick at its
  own position with :func:`numpy.searchsorted`;
* the fan-out of a message whose (kind, sender, text) no other message shares is
  a pure filter over its candidate lines (numpy); messages sharing one, which
  compete for the same deliveries, are matched in a loop, in order.

Step 1 is :func:`reassemble_chat`, step 2 :func:`find_chat_lines` (numpy: bytes
and offsets), the rest :func:`read_chat_lines` (Python: texts).  The chat layer
needs only the TCP tracker's connections and relative numbers, not its labels, so
:func:`tcpchatx.analysis.run.analyze` labels the packets (mostly numpy, which lets
go of the GIL) beside steps 1-4.

Modules, in the order the data flows: :mod:`.reassembly` (step 1), :mod:`.lines`
(step 2), :mod:`.parsing` and :mod:`.nicks` (step 3), :mod:`.fanout` (step 4), all
called in turn by :mod:`.pipeline`; :mod:`.model` holds the columns and the objects.

:mod:`tcpchatx.analysis.plain.chat` is the object-per-line version, the one to read
first; a test checks that both give the same columns, lines, messages and deliveries.
"""

from .lines import decode_line, find_lines
from .model import (
    LINE_KIND_CODE,
    LINE_KIND_NAMES,
    MESSAGE_KINDS,
    NONE,
    Chat,
    ChatLine,
    Delivery,
    Message,
)
from .pipeline import (
    FoundLines,
    analyze_chat,
    find_chat_lines,
    find_server,
    read_chat_lines,
    reassemble_chat,
)
from .reassembly import Streams, reassemble_all

__all__ = [
    "LINE_KIND_CODE", "LINE_KIND_NAMES", "MESSAGE_KINDS", "NONE", "Chat", "ChatLine", "Delivery", "FoundLines", "Message",
    "Streams", "analyze_chat", "decode_line", "find_chat_lines", "find_lines", "find_server",
    "read_chat_lines", "reassemble_all", "reassemble_chat",
]
