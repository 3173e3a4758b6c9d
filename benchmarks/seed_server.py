"""The reference for the fan-out benchmark: the seed project's chat server, as it was.

    python -m benchmarks.seed_server --host 127.0.0.1 --port 0

Theory of operation (the design, kept faithfully; do not "fix" it)
-------------------------------------------------------------------
* The server sends ``NICK`` to a new client and takes whatever its next ``recv()``
  returns as the nickname; then it says ``Connected to server!`` to the client and
  ``NICK joined!`` to everyone else.
* Each client gets **one thread**: ``recv(2048)``, and each chunk it returns goes
  straight to every other client with **one** ``sock.send(chunk)`` per recipient,
  under one lock over the client list.

It is fast for a reason that makes it wrong: it never looks for line ends, so one
``send`` carries whatever bytes one ``recv`` happened to return: often many
messages, sometimes half of one.  And one client that stops reading blocks the
sender's ``send`` under the lock, so everybody waits.  The fan-out benchmark
(:mod:`benchmarks.fanout`) measures TCPChatX's server against it.
"""

from __future__ import annotations

import argparse
import socket
import threading

RECV_BYTES = 2048


class SeedServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.address = self.listener.getsockname()[:2]
        self.clients: list[socket.socket] = []
        self.nicknames: list[str] = []
        self.lock = threading.Lock()

    def broadcast(self, message: bytes, sender: socket.socket | None) -> None:
        with self.lock:
            for client in self.clients:
                if client is not sender:
                    try:
                        client.send(message)  # one send, not sendall: the seed's own call
                    except OSError:
                        pass

    def handle(self, client: socket.socket) -> None:
        while True:
            try:
                message = client.recv(RECV_BYTES)
            except OSError:
                message = b""
            if not message:
                break
            self.broadcast(message, client)  # the chunk as it came, lines or not
        with self.lock:
            index = self.clients.index(client)
            self.clients.pop(index)
            nickname = self.nicknames.pop(index)
        client.close()
        self.broadcast(f"{nickname} left!\n".encode(), None)

    def serve_forever(self) -> None:
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                client.send(b"NICK")
                nickname = client.recv(1024).decode(errors="replace").strip()
            except OSError:
                client.close()
                continue
            self.broadcast(f"{nickname} joined!\n".encode(), None)
            with self.lock:
                self.clients.append(client)
                self.nicknames.append(nickname)
            client.send(b"Connected to server!\n")
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The seed chat server (the benchmark's reference).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)
    server = SeedServer(args.host, args.port)
    host, port = server.address
    # The same banner shape as `tcpchatx server`, so the benchmark finds the port alike.
    print(f"Seed chat server on {host}:{port}. Connect with: nc {host} {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
