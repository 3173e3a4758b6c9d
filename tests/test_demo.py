"""tcpchatx demo, the README's first command, in each capture mode."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("mode", ["live", "reference"])
def test_demo_runs_a_whole_session_and_writes_its_files(tmp_path, mode):
    result = subprocess.run(
        [sys.executable, "-m", "tcpchatx", "demo", "--out", str(tmp_path), "--mode", mode],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    for step in range(1, 7):
        assert f"[{step}/6]" in result.stdout  # progress for every step
    assert "3 TCP connection(s)" in result.stdout
    assert "(SYN)" in result.stdout  # the text ladder
    assert "wireshark " in result.stdout and "jupyter lab notebooks/" in result.stdout
    for name in ("chat.pcapng", "chat-annotated.pcapng", "ladder.png", "fanout.png", "time-sequence.png"):
        written = tmp_path / name
        assert written.stat().st_size > 0, name
    assert (tmp_path / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "socket-states.png").exists() == (mode == "live")
    if mode == "reference":
        assert "reference capture" in result.stdout
