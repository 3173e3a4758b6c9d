"""A chat across the lab's router, captured at both ends: proof that the network works.

The server listens in the server namespace; alice and bob connect from the client
namespace, through the router; alice's line reaches bob.  dumpcap records the
client's view (on ``c1``) and the server's (on ``s1``).
"""

from __future__ import annotations

from pathlib import Path

from ..capture import LiveCapture
from ..client import ChatClient
from ..protocol import Kind
from ..server import ChatServer
from .namespaces import inside
from .topology import CLIENT, SERVER

PORT = 25000  # every port is free in namespaces of our own


def chat_through_router(out_dir: str) -> dict:
    """Play the chat; return the two capture paths and what bob received."""
    out = Path(out_dir)
    views = {"client": out / "client-view.pcapng", "server": out / "server-view.pcapng"}
    with inside(SERVER.namespace):
        server = ChatServer(SERVER.address, PORT).start()
        server_capture = LiveCapture(PORT, views["server"], backend="dumpcap", interface=SERVER.host_link,
                                     marker_to=SERVER.router_address).start()
    try:
        with inside(CLIENT.namespace):
            client_capture = LiveCapture(PORT, views["client"], backend="dumpcap",
                                         interface=CLIENT.host_link, marker_to=CLIENT.router_address).start()
            alice = ChatClient.connect(SERVER.address, PORT, "alice", nodelay=True)
            bob = ChatClient.connect(SERVER.address, PORT, "bob", nodelay=True)
        alice.receive_until(lambda line: "bob joined" in line.text)
        alice.send("hello across the router")
        heard = bob.receive_until(lambda line: line.kind is Kind.CHAT)[-1]
        alice.quit()
        bob.quit()
        client_capture.stop()
        server_capture.stop()
    finally:
        server.stop()
    return {"views": {name: str(path) for name, path in views.items()}, "bob_heard": heard.text,
            "from": heard.nick}
