"""Capturing without privileges: the clear refusal, the rootless namespace, the fallback.

The unprivileged cases run for real as the user ``nobody`` (via ``runuser``), with
Debian's python3 and the repository and the venv's site-packages on PYTHONPATH,
because the venv's own interpreter lives where ``nobody`` cannot read.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from tcpchatx.capture import (
    CaptureError,
    RootlessUnavailableError,
    check_capture_mode,
    choose_capture_mode,
    rootless_available,
    run_rootless,
)
from tcpchatx.capture.selftest import tcp_segments
from tcpchatx.capture.tools import UNSHARE_ENV, find_dumpcap

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
WAYS_OUT = [
    "sudo setcap cap_net_raw,cap_net_admin+eip $(which dumpcap)",
    "wireshark",
    "dpkg-reconfigure wireshark-common",
    "root",
    "rootless",
    "reference captures shipped in captures/",
]


def _can_become_nobody() -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("runuser"):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)
    return probe.stdout.strip() == str(sys.version_info[:2])


CAN_BECOME_NOBODY = _can_become_nobody()
as_nobody = pytest.mark.skipif(not CAN_BECOME_NOBODY,
                               reason="needs root, runuser and a system python3 of the same version")


def run_as_nobody(code: str, cwd: Path, *, namespace_limit_zero: bool = False,
                  env: dict[str, str] | None = None) -> dict:
    """Run Python *code* as nobody; it must print one JSON line, which is returned.

    With *namespace_limit_zero* the code runs inside a user namespace whose limit on
    further user namespaces is 0 — exactly what `sysctl user.max_user_namespaces=0`
    does to a machine — so the rootless mode genuinely cannot start there.
    """
    pythonpath = f"{REPO}:{sysconfig.get_paths()['purelib']}"
    command = ["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={pythonpath}",
               *(f"{key}={value}" for key, value in (env or {}).items())]
    if namespace_limit_zero:
        code = "open('/proc/sys/user/max_user_namespaces', 'w').write('0')\n" + code
        command += ["unshare", "--user", "--map-root-user"]
    done = subprocess.run([*command, SYSTEM_PYTHON, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- no permission: one clear error ------------------------------------------------------


@as_nobody
@pytest.mark.parametrize("backend", ["dumpcap", "scapy"])
def test_nobody_gets_one_clear_permission_error(shared_dir, backend):
    if backend == "dumpcap" and find_dumpcap() is None:
        pytest.skip("dumpcap not installed")
    outcome = run_as_nobody(f"""
import json
from tcpchatx.capture import LiveCapture, CapturePermissionError
try:
    LiveCapture({free_port()}, "denied.pcapng", backend={backend!r}).start()
    print(json.dumps({{"raised": None}}))
except CapturePermissionError as exc:
    print(json.dumps({{"raised": type(exc).__name__, "message": str(exc),
                       "is_permission_error": isinstance(exc, PermissionError)}}))
""", cwd=shared_dir)
    assert outcome["raised"] == "CapturePermissionError"
    assert outcome["is_permission_error"]
    for way_out in WAYS_OUT:
        assert way_out in outcome["message"]
    captures = shared_dir / "captures"  # the bare name's directory exists, but stays empty
    assert list(captures.iterdir()) == []


@as_nobody
def test_capture_command_exits_2_with_the_ways_out(shared_dir):
    outcome = run_as_nobody(f"""
import contextlib, io, json
from tcpchatx.capture.cli import capture_main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = capture_main({free_port()}, "cli.pcapng", backend="dumpcap")
print(json.dumps({{"code": code, "stderr": err.getvalue()}}))
""", cwd=shared_dir)
    assert outcome["code"] == 2
    assert "Ways out" in outcome["stderr"] and "setcap" in outcome["stderr"]


# --- rootless: a private namespace where nobody may capture ------------------------------


@as_nobody
@pytest.mark.parametrize("backend", ["dumpcap", "scapy"])
def test_rootless_capture_as_nobody_holds_the_handshake(shared_dir, backend):
    if backend == "dumpcap" and find_dumpcap() is None:
        pytest.skip("dumpcap not installed")
    outcome = run_as_nobody(f"""
import json
from tcpchatx.capture import rootless_available, run_rootless
ok, why = rootless_available()
if not ok:
    print(json.dumps({{"skip": why}}))
else:
    run = run_rootless("tcpchatx.capture.selftest:exchange_lines", "{shared_dir}/rootless.pcapng",
                       port=5000, kwargs={{"port": 5000, "lines": ["in", "a", "namespace"]}},
                       backend={backend!r})
    print(json.dumps({{"capture": run.capture.to_dict(), "value": run.value}}))
""", cwd=shared_dir)
    if "skip" in outcome:
        pytest.skip(f"user namespaces unavailable here: {outcome['skip']}")
    path = shared_dir / "rootless.pcapng"
    assert outcome["capture"]["path"] == str(path)
    assert outcome["capture"]["backend"] == backend
    assert outcome["value"]["echoed"] == ["in", "a", "namespace"]
    seen = [flag for flag, _ in tcp_segments(path)]
    assert seen[:3] == ["S", "SA", "A"]
    assert sum("F" in flag for flag in seen) == 2
    assert outcome["capture"]["packets"] == len(seen)
    assert path.stat().st_uid != 0  # the file belongs to the user, not to root
    assert sorted(p.name for p in shared_dir.iterdir()) == ["rootless.pcapng"]  # no temp left


@pytest.mark.skipif(not rootless_available()[0], reason="user namespaces unavailable here")
def test_rootless_reports_the_targets_failure(tmp_path):
    with pytest.raises(CaptureError, match="TypeError") as raised:
        run_rootless("tcpchatx.capture.selftest:exchange_lines", tmp_path / "failed.pcapng",
                     port=5000, kwargs={"no_such_argument": 1})
    assert "inside the namespace" in str(raised.value)
    assert tcp_segments(tmp_path / "failed.pcapng") == []  # saved anyway, with what happened


@pytest.mark.skipif(not rootless_available()[0], reason="user namespaces unavailable here")
def test_rootless_timeout_kills_the_namespace_and_saves_nothing(tmp_path):
    seconds = f"{60 + random.random():.9f}"  # a command line no other process has
    with pytest.raises(CaptureError, match="longer than 1 s; nothing was saved"):
        run_rootless("subprocess:call", tmp_path / "slow.pcapng", port=5000,
                     kwargs={"args": ["sleep", seconds]}, timeout=1)
    assert list(tmp_path.iterdir()) == []
    # The PID namespace died with its first process, taking dumpcap and sleep along. The
    # kernel reaps them asynchronously, so on a loaded machine allow it a moment (a poll
    # with a deadline); a sleep left alive would still be there after 60 s.
    deadline = time.monotonic() + 10
    while True:
        survivors = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True, text=True)
        if survivors.stdout == "" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert survivors.stdout == ""


# --- choosing a mode, and failing over --------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0 or find_dumpcap() is None, reason="needs root and dumpcap")
def test_root_with_dumpcap_captures_live():
    assert choose_capture_mode() == "live"


@as_nobody
def test_nobody_gets_rootless_mode(shared_dir):
    outcome = run_as_nobody("""
import json
from tcpchatx.capture import check_capture_mode
check = check_capture_mode()
print(json.dumps({"mode": check.mode, "explain": check.explain()}))
""", cwd=shared_dir)
    if not rootless_available()[0]:
        pytest.skip("user namespaces unavailable here")
    assert outcome["mode"] == "rootless"
    assert "private namespace" in outcome["explain"]


@as_nobody
def test_without_namespaces_nobody_falls_back_to_reference(shared_dir):
    outcome = run_as_nobody(f"""
import json
from tcpchatx.capture import check_capture_mode, rootless_available, run_rootless
from tcpchatx.capture import RootlessUnavailableError
available, reason = rootless_available()
try:
    run_rootless("tcpchatx.capture.selftest:exchange_lines", "{shared_dir}/never.pcapng",
                 port=5000, kwargs={{"port": 5000}})
    error = None
except RootlessUnavailableError as exc:
    error = str(exc)
check = check_capture_mode()
print(json.dumps({{"available": available, "reason": reason, "error": error,
                   "mode": check.mode, "explain": check.explain()}}))
""", cwd=shared_dir, namespace_limit_zero=True)
    assert outcome["available"] is False
    assert "max_user_namespaces" in outcome["reason"]
    assert "reference captures shipped in captures/" in outcome["error"]
    assert outcome["mode"] == "reference"
    assert "reference captures in captures/" in outcome["explain"]
    assert not (shared_dir / "never.pcapng").exists()


@pytest.mark.parametrize("unshare", ["/bin/false", "/nonexistent/unshare"])
def test_a_broken_unshare_fails_over_with_a_clear_error(tmp_path, monkeypatch, unshare):
    monkeypatch.setenv(UNSHARE_ENV, unshare)
    available, reason = rootless_available()
    assert available is False
    assert "unshare" in reason
    with pytest.raises(RootlessUnavailableError, match="reference captures"):
        run_rootless("tcpchatx.capture.selftest:exchange_lines", tmp_path / "never.pcapng",
                     port=5000, kwargs={"port": 5000})
    assert list(tmp_path.iterdir()) == []
    assert check_capture_mode().mode in ("live", "reference")
