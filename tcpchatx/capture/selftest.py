"""Tiny, predictable loopback traffic for checking that captures are complete.

These functions use plain sockets only (no chat server), so the capture code can be
tested on its own, and they are importable by path for the rootless mode:
``run_rootless("tcpchatx.capture.selftest:exchange_lines", ..., port=5000)``.
"""

from __future__ import annotations

import socket
import threading

HOST = "127.0.0.1"


def exchange_lines(port: int, lines: list[str] | None = None, host: str = HOST) -> dict:
    """Serve one echo connection on *port* and send *lines* through it, then close.

    The client closes first, so a capture holds: SYN, SYN-ACK, ACK, each line once in
    each direction, then a FIN from each side. Returns what was sent and echoed.
    """
    lines = ["hello", "world"] if lines is None else lines
    with socket.create_server((host, port)) as listener:
        server = threading.Thread(target=_echo_one, args=(listener,), name="selftest-echo", daemon=True)
        server.start()
        echoed = []
        with socket.create_connection((host, port), timeout=10) as client:
            reader = client.makefile("r", encoding="utf-8", newline="\n")
            for line in lines:
                client.sendall(f"{line}\n".encode())
                echoed.append(reader.readline().rstrip("\n"))
            client.shutdown(socket.SHUT_WR)  # our FIN
            assert reader.read() == "", "the echo server sent more than it was asked to"  # its FIN
            reader.close()
        server.join(10)
    return {"port": port, "sent": lines, "echoed": echoed}


def refused_connect(port: int, host: str = HOST) -> dict:
    """Connect to a port nobody listens on: exactly two segments, SYN then RST-ACK."""
    try:
        socket.create_connection((host, port), timeout=10).close()
    except ConnectionRefusedError:
        return {"port": port, "refused": True}
    return {"port": port, "refused": False}


def _echo_one(listener: socket.socket) -> None:
    """Accept one connection and echo it line by line until the client's FIN."""
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as incoming:
        for line in incoming:
            conn.sendall(line)


def tcp_segments(path: str) -> list[tuple[str, bytes]]:
    """(TCP flags, payload) of every TCP segment in a capture file, in order.

    Flags use scapy's letters: ``"S"`` SYN, ``"SA"`` SYN-ACK, ``"FA"`` FIN-ACK,
    ``"RA"`` RST-ACK, ``"PA"`` data. Anything that is not TCP is listed as ``("", b"")``
    so a stray packet still shows up in a count.
    """
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    segments = []
    for packet in rdpcap(str(path)):
        if TCP in packet:
            segments.append((str(packet[TCP].flags), bytes(packet[TCP].payload)))
        else:
            segments.append(("", b""))
    return segments
