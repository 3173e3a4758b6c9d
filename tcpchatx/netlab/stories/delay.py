"""Round-trip time: the same chat over a path of 0, 50 and 200 ms (``rtt``)."""

from __future__ import annotations

import time

from ...analysis import analyze
from ...protocol import Kind
from ...room import RoomConfig
from ..play import chat_across_router, views
from ..relay import Relay
from .common import StoryError, confirmed

SYN, SYN_ACK = 0x02, 0x12


def rtt(out_dir: str, rtts_ms: tuple[float, ...] = (0, 50, 200), lines: int = 4, router_view: bool = False) -> dict:
    """The same chat over paths with round trips of ``rtts_ms`` (half the delay each way).

    - **The handshake** takes one round trip: the client's SYN-ACK comes back an RTT
      after its SYN, and only then may it send.
    - **Nagle's algorithm** (alice's socket as a program gets it, without
      ``TCP_NODELAY``): alice writes ``lines`` lines at once.  The first leaves at once;
      the rest wait in her kernel while the first is unacknowledged, and leave together
      when its ACK comes back - a round trip later.  On a slow path a chat line can
      wait a whole RTT before it even leaves.
    - **Delayed ACKs**: the server has nothing to send alice back (it does not echo
      her lines to her), so its kernel delays its ACK, hoping for data to carry it
      (about 40 ms on Linux).  Nagle waits for that ACK: alice's held lines leave an
      RTT *plus ~40 ms* after the first (``nagle_wait_ms``) - 42 ms even on a path of
      0 ms.  This is the classic Nagle-and-delayed-ACK stall, and why chat programs set
      ``TCP_NODELAY``.
    """
    runs = {}
    for rtt_ms in rtts_ms:
        name = f"rtt-{rtt_ms:g}ms"
        paths = views(out_dir, name, router_view)
        each_way = {"delay_ms": rtt_ms / 2}
        written = [f"line {k + 1} of {lines}, written at once" for k in range(lines)]
        last = written[-1]
        with Relay({"to_server": each_way, "to_client": each_way}), \
                chat_across_router(paths, RoomConfig(flood_control=False)) as (alice, bob):
            alice.set_nodelay(False)  # Nagle, as every socket has by default
            started = time.monotonic()
            for line in written:
                alice.send(line)
            bob.receive_until(lambda got: got.kind is Kind.CHAT and got.text == last, 10)  # noqa: B023 (used at once)
            all_heard = time.monotonic() - started
            port = alice.local_address[1]
            alice.quit()
            bob.quit()
        runs[name] = {"rtt_ms": rtt_ms, "views": {side: str(path) for side, path in paths.items()},
                      "all_heard_s": all_heard,
                      **confirmed(paths, lambda paths=paths, rtt_ms=rtt_ms, port=port, written=written:
                                  _measure(paths, rtt_ms, port, written))}
    return runs


def _measure(paths, rtt_ms: float, port: int, written: list[str]) -> dict:
    """Handshake time and Nagle's segments, from the client's view."""
    a = analyze(paths["client"])
    p = a.packets
    syn = next(i for i in range(len(p)) if p.flags[i] == SYN)
    syn_ack = next(i for i in range(len(p)) if p.flags[i] == SYN_ACK and p.dport[i] == p.sport[syn])
    handshake = float(p.seconds(syn_ack) - p.seconds(syn))
    if handshake < rtt_ms / 1000:
        raise StoryError(f"the handshake took {handshake * 1000:.1f} ms on a path of {rtt_ms:g} ms")
    ours = [i for i in range(len(p)) if p.sport[i] == port and any(
        line.encode() in p.payload(i) for line in written)]
    segments = [p.payload(i).count(b"\n") for i in ours]
    if rtt_ms and len(ours) >= len(written):
        raise StoryError(f"alice's {len(written)} lines left in {len(ours)} segments: Nagle held none back")
    return {"handshake_ms": handshake * 1000, "lines_per_segment": segments,
            "nagle_wait_ms": float(p.seconds(ours[-1]) - p.seconds(ours[0])) * 1000}
