"""A path that loses at random (``random_loss``): a bulk transfer across a router that
drops a share of the frames towards the server, chosen by a seeded coin.

The other loss stories lose one chosen segment; real paths lose whichever packets are
unlucky.  TCP's promise is the same: every byte arrives, once and in order, and each
lost segment is sent again, either when duplicate ACKs and SACK blocks reveal the hole
(a fast retransmission) or when the retransmission timer runs out.  With ``sack=False``
(``tcp_sack=0`` in the client's namespace) the sender learns of one hole per round trip
and may resend bytes that had arrived.
"""

from __future__ import annotations

from ..play import BULK_PORT, bulk_transfer, views
from ..relay import Relay
from ..topology import CLIENT
from .common import StoryError, confirmed, set_sysctl


def random_loss(out_dir: str, loss_rate: float = 0.02, sack: bool = True, size: int = 300_000,
                delay_ms: float = 10, seed: int = 1, router_view: bool = False) -> dict:
    """``size`` bytes from the client to the server, cubic, ``delay_ms`` each way; the
    router loses each frame towards the server with probability ``loss_rate`` (seeded by
    ``seed``: the same frames each run), ACKs coming back are never lost.

    Returns the transfer (:func:`tcpchatx.netlab.play.bulk_transfer`) with the relay's
    report, and ``lost_at_random``: each frame the router dropped, ``seq`` (absolute) and
    ``length`` (0: no data, such as the handshake's ACK).
    """
    if not 0 < loss_rate < 0.5:
        raise StoryError(f"loss_rate is the share of frames the router loses, more than 0 and under 0.5 "
                         f"(2% is 0.02), not {loss_rate}")
    paths = views(out_dir, "random-loss", router_view)
    script = {"to_server": {"delay_ms": delay_ms, "loss": loss_rate, "seed": seed},
              "to_client": {"delay_ms": delay_ms}}
    set_sysctl(CLIENT.namespace, "tcp_sack", "1" if sack else "0")
    try:
        with Relay(script) as relay:
            run = bulk_transfer(paths, size, congestion="cubic")
    finally:
        set_sysctl(CLIENT.namespace, "tcp_sack", "1")
    lost = [{"seq": e["seq"], "length": e["length"] or 0} for e in relay.final["events"]["to_server"]
            if e["event"] == "random loss"]
    run.update(relay=relay.final, loss_rate=loss_rate, sack=sack, lost_at_random=lost)
    if run["received"] != [size]:
        raise StoryError(f"the server received {run['received']} of {size} bytes")

    def check() -> None:
        lost_data = [e for e in lost if e["length"]]
        if not lost_data:
            raise StoryError(f"the router lost none of the {size} bytes' segments at loss_rate {loss_rate}: "
                             "nothing to resend (raise loss_rate or size, or try another seed)")
        from ...analysis import analyze

        sent = analyze(paths["client"]).packets
        unsent = [e["seq"] for e in lost_data if _copies(sent, e["seq"]) < 2]
        if unsent:
            raise StoryError(f"the sender's view has no second copy of the lost segment(s) at raw seq {unsent}")

    confirmed(paths, check)
    return run


def _copies(p, seq: int) -> int:
    """How many of the client's data segments in the packets *p* (a capture's
    ``Analysis.packets``) carry the byte at raw *seq*: the first copy, and each resend of
    it (a resend may be larger, merged with the segments behind it)."""
    sent = (p.dport == BULK_PORT) & (p.payload_len > 0)
    into = (seq - p.seq[sent].astype("int64")) % 2**32  # how far into each segment the byte is
    return int((into < p.payload_len[sent]).sum())
