"""The reference for the fan-out benchmark: the seed project's chat server, as it really is.

    python -m benchmarks.seed_server --host 127.0.0.1 --port 0

Theory of operation (the original's design, kept faithfully; do not "fix" it)
-----------------------------------------------------------------------------
* One thread per client.  The server asks for a nickname and takes whatever the
  next ``recv(2048)`` returns, decoded as UTF-8, as the nickname.
* Then every ``recv(2048)`` chunk, decoded as UTF-8, is one "message".  Only a
  chunk that is exactly ``/quit``, ``/online`` or ``/help`` is a command.
* Every other chunk is printed to stdout (address and nick) and goes to
  ``broadcast(chunk, nick)``, which has **no lock**: it loops over **every**
  connected client, **the sender included**, and for each calls
  ``send(("%s: %s" % (nick, chunk)).encode("utf8"))``: one encode per recipient,
  ``send`` rather than ``sendall``, and one ``try`` around the whole loop, so an
  error stops the broadcast for the recipients after it.
* No ``SO_REUSEADDR``.

Two of its bugs are part of the reference and matter to a benchmark:

* It never looks for line ends.  One ``send`` carries whatever bytes one ``recv``
  returned: often many messages (which is what makes it fast), sometimes half of
  one, and the ``"nick: "`` prefix then lands inside the other half.  The load
  generator counts such a message as lost for everyone.
* When a client disconnects, ``recv`` returns ``b""``, which is not ``/quit``: the
  thread broadcasts ``"nick: "`` to everyone, forever, at 100% CPU.  So the
  benchmark starts a fresh seed server for each run, keeps every client connected
  until all receivers have counted, and stops the server before it measures anything
  else (:class:`benchmarks.fanout.Server`).

The fan-out benchmark (:mod:`benchmarks.fanout`) measures TCPChatX's server against it.
"""

# The original's own idioms, kept as they are: %-formatting, and an encode per send.
# ruff: noqa: UP031, UP012

from __future__ import annotations

import argparse
import socket
import threading

HELP = "Commands: /online, /help, /quit"

clients: list[socket.socket] = []
nicknames: dict[socket.socket, str] = {}


def broadcast(message: str, nick: str) -> None:
    try:
        for client in clients:
            client.send(("%s: %s" % (nick, message)).encode("utf8"))
    except Exception:
        pass


def handle(client: socket.socket, address: tuple[str, int]) -> None:
    client.send("Welcome! Type your nickname and press enter: ".encode("utf8"))
    nick = client.recv(2048).decode("utf8").strip()
    nicknames[client] = nick
    clients.append(client)
    client.send(("Connected to server! Hello %s\n" % nick).encode("utf8"))
    broadcast("%s joined the chat!\n" % nick, "server")
    while True:
        message = client.recv(2048).decode("utf8")
        if message == "/quit":
            client.send("bye\n".encode("utf8"))
            clients.remove(client)
            del nicknames[client]
            client.close()
            broadcast("%s left the chat.\n" % nick, "server")
            break
        elif message == "/online":
            client.send((", ".join(nicknames.values()) + "\n").encode("utf8"))
        elif message == "/help":
            client.send((HELP + "\n").encode("utf8"))
        else:
            print("%s:%s %s: %s" % (address[0], address[1], nick, message))
            broadcast(message, nick)


def serve_forever(listener: socket.socket) -> None:
    while True:
        client, address = listener.accept()
        threading.Thread(target=handle, args=(client, address), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The seed chat server (the benchmark's reference).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((args.host, args.port))
    listener.listen(128)
    host, port = listener.getsockname()[:2]
    # The same banner shape as `tcpchatx server`, so the benchmark finds the port alike.
    print(f"Seed chat server on {host}:{port}. Connect with: nc {host} {port}", flush=True)
    try:
        serve_forever(listener)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
