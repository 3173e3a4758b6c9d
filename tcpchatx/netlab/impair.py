"""What the router does to the traffic it forwards, one direction at a time.

- :func:`bottleneck`: a rate limit with a drop-tail queue (``tc``'s tbf) on the link
  towards one side: what every home router's uplink is.
- :func:`drop_first`: drop the first forwarded packet of a given IP length in one
  direction, and only that one (nftables: a rule with a quota of one packet's bytes).
  A chat line of a length of its own is lost once, and its retransmission passes.
- :func:`break_path` and :func:`heal_path`: drop everything the router forwards, both
  ways, until healed (a cable pulled out, then back in).

Both are commands the user namespace's root may run on its own router (``tc`` from
iproute2, ``nft`` from nftables).  The kernel here has no netem, so delay and
reordering are not among them yet.
"""

from __future__ import annotations

import subprocess

from .topology import CLIENT, SERVER, Side

TABLE = "tcpchatx"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")


def bottleneck(towards: Side = SERVER, rate: str = "4mbit", buffer_bytes: int = 30_000) -> None:
    """Limit the router's link towards *towards* to *rate*, queueing at most *buffer_bytes*."""
    _run(["tc", "qdisc", "add", "dev", towards.router_link, "root", "tbf", "rate", rate,
          "burst", "16kb", "limit", str(buffer_bytes)])


def _forward_chain() -> None:
    _run(["nft", "add", "table", "inet", TABLE])
    _run(["nft", "add", "chain", "inet", TABLE, "forward",
          "{ type filter hook forward priority 0; policy accept; }"])


def drop_first(ip_length: int, towards: Side = SERVER) -> None:
    """Drop the first packet of IP total length *ip_length* forwarded towards *towards*."""
    _forward_chain()
    source = CLIENT if towards is SERVER else SERVER
    _run(["nft", "add", "rule", "inet", TABLE, "forward", "iifname", source.router_link,
          "ip", "length", str(ip_length), "quota", "until", str(ip_length), "bytes", "drop"])


BROKEN = "tcpchatx-broken"  # a table of its own, so that healing is deleting it


def break_path() -> None:
    """From now on the router forwards nothing, either way."""
    _run(["nft", "add", "table", "inet", BROKEN])
    _run(["nft", "add", "chain", "inet", BROKEN, "forward",
          "{ type filter hook forward priority -10; policy drop; }"])


def heal_path() -> None:
    """The router forwards again."""
    _run(["nft", "delete", "table", "inet", BROKEN])
