"""What the link does to each frame, decided without sockets: the relay's brain.

A *script* is data: for each direction (``"to_server"``, ``"to_client"``) a delay,
a jitter, a random loss with its seed, and named events that pick one segment::

    {"to_server": {"delay_ms": 25,
                   "events": [{"do": "drop", "data_segment": 3}]},
     "to_client": {"delay_ms": 25}}

Each event says what to do (``"do"``) and to which frame:

- ``"drop"``: the frame is lost;
- ``"hold"``: the frame is held back ``hold_ms`` longer than the others, so that the
  ones behind it overtake it (reordering);
- ``"duplicate"``: the frame is delivered twice;
- ``"break"``: the frame and everything after it in this direction is lost for
  ``for_ms`` (a broken path, then healed);

and picks its frame with one of:

- ``"data_segment": N``: the Nth TCP segment carrying data in this direction, counted
  from 1 since the script was set (a retransmission counts too);
- ``"text": "..."``: the first TCP segment whose payload contains this text;
- ``"syn": true``: the next SYN (a connection's first packet, or its SYN-ACK);

optionally narrowed by ``"port"`` (either end's TCP port), and ``"times"`` (how many
matching frames it applies to; 1 unless said).  Every frame the events do not pick is
lost at random with probability ``loss`` (from a ``random.Random(seed)``: the same
seed loses the same frames in the same traffic), then delayed by ``delay_ms``, give or
take ``jitter_ms`` (uniform).  Jitter never reorders: a frame leaves no earlier than
the one before it in its direction, as on one cable.  (netem's jitter does reorder.)

:func:`parse` checks a script and says clearly what is wrong with it; a
:class:`Direction` then answers :meth:`Direction.decide` for each frame: when to
deliver it, and how many times.  The relay (:mod:`tcpchatx.netlab.relay`) does the
sockets; a test drives this module with made-up frames.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

DIRECTIONS = ("to_server", "to_client")
ACTIONS = ("drop", "hold", "duplicate", "break")
SELECTORS = ("data_segment", "text", "syn")
DIRECTION_KEYS = {"delay_ms", "jitter_ms", "loss", "seed", "events"}
EVENT_KEYS = {"do", "hold_ms", "for_ms", "port", "times", *SELECTORS}

ETHERNET_HEADER = 14
ETHERTYPE_IPV4 = 0x0800
PROTOCOL_TCP = 6
SYN = 0x02


class ScriptError(ValueError):
    """A script the link cannot follow; the message says which part and why."""


@dataclass
class Event:
    """One named event: what to do, and which frame(s) it picks."""

    do: str
    data_segment: int | None = None
    text: bytes | None = None
    syn: bool = False
    port: int | None = None
    times: int = 1
    hold_ms: float = 0.0
    for_ms: float = 0.0
    done: int = 0  # frames it has applied to so far
    seen: int = 0  # data segments counted so far (for data_segment)

    def describe(self) -> str:
        what = (f"data segment {self.data_segment}" if self.data_segment is not None
                else f"the segment carrying {self.text.decode(errors='replace')!r}" if self.text is not None
                else "the next SYN")
        on_port = f" on port {self.port}" if self.port is not None else ""
        how_long = {"hold": f" for {self.hold_ms:g} ms", "break": f": the path breaks for {self.for_ms:g} ms"}
        return f"{self.do} {what}{on_port}" + how_long.get(self.do, "")


@dataclass
class Segment:
    """What the script looks at in a frame: None for anything but IPv4 TCP."""

    sport: int
    dport: int
    flags: int
    seq: int
    payload: bytes


def tcp_segment(frame: bytes) -> Segment | None:
    """The TCP segment in an Ethernet frame, or None if it carries none."""
    if len(frame) < ETHERNET_HEADER + 20 or struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_IPV4:
        return None
    ip = ETHERNET_HEADER
    ihl = (frame[ip] & 0x0F) * 4
    if frame[ip + 9] != PROTOCOL_TCP:
        return None
    total = struct.unpack_from("!H", frame, ip + 2)[0]
    tcp = ip + ihl
    if len(frame) < tcp + 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
    offset = (frame[tcp + 12] >> 4) * 4
    return Segment(sport, dport, frame[tcp + 13], seq, frame[tcp + offset:ip + total])


@dataclass
class Direction:
    """One direction of the link: its delay, jitter, loss and events, and its clock."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    seed: int = 1
    events: list[Event] = field(default_factory=list)
    last_release: float = 0.0
    broken_until: float = 0.0
    log: list[dict] = field(default_factory=list)  # what the events and the loss did, in order

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def decide(self, frame: bytes, now: float) -> list[float]:
        """When to deliver *frame*, received at *now* (seconds): one time per copy to
        deliver, so ``[]`` is a loss, one time a delivery and two a duplicate."""
        if now < self.broken_until:
            return []  # the path is broken
        segment = tcp_segment(frame)
        event = self._event_for(segment) if segment is not None else None
        if event is not None:
            event.done += 1
            self.log.append({"at": now, "event": event.describe(), "seq": segment.seq,
                             "length": len(segment.payload)})
            if event.do == "break":
                self.broken_until = now + event.for_ms / 1000
            if event.do in ("drop", "break"):
                return []
        elif self.loss and self.random.random() < self.loss:
            self.log.append({"at": now, "event": "random loss",
                             "seq": segment.seq if segment else None,
                             "length": len(segment.payload) if segment else None})
            return []
        release = self._release_time(now)
        if event is not None and event.do == "hold":
            return [release + event.hold_ms / 1000]  # the frames behind it overtake it
        self.last_release = release
        return [release, release] if event is not None and event.do == "duplicate" else [release]

    def _release_time(self, now: float) -> float:
        delay = self.delay_ms
        if self.jitter_ms:
            delay += self.random.uniform(-self.jitter_ms, self.jitter_ms)
        return max(now + max(delay, 0.0) / 1000, self.last_release)  # one cable: no overtaking

    def _event_for(self, segment: Segment) -> Event | None:
        """The first event still to happen that picks this segment."""
        for event in self.events:
            if event.done >= event.times:
                continue
            if event.port is not None and event.port not in (segment.sport, segment.dport):
                continue
            if event.data_segment is not None:
                if not segment.payload:
                    continue
                event.seen += 1
                if event.seen >= event.data_segment:
                    return event
            elif event.text is not None:
                if event.text in segment.payload:
                    return event
            elif segment.flags & SYN:
                return event
        return None


def parse(script: dict) -> dict[str, Direction]:
    """Both directions of a script, checked; unknown keys and bad values raise ScriptError."""
    if not isinstance(script, dict):
        raise ScriptError(f"a script is a mapping of directions, not {type(script).__name__}")
    unknown = set(script) - set(DIRECTIONS)
    if unknown:
        raise ScriptError(f"unknown direction(s) {sorted(unknown)}: use {' and '.join(DIRECTIONS)}")
    return {name: _direction(name, script.get(name) or {}) for name in DIRECTIONS}


def _direction(name: str, spec: dict) -> Direction:
    unknown = set(spec) - DIRECTION_KEYS
    if unknown:
        raise ScriptError(f"{name}: unknown key(s) {sorted(unknown)}; a direction has {sorted(DIRECTION_KEYS)}")
    delay, jitter, loss = (_number(name, key, spec.get(key, 0)) for key in ("delay_ms", "jitter_ms", "loss"))
    if delay < 0 or jitter < 0:
        raise ScriptError(f"{name}: delay_ms and jitter_ms cannot be negative")
    if not 0 <= loss <= 1:
        raise ScriptError(f"{name}: loss is a probability, between 0 and 1 (2% is 0.02), not {loss}")
    seed = spec.get("seed", 1)
    if not isinstance(seed, int):
        raise ScriptError(f"{name}: seed is an integer, not {seed!r}")
    events = [_event(f"{name}.events[{k}]", e) for k, e in enumerate(spec.get("events", []))]
    return Direction(delay, jitter, loss, seed, events)


def _event(where: str, spec: dict) -> Event:
    if not isinstance(spec, dict):
        raise ScriptError(f"{where}: an event is a mapping like {{'do': 'drop', 'data_segment': 3}}")
    unknown = set(spec) - EVENT_KEYS
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}; an event has {sorted(EVENT_KEYS)}")
    if spec.get("do") not in ACTIONS:
        raise ScriptError(f"{where}: 'do' is one of {ACTIONS}, not {spec.get('do')!r}")
    chosen = [key for key in SELECTORS if key in spec]
    if len(chosen) != 1:
        raise ScriptError(f"{where}: pick the frame with exactly one of {SELECTORS} (got {chosen or 'none'})")
    event = Event(spec["do"], port=spec.get("port"), times=spec.get("times", 1),
                  hold_ms=_number(where, "hold_ms", spec.get("hold_ms", 0)),
                  for_ms=_number(where, "for_ms", spec.get("for_ms", 0)))
    if "data_segment" in spec:
        if not isinstance(spec["data_segment"], int) or spec["data_segment"] < 1:
            raise ScriptError(f"{where}: data_segment counts from 1, not {spec['data_segment']!r}")
        event.data_segment = spec["data_segment"]
    elif "text" in spec:
        if not isinstance(spec["text"], str) or not spec["text"]:
            raise ScriptError(f"{where}: text is the non-empty text the segment carries")
        event.text = spec["text"].encode()
    elif spec["syn"] is not True:
        raise ScriptError(f"{where}: syn is true (the next SYN), not {spec['syn']!r}")
    else:
        event.syn = True
    if event.do == "hold" and event.hold_ms <= 0:
        raise ScriptError(f"{where}: a hold needs hold_ms > 0 (how much later the frame leaves)")
    if event.do == "break" and event.for_ms <= 0:
        raise ScriptError(f"{where}: a break needs for_ms > 0 (how long the path stays broken)")
    if not isinstance(event.times, int) or event.times < 1:
        raise ScriptError(f"{where}: times is a count of frames, at least 1")
    return event


def _number(where: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScriptError(f"{where}: {key} is a number, not {value!r}")
    return float(value)
