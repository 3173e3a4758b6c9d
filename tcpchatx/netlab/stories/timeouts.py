"""Retransmission timeouts: a lone line lost once (``rto``), and a broken path that
makes each resend wait twice as long as the one before (``backoff``)."""

from __future__ import annotations

import re
import subprocess
import time

from ...protocol import Kind
from ...tcpinfo import Sampler
from ..impair import TABLE, break_path, drop_first, heal_path
from ..play import chat_across_router, views
from ..topology import CLIENT, SERVER
from .common import StoryError, set_sysctl

TCP_HEADER_WITH_TIMESTAMPS = 32  # 20 bytes, and the timestamps option (NOP, NOP, 10 bytes)


def rto(out_dir: str, line: str = "this line is lost once, and sent again after a timeout",
        router_view: bool = False) -> dict:
    """alice's chat line is lost once at the router; with nothing after it to provoke
    duplicate ACKs, alice's kernel resends it only when its retransmission timer runs
    out (the RTO, at least 200 ms on Linux).  bob receives it late, once.

    The tail loss probe, which would resend it after a few milliseconds, is switched
    off in the client's namespace (``tcp_early_retrans=0``), so that the timer is seen.
    """
    paths = views(out_dir, "rto", router_view)
    for namespace in (CLIENT.namespace, SERVER.namespace):
        set_sysctl(namespace, "tcp_timestamps", "1")  # the header length the drop rule counts on
    set_sysctl(CLIENT.namespace, "tcp_early_retrans", "0")
    with chat_across_router(paths) as (alice, bob):
        drop_first(20 + TCP_HEADER_WITH_TIMESTAMPS + len((line + "\n").encode()), towards=SERVER)
        with Sampler({"alice": alice.sock}) as sampler:
            alice.send(line)
            heard = bob.receive_until(lambda got: got.kind is Kind.CHAT, 10)[-1]
        dropped = _quota_used(TABLE)
        if not dropped:
            raise StoryError("the router never saw alice's line, so nothing was lost: no timeout to study")
        if heard.text != line:
            raise StoryError(f"bob heard {heard.text!r}, not alice's line")
        alice.quit()
        bob.quit()
    return {"views": {name: str(path) for name, path in paths.items()}, "line": line,
            "dropped_bytes": dropped, "tcp_info": sampler.samples}


def _quota_used(table: str) -> int:
    """Bytes that the drop rule's quota has counted (the packet it dropped)."""
    text = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, text=True,
                          check=True).stdout
    found = re.search(r"used (\d+) bytes", text)
    return int(found.group(1)) if found else 0


def backoff(out_dir: str, broken_for: float = 1.7,
            line: str = "sent while the path is broken; it gets through once it is back",
            router_view: bool = False) -> dict:
    """The path breaks just before alice sends a line, for ``broken_for`` seconds.  Her
    kernel resends it each time its retransmission timer runs out, and doubles the
    timer every time (exponential backoff: about 0.2, 0.4, 0.8 s...); the first resend
    after the path is back gets through, and bob hears the line late, once.

    ``broken_for`` is the story's own timing (how long the cable is out), not a wait
    for something to happen.
    """
    paths = views(out_dir, "backoff", router_view)
    set_sysctl(CLIENT.namespace, "tcp_early_retrans", "0")  # the timer alone resends
    with chat_across_router(paths) as (alice, bob):
        with Sampler({"alice": alice.sock}, interval=0.01) as sampler:
            break_path()
            alice.send(line)
            time.sleep(broken_for)  # the cable is out this long: the story's own timing
            heal_path()
            heard = bob.receive_until(lambda got: got.kind is Kind.CHAT, 30)[-1]
        resent = max(sample["total_retrans"] for sample in sampler.samples)
        if resent < 3:
            raise StoryError(f"alice's kernel resent the line {resent} time(s) while the path was broken; "
                             "a backoff needs at least 3")
        if heard.text != line:
            raise StoryError(f"bob heard {heard.text!r}, not alice's line")
        alice.quit()
        bob.quit()
    return {"views": {name: str(path) for name, path in paths.items()}, "line": line,
            "broken_for": broken_for, "tcp_info": sampler.samples}
