"""Capture without root, inside a private Linux user + network namespace.

An ordinary user may create a *user namespace* in which they are root, and with it a
*network namespace* that has its own, empty loopback interface. Root there may capture
on that ``lo`` — it sees only the namespace's own traffic, so nothing private leaks.
``run_rootless`` re-runs Python under ``unshare --user --map-root-user --net``; the
child (:mod:`tcpchatx.capture.namespace_child`) brings ``lo`` up, starts a
:class:`~tcpchatx.capture.live.LiveCapture`, calls the function you named, and reports
back through a small JSON file. The capture file belongs to you, like any other.

Because the namespace is private, every port in it is free: scenarios can use fixed
port numbers without clashing with anything running on the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CaptureError, RootlessUnavailableError
from .live import CaptureResult, pick_backend
from .output import resolve_output_path
from .tools import UNSHARE_ENV, find_unshare

PROBE_TIMEOUT = 10.0
_SYSCTL_HINTS = [
    # (file, value that blocks us, explanation and fix)
    ("/proc/sys/kernel/unprivileged_userns_clone", "0",
     "unprivileged user namespaces are switched off "
     "(fix: `sudo sysctl kernel.unprivileged_userns_clone=1`)"),
    ("/proc/sys/user/max_user_namespaces", "0",
     "user namespaces are limited to 0 (fix: `sudo sysctl user.max_user_namespaces=15000`)"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "AppArmor restricts unprivileged user namespaces, as on Ubuntu 24.04 "
     "(fix: `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor "
     "profile for python3 allowing userns)"),
]


@dataclass(frozen=True)
class RootlessResult:
    """The capture made inside the namespace, and what the target function returned."""

    capture: CaptureResult
    value: Any


def unshare_command(unshare: str) -> list[str]:
    """The unshare(1) invocation: a user namespace with us as root, and a network namespace.

    A PID namespace too, with our child as its process 1: if the child dies or is
    killed (say, by a timeout), the kernel kills everything left in it, so no dumpcap
    lingers behind, capturing a namespace nobody can reach any more.
    """
    return [unshare, "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--"]


def rootless_available() -> tuple[bool, str]:
    """Can this user create a private user+network namespace? Returns (yes/no, why).

    Tries it for real (``unshare -rn true``, a few milliseconds) and, when it fails,
    looks at the usual kernel switches to say why.
    """
    if not sys.platform.startswith("linux"):
        return False, f"user namespaces are a Linux feature and this is {sys.platform}"
    unshare = find_unshare()
    if unshare is None:
        return False, "the `unshare` command is missing (install util-linux)"
    try:
        probe = subprocess.run([*unshare_command(unshare), "true"], capture_output=True,
                               text=True, timeout=PROBE_TIMEOUT, check=False)
    except OSError as exc:
        return False, f"cannot run {unshare} ({exc}); check {UNSHARE_ENV} or install util-linux"
    except subprocess.TimeoutExpired:
        return False, f"`{unshare} -rn true` did not finish within {PROBE_TIMEOUT:g} s"
    if probe.returncode == 0:
        return True, "unprivileged user and network namespaces work"
    said = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit status {probe.returncode}"
    hints = [hint for path, blocked, hint in _SYSCTL_HINTS if _read(path) == blocked]
    return False, f"`unshare --user --net` failed: {said}" + (f"; {'; '.join(hints)}" if hints else "")


def run_rootless(target: str, out_path: str | os.PathLike[str], *, port: int,
                 kwargs: dict[str, Any] | None = None, backend: str = "auto",
                 timeout: float = 120.0) -> RootlessResult:
    """Call ``module:function(**kwargs)`` in a private namespace while capturing *port*.

    *target* names the function by import path, e.g. ``"tcpchatx.capture.selftest:exchange_lines"``;
    *kwargs* must be JSON-serialisable and so should the return value. The capture is
    written atomically to *out_path* (a bare name goes into ``captures/``).
    Raises :class:`RootlessUnavailableError` (naming the fallback) if namespaces are off.
    """
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:function', not {target!r}")
    available, reason = rootless_available()
    if not available:
        raise RootlessUnavailableError(reason)
    unshare = find_unshare()
    assert unshare is not None
    spec = {
        "target": target, "kwargs": kwargs or {}, "port": port, "backend": pick_backend(backend),
        "out_path": str(resolve_output_path(out_path)),
    }
    fd, report_name = tempfile.mkstemp(prefix="tcpchatx-rootless-", suffix=".json")
    os.close(fd)
    report = Path(report_name)
    try:
        command = [*unshare_command(unshare), sys.executable, "-m",
                   "tcpchatx.capture.namespace_child", json.dumps(spec), str(report)]
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            # The kernel killed everything in the namespace; remove the files it left half-done.
            final = Path(spec["out_path"])
            for leftover in final.parent.glob(f".{final.name}.*.part*"):
                leftover.unlink(missing_ok=True)
            raise CaptureError(f"the rootless run of {target} took longer than {timeout:g} s; "
                               "nothing was saved") from exc
        text = report.read_text()
        if not text:
            raise CaptureError(
                f"the namespace child exited ({child.returncode}) without a report:\n{child.stderr[-2000:]}"
            )
        outcome = json.loads(text)
    finally:
        report.unlink(missing_ok=True)
    if not outcome["ok"]:
        raise CaptureError(f"inside the namespace, {target} failed: {outcome['error']}\n{outcome['traceback']}")
    return RootlessResult(CaptureResult.from_dict(outcome["capture"]), outcome["value"])


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None
