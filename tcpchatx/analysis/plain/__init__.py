"""The analysis the slow and obvious way: read these first.

Each module here does, one packet or one line at a time, what its fast twin in
``tcpchatx.analysis`` does with numpy, and tests hold each pair to the same results
on every capture:

- :mod:`.tracker`: connections, relative numbers, segment kinds, the state table's
  steps and Zeek's labels (fast twin: :mod:`tcpchatx.analysis.tracker`);
- :mod:`.chat`: byte streams, lines, what they mean, and each message's copies
  (fast twin: :mod:`tcpchatx.analysis.chat`);
- :mod:`.expert`: Wireshark's TCP expert analysis (retransmissions, duplicate ACKs,
  windows, keep-alives, ACK RTT, bytes in flight), held to tshark on every packet
  (fast twin: :mod:`tcpchatx.analysis.expert`).

:func:`tcpchatx.analysis.analyze_plainly` (``tcpchatx annotate --plain``) runs all three.
"""
