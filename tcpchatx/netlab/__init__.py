"""A client - router - server network of namespaces, built without root.

Every capture the lab made so far crossed loopback: no router, no loss, no delay.
This package builds a small real network instead, inside a private user namespace
(so an ordinary user may), and runs the chat server on one side and its clients on
the other, with captures at both ends:

- :mod:`.topology`: the network as data (namespaces, veth pairs, addresses) and
  the ``ip`` commands that build it;
- :mod:`.namespaces`: running code (and creating sockets) in one namespace or the other;
- :mod:`.offloads`: segments as on a wire (no TSO/GSO super-segments on the veth ends);
- :mod:`.impair`: what the router's kernel does to what it forwards (a bottleneck, a chosen loss);
- :mod:`.script` and :mod:`.relay`: the router in user space, following a script
  (delay, jitter, seeded loss, named drops, holds and duplicates), where the kernel
  has no netem;
- :mod:`.queues`: the router's queue, sampled;
- :mod:`.stories`: stories that make one thing of TCP happen every run (``rto``,
  ``backoff``, ``fast_retransmit``, ``reorder``, ``zero_window``, ``bottleneck``, ``rtt``);
- :mod:`.reliability`: the chat across loss and delay, every line checked;
- :mod:`.references`: the stories' reference captures in ``captures/lab/``;
- :mod:`.child`: what runs inside the namespaces; :func:`run_in_lab` starts it;
- :mod:`.selftest`: a chat across the router, captured at both ends.

It needs Linux with unprivileged user namespaces and iproute2, as the rootless
capture mode does (``tcpchatx.capture.rootless_available`` says whether they work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..capture.errors import CaptureError, RootlessUnavailableError
from ..capture.rootless import rootless_available
from ..capture.tools import find_unshare


def run_in_lab(target: str, kwargs: dict[str, Any] | None = None, *, timeout: float = 120.0) -> Any:
    """Build the lab network in fresh namespaces and call ``module:function(**kwargs)``
    there (it runs in the router's namespace; see :mod:`.namespaces`); return its value.

    Everything in the namespaces ends with the call: the network, its processes.
    """
    available, reason = rootless_available()
    if not available:
        raise RootlessUnavailableError(reason)
    unshare = find_unshare()
    assert unshare is not None
    fd, name = tempfile.mkstemp(prefix="tcpchatx-netlab-", suffix=".json")
    os.close(fd)
    report = Path(name)
    command = [unshare, "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child",
               "--", sys.executable, "-m", "tcpchatx.netlab.child",
               json.dumps({"target": target, "kwargs": kwargs or {}}), str(report)]
    try:
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CaptureError(f"the lab network's run of {target} took longer than {timeout:g} s") from exc
        text = report.read_text()
    finally:
        report.unlink(missing_ok=True)
    if not text:
        raise CaptureError(f"the lab network exited ({child.returncode}) without a report:\n{child.stderr[-2000:]}")
    outcome = json.loads(text)
    if not outcome["ok"]:
        raise CaptureError(f"in the lab network, {target} failed: {outcome['error']}\n{outcome['traceback']}")
    return outcome["value"]
