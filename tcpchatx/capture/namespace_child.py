"""The part of the rootless mode that runs inside the new namespace.

Started by :func:`tcpchatx.capture.rootless.run_rootless` as
``python -m tcpchatx.capture.namespace_child SPEC_JSON REPORT_PATH``. A fresh network
namespace has a loopback interface that is *down*, so we first bring it up with the
same ioctl ``ip link set lo up`` uses (no iproute2 needed), then capture around the
target function and write the outcome as JSON to REPORT_PATH.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import socket
import struct
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .live import LiveCapture

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def bring_up(interface: str = "lo") -> None:
    """Set IFF_UP on *interface* (needs CAP_NET_ADMIN, which root in the namespace has)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", interface.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", interface.encode(), flags | _IFF_UP))


def load_target(target: str) -> Any:
    """Import ``package.module:function`` and return the function."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    bring_up("lo")
    function = load_target(spec["target"])
    with LiveCapture(spec["port"], spec["out_path"], backend=spec["backend"], interface="lo") as capture:
        value = function(**spec["kwargs"])
    assert capture.result is not None
    return {"ok": True, "capture": capture.result.to_dict(), "value": value}


def main(argv: list[str], run: Callable[[dict[str, Any]], dict[str, Any]] = run) -> int:
    """Run ``run(SPEC)`` and write its outcome, or what went wrong, to REPORT_PATH as JSON
    (the lab network's child, :mod:`tcpchatx.netlab.child`, reports the same way)."""
    spec, report = json.loads(argv[0]), Path(argv[1])
    try:
        outcome = run(spec)
    except BaseException as exc:  # report everything to the parent, which raises it
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=8)}
    report.write_text(json.dumps(outcome, default=repr))  # repr: values JSON cannot hold
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
