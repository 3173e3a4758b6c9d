"""The messages between :class:`~tcpchatx.capture.namespace_sockets.NamespaceSockets` and
its child in the namespace — no sockets, no processes, only bytes in and out.

Theory of operation
-------------------
The two ends talk over an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket pair, so every message
arrives whole and alone: one JSON object per message, no framing to get wrong.

* The child speaks first: a :class:`Reply` that says it is ready (its ``lo`` is up), or
  why it is not.
* Then the parent asks and the child answers, one :class:`Reply` per request, in order:

  - ``MakeSocket(family, type, proto)``: the child makes that socket in its network
    namespace and sends its file descriptor back beside the reply (``SCM_RIGHTS``),
    then closes its own copy, so the socket is the parent's alone;
  - ``StartCapture(port, path, backend)``: the child starts a ``LiveCapture`` of that
    port on its own ``lo``, and replies once packets are being recorded;
  - ``StopCapture()``: the child stops it; the reply holds the ``CaptureResult``.
    One capture runs at a time.

* A request the child cannot carry out gets ``ok=False`` and the error in the child's
  words; the child then waits for the next request as before.
* The parent closing its end is the goodbye: the child sees end-of-file and exits.

Every request is checked here, field by field, so a bad one is refused with a sentence
before the child touches anything.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Any

MAX_MESSAGE = 64 * 1024  # bytes; every message is far smaller (a path is at most 4 KiB)


class BadRequest(ValueError):
    """A message that is not one of the three requests, or has a field of the wrong kind."""


@dataclass(frozen=True)
class MakeSocket:
    """Make ``socket.socket(family, type, proto)`` in the namespace and send it back."""

    family: int
    type: int
    proto: int = 0


@dataclass(frozen=True)
class StartCapture:
    """Capture ``tcp port PORT`` on the namespace's ``lo`` into ``path`` (absolute)."""

    port: int
    path: str
    backend: str = "dumpcap"


@dataclass(frozen=True)
class StopCapture:
    """Stop the running capture; the reply holds what it saved."""


Request = MakeSocket | StartCapture | StopCapture

#: The name each request travels under, and the fields it must have (name -> type).
REQUESTS: dict[str, tuple[type, dict[str, type]]] = {
    "socket": (MakeSocket, {"family": int, "type": int, "proto": int}),
    "capture": (StartCapture, {"port": int, "path": str, "backend": str}),
    "stop": (StopCapture, {}),
}
_NAMES = {cls: name for name, (cls, _) in REQUESTS.items()}


@dataclass(frozen=True)
class Reply:
    """The child's answer: ``ok``, or the ``error`` in its words; a finished capture's
    ``CaptureResult.to_dict()`` for ``StopCapture``. (A socket travels beside the bytes.)"""

    ok: bool
    error: str | None = None
    capture: dict[str, Any] | None = None


def encode_request(request: Request) -> bytes:
    return json.dumps({"op": _NAMES[type(request)], **asdict(request)}).encode()


def parse_request(data: bytes) -> Request:
    """The request in *data*; :class:`BadRequest` saying what is wrong with it otherwise."""
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"a request is one JSON object, and this is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise BadRequest(f"a request is one JSON object, not {type(message).__name__}")
    op = message.pop("op", None)
    if op not in REQUESTS:
        raise BadRequest(f"unknown request {op!r}; the requests are {', '.join(REQUESTS)}")
    cls, fields = REQUESTS[op]
    unknown = sorted(set(message) - set(fields))
    if unknown:
        raise BadRequest(f"the {op!r} request has no field {', '.join(map(repr, unknown))}")
    for name, kind in fields.items():
        if name in message and (type(message[name]) is not kind):  # bool is not an int here
            raise BadRequest(f"the {op!r} request's {name!r} must be {kind.__name__}, "
                             f"not {message[name]!r}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in message and f.default is dataclasses.MISSING]
    if missing:
        raise BadRequest(f"the {op!r} request needs {', '.join(map(repr, missing))}")
    return cls(**message)


def encode_reply(reply: Reply) -> bytes:
    return json.dumps(asdict(reply)).encode()


def parse_reply(data: bytes) -> Reply:
    """The reply in *data*; ValueError if the child said something that is not a reply."""
    try:
        message = json.loads(data)
        return Reply(**message)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"not a reply from the namespace: {data[:200]!r} ({exc})") from None
