"""The part of the lab network that runs inside its own namespaces.

Started by :func:`tcpchatx.netlab.run_in_lab` as
``python -m tcpchatx.netlab.child SPEC_JSON REPORT_PATH`` under
``unshare --user --map-root-user --net --mount --pid --fork``: it builds the network
(:func:`tcpchatx.netlab.topology.build`, :func:`tcpchatx.netlab.offloads.turn_off`),
calls the function named in the spec, and
writes the outcome as JSON to REPORT_PATH for the parent, which raises what failed.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from ..capture.namespace_child import load_target
from .offloads import turn_off
from .topology import build


def run(spec: dict[str, Any]) -> dict[str, Any]:
    build()
    turn_off()  # segments as on a wire (see .offloads)
    value = load_target(spec["target"])(**spec["kwargs"])
    return {"ok": True, "value": value}


def main(argv: list[str]) -> int:
    spec, report = json.loads(argv[0]), Path(argv[1])
    try:
        outcome = run(spec)
    except BaseException as exc:  # everything goes to the parent, which raises it
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=8)}
    report.write_text(json.dumps(outcome, default=repr))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
