"""The receive window: a reader that stops (``zero_window``)."""

from __future__ import annotations

import time

from ...protocol import Kind
from ...room import RoomConfig
from ...tcpinfo import Sampler
from ..play import chat_across_router, views
from ..topology import CLIENT, SERVER
from .common import StoryError, confirmed, expert_events, set_sysctl


def zero_window(out_dir: str, pause: float = 2.4, router_view: bool = False) -> dict:
    """alice stops reading.  bob's lines, copied to her by the server, fill her receive
    window (kept small in the client's namespace): her ACKs announce a window of 0, and
    the server's kernel probes it, waiting longer before each probe.  After ``pause``
    seconds alice reads everything waiting for her: her kernel announces the window
    open again (a window update) and the server sends the rest.  Then she stops
    reading for good, and bob writes a lot: the copies waiting for alice pass the
    server's queue limit, and the server cuts her off as too slow, telling bob so.

    ``pause`` is the story's own timing (how long alice's window stays shut).  Her
    socket's TCP_INFO is sampled throughout (its ``receive_queue`` fills and drains).
    """
    paths = views(out_dir, "zero-window", router_view)
    set_sysctl(CLIENT.namespace, "tcp_rmem", "4096 4096 4096")  # a small receive window for alice
    set_sysctl(SERVER.namespace, "tcp_wmem", "4096 4096 4096")  # and a small send buffer for the server
    line = "a line for everyone, " + "x" * 80
    # No grace past the 16 KB: she is cut off as soon as her queue passes it (the
    # server's default lets a client stay behind for 2 s, which would only make the
    # story longer; its last window would close and be probed again meanwhile).
    with chat_across_router(paths, RoomConfig(flood_control=False), queue_bytes=16_384,
                            queue_grace=0.0) as (alice, bob):
        with Sampler({"alice": alice.sock}, interval=0.01) as sampler:
            # From here on alice reads nothing.
            for _ in range(60):  # ~6 KB of copies for alice: her window and the server's buffer fill
                bob.send(line)
            time.sleep(pause)  # her window stays shut this long: the story's own timing
            read_again_at = time.time()
            _read_lines(alice, 60)  # she reads again: the window opens
            # ... and stops reading for good.
            for _ in range(400):  # ~40 KB more: past the server's 16 KB queue for her
                bob.send(line)
            notices = bob.receive_until(lambda heard: heard.kind is Kind.NOTICE and heard.text.startswith("alice left"),
                                        15)
        cut_off = [heard.text for heard in notices if heard.kind is Kind.NOTICE and heard.text.startswith("alice left")]
        if not cut_off or "too slow" not in cut_off[-1]:
            raise StoryError(f"the server did not cut alice off as too slow: {cut_off}")
        bob.quit()
        alice.close()  # with unread data: the kernel answers with a RST
    outcome = {"views": {name: str(path) for name, path in paths.items()}, "notice": cut_off[-1],
               "read_again_at": read_again_at, "tcp_info": sampler.samples}
    return {**outcome, **confirmed(paths, lambda: _window_updated(paths["client"], read_again_at))}


def _read_lines(client, count: int, timeout: float = 10.0) -> None:
    """Read until *count* chat lines have come in."""
    deadline = time.monotonic() + timeout
    heard = 0
    try:
        while heard < count:
            heard += client.receive(max(0.0, deadline - time.monotonic())).kind is Kind.CHAT
    except TimeoutError as exc:
        raise StoryError(f"alice read only {heard} of bob's {count} lines once she read again") from exc


def _window_updated(client_view, read_again_at: float) -> dict:
    """alice's window closed (zero windows), then opened again when she read (a window update)."""
    packets = expert_events(client_view)
    zero = [frame for frame, _, names, _ in packets if "zero_window" in names]
    opened = [frame for frame, at, names, _ in packets if "window_update" in names and at >= read_again_at]
    if not zero or not opened:
        raise StoryError(f"no zero window ({zero}) or no window update after alice read again ({opened})")
    return {"zero_windows": zero, "window_update": opened[0]}
