"""``tcpchatx scenario NAME`` for the lab's stories, and their reference captures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tcpchatx.capture import rootless_available
from tcpchatx.netlab.references import LAB_CAPTURES, regenerate
from tcpchatx.scenarios.lab import LAB_STORIES

needs_namespaces = pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")


def tcpchatx(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpchatx", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=300)


@needs_namespaces
def test_a_lab_story_writes_both_views_into_the_folder_and_says_why(tmp_path):
    done = tcpchatx("scenario", "rto", "--out", "lab/anything.pcapng", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    views = [tmp_path / "lab" / f"rto-{side}-view.pcapng" for side in ("client", "server")]
    assert all(view.stat().st_size > 0 for view in views)
    assert f"Wrote {views[0]}" in done.stdout
    assert "timeout (the RTO)" in done.stdout and "lost between the client and the server" in done.stdout


@needs_namespaces
def test_a_bad_parameter_is_a_clear_error_and_writes_nothing(tmp_path):
    done = tcpchatx("scenario", "reorder", "--out", "lab/x.pcapng", "--param", "late_by=3", cwd=tmp_path)
    assert done.returncode == 1
    assert "late_by" in done.stderr and "Traceback" not in done.stderr.splitlines()[0]
    assert not list((tmp_path / "lab").glob("*.pcapng"))


def test_every_story_has_its_reference_captures():
    for name in LAB_STORIES:
        assert list(LAB_CAPTURES.glob(f"{name}*-client-view.pcapng")), name
        assert list(LAB_CAPTURES.glob(f"{name}*-server-view.pcapng")), name
    index = (LAB_CAPTURES / "README.md").read_text()
    assert all(f"## {name}" in index for name in LAB_STORIES)


@needs_namespaces
def test_the_index_says_why_each_resend_happened(tmp_path):
    written = regenerate(tmp_path, ["rto"], progress=lambda text: None)
    assert sorted(path.name for path in written) == ["rto-client-view.pcapng", "rto-server-view.pcapng"]
    index = (tmp_path / "README.md").read_text()
    assert "## rto" in index and "1 resend(s)" in index and "timeout (the RTO)" in index
    # Each view is annotated: a comment on every packet, the resend's naming Wireshark's mark.
    comments = subprocess.run(["tshark", "-r", str(tmp_path / "rto-client-view.pcapng"), "-T", "fields",
                               "-e", "frame.comment"], capture_output=True, text=True, check=True).stdout
    assert all(line for line in comments.splitlines())
    assert "[TCP Retransmission]" in comments


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs the system python3")
def test_without_namespaces_the_lab_says_so_and_points_to_the_references(tmp_path):
    """``unshare`` is missing from PATH: the lab cannot start, and says where the stories are."""
    env = {"PATH": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "tcpchatx", "scenario", "rto", "--out", "x/y.pcapng"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=60)
    assert done.returncode == 1
    assert "needs namespaces" in done.stderr and "captures/lab/rto*-view.pcapng" in done.stderr
