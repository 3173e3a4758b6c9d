"""Congestion control in a lab story: where slow start ends, what the router dropped and
how the sender recovered, the congestion controls side by side, and what held a
transfer back, as the kernel counts it.

Each helper takes a :class:`~.stories.StoryRun` of the ``bottleneck`` or the ``limits``
story (and one of its parts: ``"cubic"``, ``"reno"``, ``"bbr"``; ``"rwnd"``, ``"app"``,
``"cwnd"``) and returns plain values or a small table, packet numbers included, so that
a notebook cell can ask its question first and check the answer after.  The transfer
is one connection: the client sends, the server receives and acknowledges.

Frame numbers are the client's view's (the capture on the sender's side of the router)
unless a column says ``server``.  Times are milliseconds since the transfer's SYN
(``_ms``), on the clock the captures and the kernel's samples share: the time-sequence
graph's axis, and a thousand times :func:`tcpchatx.plots.tcp_state`'s.

Theory of operation
-------------------
*The kernel's numbers* are TCP_INFO samples of the sender, every few milliseconds
(:class:`tcpchatx.tcpinfo.Sampler`): ``snd_cwnd`` and ``snd_ssthresh`` in segments
(2**31 - 1: not set yet), ``ca_state_name`` (Open; Disorder: duplicate ACKs or SACKs
seen; Recovery: resending after a loss; Loss: after a timeout), ``delivered`` (segments
delivered so far; the SYN counts one).  The functions on plain samples
(:func:`episodes`, :func:`early_threshold`, :func:`first_loss`, :func:`in_flight`) are the
rules; the ones on a story apply them.

*Slow start* (RFC 5681, 3.1): every segment acknowledged adds one segment to cwnd, so
each round trip sends about twice as many as the one before.  A *round* here is read
from the capture: the segments sent from the moment the first segment of the round
before is acknowledged until the first segment of this one is (round 1: the initial
window, sent before any ACK came back), up to the server's first ACK with a SACK block,
the first sign of a loss.  Slow start ends at a loss: the kernel goes into Recovery,
and a loss-based algorithm sets ssthresh to β times the window (``BETAS``: cubic 0.7,
reno 0.5).  Or sooner, without a loss, when ssthresh is set while the kernel is still
Open: cubic's HyStart does so when the round trips of a round grow (a queue is
filling), and bbr when its startup ends (to its estimate of the path's BDP).

*Tail drops*: a data segment in the client's view that the server's view never saw
was lost on the way: here, dropped at the router, whose queue was full.  A *recovery episode*
is a span of samples in which the kernel was not Open; resends and duplicate ACKs
belong to the episode whose span (widened by one sampling interval in front: the
state is read after the ACK that changed it) holds them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..analysis.views import ConnectionPair, Packet, pair_views
from .loss import sack_text
from .stories import StoryRun, _analyse, file_version

#: How far each loss-based algorithm cuts its window at a loss: ssthresh = β × cwnd
#: (Linux: cubic's ``beta`` is 717/1024; reno halves, RFC 5681 (4)).  bbr's loss sets no
#: ssthresh: it paces at its estimate of the path's rate instead.
BETAS = {"cubic": 717 / 1024, "reno": 0.5}
UNSET = 2**31 - 1  # TCP_INFO's snd_ssthresh before the first loss ("infinity")
OPEN = "Open"
#: ``tc``'s rate units (``tc(8)``: bit, kbit, mbit, gbit; and bps, kbps, mbps: bytes per second).
RATE_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
              "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}


# --------------------------------------------------------------------------- the path


def bits_per_second(rate: str) -> float:
    """A rate as ``tc`` writes it (``"4mbit"``: 4,000,000 bits per second)."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", rate.lower())
    if not found or found.group(2) not in RATE_UNITS:
        raise ValueError(f"not a tc rate: {rate!r} (write it like '4mbit' or '500kbit')")
    return float(found.group(1)) * RATE_UNITS[found.group(2)]


def queue_delay_ms(buffer_bytes: int, rate: str) -> float:
    """How long a full queue of ``buffer_bytes`` takes to drain at ``rate``, in ms."""
    return buffer_bytes * 8 / bits_per_second(rate) * 1000


def bdp_bytes(rate: str, rtt_ms: float) -> float:
    """The bandwidth-delay product: the bytes a path of ``rate`` holds in flight over a
    round trip of ``rtt_ms`` with no queue."""
    return bits_per_second(rate) / 8 * rtt_ms / 1000


# --------------------------------------------------------------------------- the kernel's samples


def _threshold(value: int) -> int | None:
    """An ssthresh as TCP_INFO gives it, None while it is not set."""
    return value if value < UNSET else None


def in_flight(sample: dict[str, Any]) -> int:
    """Segments in flight, as the kernel counts them (``tcp_packets_in_flight``): sent and
    not acknowledged, less those SACKed or judged lost, plus their resends."""
    return sample["unacked"] - sample["sacked"] - sample["lost"] + sample["retrans"]


@dataclass(frozen=True)
class Episode:
    """A span of samples in which the kernel's congestion state was not Open."""

    start: float  # the first sample not Open (seconds since 1970)
    end: float  # the first sample Open again (or the last sample)
    before: float  # the sample before ``start``: the state changed after it
    states: tuple[str, ...]  # the states it went through, in order
    cwnd_before: int  # the last Open sample's cwnd
    cwnd_after: int  # cwnd at ``end``
    ssthresh: int | None  # ssthresh at ``end`` (None: still not set)
    retransmitted: int  # how many segments the kernel resent meanwhile (total_retrans grew)


def episodes(samples: Sequence[dict[str, Any]]) -> list[Episode]:
    """The spans of ``samples`` (one socket's, in time order) that were not Open."""
    found: list[Episode] = []
    k = 0
    while k < len(samples):
        if samples[k]["ca_state_name"] == OPEN:
            k += 1
            continue
        first = k
        while k < len(samples) and samples[k]["ca_state_name"] != OPEN:
            k += 1
        last = min(k, len(samples) - 1)
        before = samples[first - 1] if first else samples[first]
        states = tuple(dict.fromkeys(s["ca_state_name"] for s in samples[first:k]))
        end = samples[last]
        found.append(Episode(samples[first]["time"], end["time"], before["time"], states, before["snd_cwnd"],
                             end["snd_cwnd"], _threshold(end["snd_ssthresh"]),
                             end["total_retrans"] - before["total_retrans"]))
    return found


def slow_start_samples(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples of slow start: from the first, while the kernel is Open with no
    ssthresh set."""
    out = []
    for sample in samples:
        if sample["ca_state_name"] != OPEN or sample["snd_ssthresh"] < UNSET:
            break
        out.append(sample)
    return out


def _sender(samples: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in samples if s.get("name") == "sender"]


def _gap(samples: Sequence[dict[str, Any]]) -> float:
    """The sampling interval (seconds): the median gap between samples."""
    gaps = sorted(b["time"] - a["time"] for a, b in zip(samples, samples[1:]))
    return gaps[len(gaps) // 2] if gaps else 0.0


def _at(samples: Sequence[dict[str, Any]], when: float) -> dict[str, Any] | None:
    """The last sample at or before ``when`` (None: the sampling had not begun)."""
    earlier = [s for s in samples if s["time"] <= when]
    return earlier[-1] if earlier else None


# --------------------------------------------------------------------------- the transfer's packets


@dataclass(frozen=True)
class _Transfer:
    """One run's connection in both views, read once."""

    pair: ConnectionPair
    t0: float  # the SYN (client's view)
    data: tuple[Packet, ...]  # the client's data segments, client's view, in order
    resends: frozenset[int]  # frames of those that carry bytes sent before
    acks: tuple[Packet, ...]  # the server's packets, client's view
    dup_acks: frozenset[int]  # frames of those Wireshark calls duplicate ACKs
    lost: tuple[Packet, ...]  # data segments the server's view never saw
    transit: float  # least seconds from the client's view to the server's: the one-way delay


def _read(story: StoryRun, part: str | None) -> _Transfer:
    views = story.views(_part(story, part))
    client, server = str(views["client"]), str(views["server"])
    return _read_views(client, server, file_version(client), file_version(server))


@lru_cache(maxsize=16)  # per version of the files: a story played again writes the same names
def _read_views(client_view: str, server_view: str, *versions: tuple[int, int]) -> _Transfer:
    a = _analyse(client_view)
    conn = max(a.connections, key=lambda c: c.payload_bytes[0])  # the bulk transfer
    pairing = pair_views(client_view, server_view)
    pair = next(p for p in pairing.connections if p.client == conn.client)
    data, resends, highest = [], set(), 0
    for p in pair.sent_by(pair.client, "client"):
        if p.length:
            data.append(p)
            if p.rel_seq < highest:
                resends.add(p.frame)
            highest = max(highest, p.rel_seq + p.length)
    acks = tuple(pair.sent_by(pair.server, "client"))
    dup_acks = frozenset(p.frame for p in acks if "duplicate_ack" in p.events)
    lost = tuple(p for p in data if pair.twin_of(p) is None)
    transit = pairing.transit["client"] or 0.0
    return _Transfer(pair, conn.start, tuple(data), frozenset(resends), acks, dup_acks, lost, transit)


def router_refused(run: dict[str, Any]) -> int:
    """How many frames towards the server the router could not put in its queue, as the
    lab's relay (the router's forwarding program, :mod:`tcpchatx.netlab.relay`) counted
    them; the queue's own count of its drops (``run["dropped"]``) where the run has no
    relay's record."""
    counts = (run.get("relay") or {}).get("counts", {}).get("to_server", {})
    return counts.get("queue_full", run["dropped"])


def _part(story: StoryRun, part: str | None) -> str | None:
    return part if part is not None else story.parts[0]


def _ms(t: _Transfer, seconds: float) -> float:
    return round((seconds - t.t0) * 1000, 3)


def _samples(story: StoryRun, part: str | None) -> list[dict[str, Any]]:
    return _sender(story.part(_part(story, part))["tcp_info"])


def used_parameters(story: StoryRun) -> dict[str, Any]:
    """The parameters the story was played with: its defaults, and what was asked for
    (in reference mode, the defaults alone: the reference captures were made with them)."""
    from ..netlab import stories as played
    from ..scenarios.lab import LAB_STORIES

    signature = inspect.signature(getattr(played, LAB_STORIES[story.name].function))
    used = {key: p.default for key, p in signature.parameters.items() if p.default is not p.empty}
    if story.mode != "reference":
        used.update(story.requested)
    return used


def bulk_connection(story: StoryRun, part: str | None = None) -> int:
    """The transfer's connection id in the client's view (what the figures in ``plots`` take)."""
    t = _read(story, part)
    a = _analyse(str(story.views(_part(story, part))["client"]))
    return next(c.id for c in a.connections if c.client == t.pair.client)


def transfer_packets(story: StoryRun, part: str | None = None, frames: tuple[int, int] | None = None):
    """The transfer's packets in the client's view, one row each (``frames``: from the
    first to the last, inclusive; default all): ``client`` and ``server``, the packet's
    numbers in both views (``<NA>``: the server's view never saw it: dropped on the way);
    ``ms`` when the client's view saw it; ``who``, ``flags``, ``seq``, ``ack``, ``len``;
    ``sack`` the ACK's SACK blocks (relative, from the first byte the server holds to just
    past the last); ``in_flight`` Wireshark's bytes in flight after a data segment;
    ``marks`` what Wireshark's Info column says; and what the sender's kernel said at the
    last sample before it: ``cwnd`` (segments) and ``state`` (its congestion state)."""
    import pandas as pd

    from ..analysis.labels import FLAG_STRINGS

    part = _part(story, part)
    t = _read(story, part)
    samples = _samples(story, part)
    a = _analyse(str(story.views(part)["client"]))
    in_flight_bytes = a.expert.bytes_in_flight
    rows = []
    for p in t.pair.packets["client"]:
        if frames is not None and not frames[0] <= p.frame <= frames[1]:
            continue
        twin = t.pair.twin_of(p)
        kernel = _at(samples, p.time)
        sent = p.sender == t.pair.client
        rows.append({"client": p.frame, "server": twin.frame if twin else None, "ms": _ms(t, p.time),
                     "who": "client → server" if sent else "server → client",
                     "flags": FLAG_STRINGS[p.flags & 0x1FF], "seq": p.rel_seq, "ack": p.rel_ack, "len": p.length,
                     "sack": sack_text(p),
                     "in_flight": int(in_flight_bytes[p.frame - 1]) if sent and in_flight_bytes[p.frame - 1] >= 0
                     else None,
                     "marks": a.info(p.frame - 1), "cwnd": kernel["snd_cwnd"] if kernel else None,
                     "state": kernel["ca_state_name"] if kernel else ""})
    table = pd.DataFrame(rows, columns=["client", "server", "ms", "who", "flags", "seq", "ack", "len", "sack",
                                        "in_flight", "marks", "cwnd", "state"])
    for column in ("server", "in_flight", "cwnd"):
        table[column] = table[column].astype("Int64")
    return table


def marked_frames(story: StoryRun, part: str | None, event: str) -> list[int]:
    """The client's view's frames of the transfer that Wireshark's expert analysis names
    ``event`` (``"window_full"``, ``"duplicate_ack"``, ``"retransmission"``...)."""
    t = _read(story, part)
    return [p.frame for p in t.pair.packets["client"] if event in p.events]


def round_trips(story: StoryRun, part: str | None = None) -> dict[str, float]:
    """The sender's round trips as its kernel saw them, in ms: the least RTT it measured
    (``min_rtt_ms``: the path with an empty queue) and the highest smoothed RTT
    (``max_srtt_ms``)."""
    samples = _samples(story, part)
    return {"min_rtt_ms": min(s["min_rtt"] for s in samples if s["min_rtt"]) * 1000,
            "max_srtt_ms": max(s["rtt"] for s in samples) * 1000}


# --------------------------------------------------------------------------- slow start


def slow_start_rounds(story: StoryRun, part: str | None = None):
    """Slow start's round trips, one row each, up to the server's first ACK with a SACK
    block (the first sign of a loss): ``first`` to ``last`` (frames) are the ``segments``
    sent in the round (first copies only), from ``start_ms``, for ``ms`` (until the ACK
    of its first segment came back: a round trip, longer as the router's queue fills);
    ``complete`` is False for the round that ACK cut short (its ``ms`` ends there)."""
    import pandas as pd

    t = _read(story, part)
    stop = min((p.time for p in t.acks if p.sack), default=float("inf"))
    fresh = [p for p in t.data if p.frame not in t.resends and p.time < stop]
    rows, k = [], 0
    while k < len(fresh):
        first = fresh[k]
        acked = next((p.time for p in t.acks if p.time > first.time and p.rel_ack >= first.rel_seq + first.length),
                     float("inf"))
        end = k
        while end < len(fresh) and fresh[end].time < acked:
            end += 1
        rows.append({"round": len(rows) + 1, "first": first.frame, "last": fresh[end - 1].frame,
                     "segments": end - k, "start_ms": _ms(t, first.time),
                     "ms": round((min(acked, stop) - first.time) * 1000, 3), "complete": acked < stop})
        k = end
    return pd.DataFrame(rows, columns=["round", "first", "last", "segments", "start_ms", "ms", "complete"])


@dataclass(frozen=True)
class SlowStart:
    """Where slow start ended, in the kernel's samples and in the capture.  Times are ms
    since the SYN; an ssthresh of None is one not set yet (TCP_INFO's 2**31 - 1)."""

    algorithm: str
    initial_cwnd: int  # the first sample's cwnd: the initial window, in segments
    last_cwnd: int  # cwnd at the last sample of slow start (:func:`slow_start_samples`)
    last_delivered: int  # segments delivered by then (TCP_INFO's ``delivered``; the SYN counts one)
    grew_by_delivered: bool  # in every slow-start sample, cwnd = initial + delivered - 1
    first_off: dict[str, Any] | None  # the first slow-start sample where it did not, or None: what
    #   the sender held then (``ms``, ``cwnd``, ``delivered``, ``unacked`` segments, ``notsent_bytes``)
    last_ms: float  # that sample's time
    early_ssthresh: int | None  # an ssthresh set while the kernel was Open, before any loss
    early_ssthresh_ms: float | None  # (cubic's HyStart; bbr when its startup ends), or None
    early_cwnd: int | None  # cwnd at that sample
    loss_ms: float | None  # the first sample in Recovery (or Loss): the kernel judged a segment lost
    cwnd_at_loss: int | None  # cwnd at the sample before it
    ssthresh_before_loss: int | None  # ssthresh at the sample before it
    ssthresh_at_loss: int | None  # ssthresh at that first sample
    first_drop: int  # the first data segment the router dropped (the server's view never saw it)
    first_drop_seq: int
    first_drop_ms: float
    cwnd_at_drop: int  # the kernel's cwnd when it left (the last sample before)
    first_sack: int  # the server's first ACK with a SACK block after it: the first sign of the hole
    first_sack_ms: float
    first_sack_blocks: str  # its SACK blocks, relative ("66609-68057 ...")
    cwnd_at_first_sack: int
    first_dup_ack: int | None  # the first of the server's ACKs after it that Wireshark calls a duplicate ACK
    first_resend: int  # the first packet that sends the first dropped segment's bytes again
    first_resend_ms: float
    dup_acks_before_resend: int  # duplicate ACKs (Wireshark's) the client's view saw between the drop and it

    @property
    def beta(self) -> float | None:
        """The cut the algorithm makes at a loss (``BETAS``), None if it makes none."""
        return BETAS.get(self.algorithm)

    @property
    def loss_set_ssthresh(self) -> bool:
        """Whether ssthresh changed when the kernel first judged a segment lost."""
        return self.ssthresh_at_loss is not None and self.ssthresh_at_loss != self.ssthresh_before_loss


REPAIRING = ("Recovery", "Loss")


def early_threshold(samples: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first sample with ssthresh set while the kernel was Open and had not yet been
    in Recovery or Loss: slow start left without a loss.  None if there is none."""
    for sample in samples:
        if sample["ca_state_name"] in REPAIRING:
            return None
        if sample["ca_state_name"] == OPEN and sample["snd_ssthresh"] < UNSET:
            return sample
    return None


def first_loss(samples: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The first sample in Recovery or Loss, and the one before it; None if there is none."""
    k = next((k for k, s in enumerate(samples) if s["ca_state_name"] in REPAIRING), None)
    return None if k is None else (samples[k], samples[max(k - 1, 0)])


def slow_start(story: StoryRun, part: str | None = None) -> SlowStart:
    """Where slow start ended in run ``part`` of the bottleneck story (see :class:`SlowStart`)."""
    part = _part(story, part)
    t = _read(story, part)
    samples = _samples(story, part)
    growth = slow_start_samples(samples)
    last = growth[-1] if growth else samples[0]
    initial = samples[0]["snd_cwnd"]
    off = next((s for s in growth if s["snd_cwnd"] != initial + s["delivered"] - 1), None)
    early = early_threshold(samples)
    loss = first_loss(samples)
    drop = t.lost[0]
    sack = next(p for p in t.acks if p.sack and p.time > drop.time)
    dup = next((p for p in t.acks if p.frame in t.dup_acks and p.time > drop.time), None)
    resend = next(p for p in t.data if p.frame in t.resends and p.rel_seq <= drop.rel_seq < p.rel_seq + p.length)
    return SlowStart(
        algorithm=story.part(part).get("algorithm", part), initial_cwnd=initial, last_cwnd=last["snd_cwnd"],
        last_delivered=last["delivered"],
        grew_by_delivered=bool(growth) and off is None,
        first_off=None if off is None else {"ms": _ms(t, off["time"]), "cwnd": off["snd_cwnd"],
                                            "delivered": off["delivered"], "unacked": off["unacked"],
                                            "notsent_bytes": off["notsent_bytes"]},
        last_ms=_ms(t, last["time"]),
        early_ssthresh=early["snd_ssthresh"] if early else None,
        early_ssthresh_ms=_ms(t, early["time"]) if early else None,
        early_cwnd=early["snd_cwnd"] if early else None,
        loss_ms=_ms(t, loss[0]["time"]) if loss else None,
        cwnd_at_loss=loss[1]["snd_cwnd"] if loss else None,
        ssthresh_before_loss=_threshold(loss[1]["snd_ssthresh"]) if loss else None,
        ssthresh_at_loss=_threshold(loss[0]["snd_ssthresh"]) if loss else None,
        first_drop=drop.frame, first_drop_seq=drop.rel_seq, first_drop_ms=_ms(t, drop.time),
        cwnd_at_drop=(_at(samples, drop.time) or samples[0])["snd_cwnd"],
        first_sack=sack.frame, first_sack_ms=_ms(t, sack.time), first_sack_blocks=sack_text(sack),
        cwnd_at_first_sack=(_at(samples, sack.time) or samples[0])["snd_cwnd"],
        first_dup_ack=dup.frame if dup else None,
        first_resend=resend.frame, first_resend_ms=_ms(t, resend.time),
        dup_acks_before_resend=sum(1 for p in t.acks if p.frame in t.dup_acks and drop.time < p.time < resend.time),
    )


# --------------------------------------------------------------------------- tail drops and recovery


def tail_drops(story: StoryRun, part: str | None = None):
    """The data segments the router dropped, one row each: ``frame`` (client's view)
    carrying ``seq``:``end``, sent at ``sent_ms``; ``queue_bytes`` the router's queue when
    it got there, one one-way delay later (the fullest it was sampled within one sampling
    interval of that: the queue fills faster than it is sampled); ``resent`` the later
    frames that carried its bytes again, ``arrived`` the server's frame of the copy that
    got through; ``episode`` the recovery episode (:func:`recoveries`) of its first resend."""
    import pandas as pd

    part = _part(story, part)
    t = _read(story, part)
    queue = story.part(part).get("queue") or []
    gap = _gap(queue)
    spans = _spans(story, part)
    rows = []
    for p in t.lost:
        end = p.rel_seq + p.length
        again = [q for q in t.data if q.frame in t.resends and q.frame > p.frame
                 and q.rel_seq < end and p.rel_seq < q.rel_seq + q.length]
        through = next((t.pair.twin_of(q).frame for q in again if t.pair.twin_of(q) is not None), None)
        at_router = p.time + t.transit
        near = [s["backlog_bytes"] for s in queue if abs(s["time"] - at_router) <= gap]
        rows.append({"frame": p.frame, "seq": p.rel_seq, "end": end, "sent_ms": _ms(t, p.time),
                     "queue_bytes": max(near) if near else None,
                     "resent": tuple(q.frame for q in again), "arrived": through,
                     "episode": _episode_of(spans, again[0].time) if again else None})
    table = pd.DataFrame(rows, columns=["frame", "seq", "end", "sent_ms", "queue_bytes", "resent", "arrived",
                                        "episode"])
    for column in ("queue_bytes", "arrived", "episode"):
        table[column] = table[column].astype("Int64")
    return table


def _spans(story: StoryRun, part: str | None) -> list[tuple[float, float]]:
    """Each recovery episode's span, widened in front by one sampling interval."""
    samples = _samples(story, part)
    return [(e.before, e.end) for e in episodes(samples)]


def _episode_of(spans: list[tuple[float, float]], when: float) -> int | None:
    return next((k + 1 for k, (start, end) in enumerate(spans) if start <= when <= end), None)


def recoveries(story: StoryRun, part: str | None = None):
    """The kernel's recovery episodes in run ``part``, one row each (:func:`episodes`):
    ``start_ms`` to ``end_ms``, the ``states`` it went through; ``cwnd_before`` (the last
    Open sample), ``ssthresh`` and ``cwnd_after`` (at its end); from the capture, the
    server's ACKs that carried SACK blocks (``sack_acks``) and those of them Wireshark
    calls duplicate ACKs (``dup_acks``: the window must not change either), the resends
    (``resent``, ``first_resend`` to ``last_resend``) and how many of them repaired a
    segment the router had dropped (``repaired``).  Resends outside every episode (a
    tail-loss probe, say) are counted in a last row, ``states`` "(Open)"."""
    import pandas as pd

    part = _part(story, part)
    t = _read(story, part)
    samples = _samples(story, part)
    found = episodes(samples)
    spans = [(e.before, e.end) for e in found]
    resends = [p for p in t.data if p.frame in t.resends]
    dup_acks = [p for p in t.acks if p.frame in t.dup_acks]
    lost_first_resends = set()
    for p in t.lost:
        again = next((q for q in resends if q.frame > p.frame and q.rel_seq < p.rel_seq + p.length
                      and p.rel_seq < q.rel_seq + q.length), None)
        if again is not None:
            lost_first_resends.add((p.frame, again.time))
    rows = []
    for k, e in enumerate(found, start=1):
        mine = [p for p in resends if _episode_of(spans, p.time) == k]
        acks = [p for p in dup_acks if _episode_of(spans, p.time) == k]
        sacks = [p for p in t.acks if p.sack and _episode_of(spans, p.time) == k]
        rows.append({"episode": k, "start_ms": _ms(t, e.start), "end_ms": _ms(t, e.end),
                     "states": " → ".join(e.states), "cwnd_before": e.cwnd_before, "ssthresh": e.ssthresh,
                     "cwnd_after": e.cwnd_after, "sack_acks": len(sacks), "dup_acks": len(acks), "resent": len(mine),
                     "first_resend": mine[0].frame if mine else None, "last_resend": mine[-1].frame if mine else None,
                     "repaired": sum(1 for _, when in lost_first_resends if _episode_of(spans, when) == k)})
    outside = [p for p in resends if _episode_of(spans, p.time) is None]
    if outside:
        rows.append({"episode": None, "start_ms": None, "end_ms": None, "states": "(Open)", "cwnd_before": None,
                     "ssthresh": None, "cwnd_after": None, "sack_acks": 0, "dup_acks": 0, "resent": len(outside), "first_resend": outside[0].frame, "last_resend": outside[-1].frame,
                     "repaired": sum(1 for _, when in lost_first_resends if _episode_of(spans, when) is None)})
    table = pd.DataFrame(rows, columns=["episode", "start_ms", "end_ms", "states", "cwnd_before", "ssthresh",
                                        "cwnd_after", "sack_acks", "dup_acks", "resent", "first_resend",
                                        "last_resend", "repaired"])
    for column in ("episode", "cwnd_before", "ssthresh", "cwnd_after", "first_resend", "last_resend"):
        table[column] = table[column].astype("Int64")
    return table


# --------------------------------------------------------------------------- the algorithms side by side


def compare_algorithms(story: StoryRun):
    """The bottleneck story's runs side by side, one row per congestion control:
    ``goodput_mbit_s`` (the bytes over the seconds they took), what the router
    ``dropped``, what the kernel ``resent``, its ``max_cwnd``, the ``ssthresh`` it set at
    its first loss (<NA>: none), its recovery ``episodes``; the router's queue, on
    average (``queue_mean_bytes``) and at most, and the share of samples in which it
    was 90% full or more (``queue_full_share``); the mean smoothed RTT (``srtt_mean_ms``)
    and the least RTT the kernel saw (``min_rtt_ms``)."""
    import pandas as pd

    limit = used_parameters(story)["buffer_bytes"]
    rows = []
    for part in story.parts:
        run = story.part(part)
        samples = _sender(run["tcp_info"])
        found = episodes(samples)
        backlog = [s["backlog_bytes"] for s in run.get("queue") or []] or [0]
        rows.append({"algorithm": run.get("algorithm", part), "goodput_mbit_s": round(run["goodput_mbit_s"], 3),
                     "seconds": round(run["seconds"], 3), "dropped": run["dropped"],
                     "resent": samples[-1]["total_retrans"], "max_cwnd": max(s["snd_cwnd"] for s in samples),
                     "ssthresh_at_loss": _set_at_loss(samples), "episodes": len(found),
                     "queue_mean_bytes": round(sum(backlog) / len(backlog)), "queue_max_bytes": max(backlog),
                     "queue_full_share": round(sum(b >= 0.9 * limit for b in backlog) / len(backlog), 3),
                     "srtt_mean_ms": round(sum(s["rtt"] for s in samples) / len(samples) * 1000, 1),
                     "min_rtt_ms": round(min(s["min_rtt"] for s in samples if s["min_rtt"]) * 1000, 1)})
    table = pd.DataFrame(rows).set_index("algorithm")
    table["ssthresh_at_loss"] = table["ssthresh_at_loss"].astype("Int64")
    return table


def _set_at_loss(samples: Sequence[dict[str, Any]]) -> int | None:
    """The ssthresh the first loss set (None: it set none)."""
    loss = first_loss(samples)
    if loss is None or loss[0]["snd_ssthresh"] == loss[1]["snd_ssthresh"]:
        return None
    return _threshold(loss[0]["snd_ssthresh"])


ALGORITHM_COLOURS = {"cubic": "#1f77b4", "reno": "#ff7f0e", "bbr": "#2ca02c"}


def algorithms_figure(story: StoryRun):
    """Every run of the bottleneck story on one time axis (seconds since each run's SYN):
    its congestion window (top, from TCP_INFO) and the router's queue (bottom), with the
    queue's limit."""
    from matplotlib.figure import Figure

    from ..plots._kernel import BYTES

    limit = used_parameters(story)["buffer_bytes"]
    fig = Figure(figsize=(9, 5.6))
    window, queue = fig.subplots(2, 1, sharex=True)
    drawn: dict[str, Any] = {"kind": "algorithms", "runs": []}
    for k, part in enumerate(story.parts):
        run = story.part(part)
        name = run.get("algorithm", part)
        colour = ALGORITHM_COLOURS.get(name, f"C{k}")
        t0 = _read(story, part).t0
        samples = _sender(run["tcp_info"])
        window.plot([s["time"] - t0 for s in samples], [s["snd_cwnd"] for s in samples], color=colour, lw=1.3,
                    label=f"{name}: cwnd", gid=f"cwnd:{name}")
        backlog = run.get("queue") or []
        queue.step([s["time"] - t0 for s in backlog], [s["backlog_bytes"] for s in backlog], where="post",
                   color=colour, lw=1.1, label=f"{name}: {run['dropped']} dropped", gid=f"queue:{name}")
        drawn["runs"].append(name)
    queue.axhline(limit, color="#6b7280", lw=0.9, ls=":", label=f"the queue's limit ({limit:,} bytes)")
    window.set_ylabel("cwnd (segments)")
    window.set_title("The same link, three congestion controls: the window (kernel) and the router's queue",
                     fontsize=10, loc="left", fontweight="bold")
    queue.set_ylabel("router's queue")
    queue.yaxis.set_major_formatter(BYTES)
    queue.set_xlabel("seconds since each run's SYN")
    for ax in (window, queue):
        ax.set_ylim(bottom=0)
        ax.grid(True, color="#e5e7eb", lw=0.6)
        ax.set_axisbelow(True)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig


# --------------------------------------------------------------------------- what limited a transfer


def what_limited(story: StoryRun):
    """The limits story's runs, one row each, with the kernel's own account: the time
    it took (``seconds``), how much of it the sender was ``busy`` (data in flight) and,
    within that, stalled on the receiver's window (``rwnd_limited``) or its own send
    buffer (``sndbuf_limited``), in seconds and as shares of the busy time (``_share``;
    busy and neither is limited by cwnd: the three add up to 1); the share of its rate samples marked app-limited
    (``app_limited_samples``); the middle (median) of what it had in flight, its cwnd
    and the receiver's window (``rwnd``), in bytes; what the router dropped; and the
    story's verdict, ``limited_by``."""
    import pandas as pd

    rows = []
    for part in story.parts:
        run = story.part(part)
        samples = _transferring(run["tcp_info"])
        mss = samples[0]["snd_mss"]
        busy = [s for s in samples if in_flight(s) > 0]
        busy_s, rwnd_s, sndbuf_s = run["busy_s"], run["rwnd_limited_s"], run["sndbuf_limited_s"]
        rows.append({"run": part, "limited_by": run["limited_by"], "seconds": round(run["seconds"], 3),
                     "busy_s": busy_s, "rwnd_limited_s": rwnd_s, "sndbuf_limited_s": sndbuf_s,
                     "cwnd_share": round(max(busy_s - rwnd_s - sndbuf_s, 0) / busy_s, 2),
                     "rwnd_share": round(rwnd_s / busy_s, 2), "sndbuf_share": round(sndbuf_s / busy_s, 2),
                     "app_limited_samples": round(run["app_limited_samples"], 2),
                     "in_flight_bytes": _median([in_flight(s) * mss for s in busy]),
                     "cwnd_bytes": _median([s["snd_cwnd"] * mss for s in busy]),
                     "rwnd_bytes": _median([s["snd_wnd"] for s in busy]),
                     "dropped": run["dropped"]})
    return pd.DataFrame(rows).set_index("run")


def _transferring(tcp_info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sender's samples up to the last with data unacknowledged (then it only waits
    for the close)."""
    samples = _sender(tcp_info)
    last = max((k for k, s in enumerate(samples) if s["unacked"] > 0), default=len(samples) - 1)
    return samples[:last + 1]


def _median(values: list[float]) -> int | None:
    ordered = sorted(values)
    return int(ordered[len(ordered) // 2]) if ordered else None


LIMIT_TITLES = {"rwnd": "the receiver's window", "app": "the application", "cwnd": "the congestion window"}


def limits_figure(story: StoryRun):
    """One panel per run of the limits story: what the sender had in flight (the kernel's
    count, in bytes), beside its congestion window and the receiver's window (TCP_INFO's
    ``snd_wnd``). The line that in flight runs along is the limit."""
    from matplotlib.figure import Figure

    from ..plots._kernel import BYTES

    parts = story.parts
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, len(parts), squeeze=False)[0]
    drawn: dict[str, Any] = {"kind": "limits", "runs": list(parts)}
    for ax, part in zip(axes, parts):
        run = story.part(part)
        samples = _transferring(run["tcp_info"])
        t0 = _read(story, part).t0
        x = [(s["time"] - t0) * 1000 for s in samples]
        mss = samples[0]["snd_mss"]
        ax.fill_between(x, [in_flight(s) * mss for s in samples], step="post", color="#6b7280", alpha=0.45, lw=0,
                        label="in flight", gid=f"in_flight:{part}")
        ax.step(x, [s["snd_cwnd"] * mss for s in samples], where="post", color="#1f77b4", lw=1.3,
                label="cwnd × MSS", gid=f"cwnd:{part}")
        ax.step(x, [s["snd_wnd"] for s in samples], where="post", color="#d62728", lw=1.3,
                label="receiver's window", gid=f"rwnd:{part}")
        ax.set_title(f"{part}: held back by {LIMIT_TITLES.get(part, part)}", fontsize=9, loc="left")
        ax.set_xlabel("ms since the SYN")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(BYTES)
        ax.grid(True, color="#e5e7eb", lw=0.6)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("bytes")
    axes[0].legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.tcpchatx = drawn
    return fig
