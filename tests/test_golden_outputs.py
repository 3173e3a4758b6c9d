"""What `tcpchatx annotate` prints and writes, kept byte for byte.

Every reference capture's three outputs are stored under ``tests/golden/``:

- ``NAME.json``: ``tcpchatx annotate captures/NAME.pcapng --json``
- ``NAME.summary.txt``: ``tcpchatx annotate captures/NAME.pcapng`` (summary and ladder)
- ``SHA256SUMS``: the annotated copy that ``--comments`` writes, by its hash

plus a larger capture made here from 20 copies of the reference chat (by its hashes only):
many conversations at once, whose messages share nicks and texts, so the fan-out must
share their copies out between them.

Both analyses must give them: the fast one (``analyze``) and the plain one
(``annotate --plain``, ``analyze_plainly``), which does the same one packet and one line
at a time.  A restructure must leave all of them unchanged.  When a change is *meant* to change an
output, regenerate the files and read their diff before committing it::

    TCPCHATX_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_outputs.py
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tcpchatx.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
REFERENCES = sorted(p.stem for p in (ROOT / "captures").glob("*.pcapng"))
UPDATE = bool(os.environ.get("TCPCHATX_UPDATE_GOLDEN"))
COPIES = 20  # of the reference chat in the larger capture


def annotate(capsys, *argv: str) -> str:
    """Run ``tcpchatx annotate ARGV`` from the repository root; return what it printed."""
    capsys.readouterr()
    cwd = os.getcwd()
    os.chdir(ROOT)  # the JSON names the capture as given: captures/NAME.pcapng
    try:
        assert main(["annotate", *argv]) == 0
    finally:
        os.chdir(cwd)
    return capsys.readouterr().out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_sums() -> dict[str, str]:
    path = GOLDEN / "SHA256SUMS"
    if not path.exists():
        return {}
    return {name: digest for digest, name in (line.split() for line in path.read_text().splitlines())}


SUMS = read_sums()
NEW_SUMS: dict[str, str] = {}


def check_text(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.read_text() == text, f"{name} changed (see this module's docstring)"


def check_hash(name: str, data: bytes) -> None:
    digest = sha256(data)
    if UPDATE:
        NEW_SUMS[name] = digest
        sums = {**SUMS, **NEW_SUMS}
        (GOLDEN / "SHA256SUMS").write_text("".join(f"{sums[k]}  {k}\n" for k in sorted(sums)))
        return
    assert SUMS.get(name) == digest, f"{name} changed (see this module's docstring)"


HOW = pytest.mark.parametrize("how", [(), ("--plain",)], ids=["fast", "plain"])


@HOW
@pytest.mark.parametrize("name", REFERENCES)
def test_json_is_unchanged(capsys, name, how):
    check_text(f"{name}.json", annotate(capsys, f"captures/{name}.pcapng", "--json", *how))


@HOW
@pytest.mark.parametrize("name", REFERENCES)
def test_summary_and_ladder_are_unchanged(capsys, name, how):
    check_text(f"{name}.summary.txt", annotate(capsys, f"captures/{name}.pcapng", *how))


@HOW
@pytest.mark.parametrize("name", REFERENCES)
def test_annotated_copy_is_unchanged(capsys, tmp_path, name, how):
    out = tmp_path / f"{name}.annotated.pcapng"
    annotate(capsys, f"captures/{name}.pcapng", "--comments", str(out), *how)
    check_hash(f"{name}.annotated.pcapng", out.read_bytes())


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> Path:
    """Copies of the reference chat, interleaved: many conversations at once."""
    from benchmarks.make_capture import build_copies, write_pcapng
    from tcpchatx.analysis import analyze

    tracked = int((analyze(ROOT / "captures" / "chat.pcapng").tracking.conn >= 0).sum())
    path = tmp_path_factory.mktemp("golden") / "copies.pcapng"
    write_pcapng(path, *build_copies(ROOT / "captures" / "chat.pcapng", COPIES * tracked))
    return path


@HOW
def test_a_larger_capture_gives_the_same_outputs(capsys, copies, how):
    json_text = annotate(capsys, str(copies), "--json", *how)
    check_hash("copies.json", json_text.replace(str(copies), "COPIES").encode())
    summary = annotate(capsys, str(copies), "--all", *how)
    check_hash("copies.summary.txt", summary.replace(str(copies), "COPIES").encode())
    out = copies.with_name("copies.annotated.pcapng")
    annotate(capsys, str(copies), "--comments", str(out), *how)
    check_hash("copies.annotated.pcapng", out.read_bytes())
