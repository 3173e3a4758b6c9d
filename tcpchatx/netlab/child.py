"""The part of the lab network that runs inside its own namespaces.

Started by :func:`tcpchatx.netlab.run_in_lab` as
``python -m tcpchatx.netlab.child SPEC_JSON REPORT_PATH`` under
``unshare --user --map-root-user --net --mount --pid --fork``: it builds the network
(:func:`tcpchatx.netlab.topology.build`, :func:`tcpchatx.netlab.offloads.turn_off`),
calls the function named in the spec, and
writes the outcome as JSON to REPORT_PATH for the parent, which raises what failed.
"""

from __future__ import annotations

import sys
from typing import Any

from ..capture.namespace_child import load_target
from ..capture.namespace_child import main as report_outcome
from .offloads import turn_off
from .topology import build


def run(spec: dict[str, Any]) -> dict[str, Any]:
    build()
    turn_off()  # segments as on a wire (see .offloads)
    value = load_target(spec["target"])(**spec["kwargs"])
    return {"ok": True, "value": value}


def main(argv: list[str]) -> int:
    return report_outcome(argv, run=run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
