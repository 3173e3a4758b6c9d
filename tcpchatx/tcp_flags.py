"""TCP's flag bits, defined once: as in the header's flags byte, plus NS as bit 8.

The analysis keeps every packet's flags in one column (``Packets.flags``), the
Wireshark check reads them from tshark, and the plots, the replay and the labels
print them.  Each shows them its own way (Wireshark's names, tcpdump-like letters)
but takes the bits and their names from here.

Plain ints, not an ``IntFlag``: masking a numpy column with a plain int keeps its
narrow type (``flags & SYN`` stays int16), an ``IntFlag`` would widen it to int64.
No imports, so the lightest command can use them.
"""

FIN = 0x01  # no more data from the sender
SYN = 0x02  # synchronise sequence numbers: the first segment of each direction
RST = 0x04  # reset the connection
PSH = 0x08  # push: hand the data to the application now
ACK = 0x10  # the acknowledgement number is valid
URG = 0x20  # the urgent pointer is valid
ECE = 0x40  # ECN-Echo (RFC 3168)
CWR = 0x80  # congestion window reduced (RFC 3168)
NS = 0x100  # ECN-nonce concealment (RFC 3540, historic): the data-offset byte's low bit

#: Each flag's name, lowest bit first: the order Wireshark lists them in ("[FIN, PSH, ACK]").
NAMES = {FIN: "FIN", SYN: "SYN", RST: "RST", PSH: "PSH", ACK: "ACK", URG: "URG", ECE: "ECE", CWR: "CWR"}

#: Each flag's letter, for the short forms ("S", "SA", "FA").
LETTERS = {FIN: "F", SYN: "S", RST: "R", PSH: "P", ACK: "A", URG: "U", ECE: "E", CWR: "C"}

#: What each flag tells the receiver, in a few words, in the order a lab explains them
#: (the table legends of the notebooks).
MEANINGS = {
    SYN: "synchronise: open, with my initial sequence number",
    ACK: "the ack number is valid",
    PSH: "push: hand the data to the application now",
    FIN: "finish: I will send no more",
    RST: "reset: abort the connection",
    URG: "the urgent pointer is valid",
    ECE: "ECN echo",
    CWR: "congestion window reduced",
}
