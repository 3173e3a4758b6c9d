"""The receive window: a reader that stops (``zero_window``)."""

from __future__ import annotations

import time

from ...protocol import Kind
from ...room import RoomConfig
from ..play import chat_across_router, views
from ..topology import CLIENT, SERVER
from .common import StoryError, set_sysctl


def zero_window(out_dir: str, pause: float = 2.4, router_view: bool = False) -> dict:
    """alice stops reading.  bob's lines, copied to her by the server, fill her receive
    window (kept small in the client's namespace): her ACKs announce a window of 0, and
    the server's kernel probes it, waiting longer before each probe.  After ``pause``
    seconds bob writes again; the copies waiting for alice pass the server's queue
    limit, and the server cuts her off as too slow, telling bob so.

    ``pause`` is the story's own timing (how long alice's window stays shut).
    """
    paths = views(out_dir, "zero-window", router_view)
    set_sysctl(CLIENT.namespace, "tcp_rmem", "4096 4096 4096")  # a small receive window for alice
    set_sysctl(SERVER.namespace, "tcp_wmem", "4096 4096 4096")  # and a small send buffer for the server
    with chat_across_router(paths, RoomConfig(flood_control=False), queue_bytes=16_384) as (alice, bob):
        # From here on alice reads nothing.
        line = "a line for everyone, " + "x" * 80
        for _ in range(60):  # ~6 KB of copies for alice: her window and the server's buffer fill
            bob.send(line)
        time.sleep(pause)  # her window stays shut this long: the story's own timing
        for _ in range(400):  # ~40 KB more: past the server's 16 KB queue for her
            bob.send(line)
        notices = bob.receive_until(lambda got: got.kind is Kind.NOTICE and got.text.startswith("alice left"), 15)
        cut_off = [got.text for got in notices if got.kind is Kind.NOTICE and got.text.startswith("alice left")]
        if not cut_off or "too slow" not in cut_off[-1]:
            raise StoryError(f"the server did not cut alice off as too slow: {cut_off}")
        bob.quit()
        alice.close()  # with unread data: the kernel answers with a RST
    return {"views": {name: str(path) for name, path in paths.items()}, "notice": cut_off[-1]}
