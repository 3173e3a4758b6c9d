"""Run every notebook in reference mode and store it with its outputs (``make notebooks``).

A student browsing the repository on GitHub, or opening a notebook before running it,
should see the tables and figures the prose talks about.  Reference mode opens only
the captures shipped in ``captures/``, so its outputs are the same on every machine and
every run; those are the ones stored.  ``tests/test_notebooks.py`` runs the notebooks in
reference mode again and fails when what is stored differs: outputs are kept in git
only while they are exactly what the code produces.

    python scripts/store_notebook_outputs.py                  # every notebook
    python scripts/store_notebook_outputs.py 03_the_close     # the ones whose names contain this
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 120  # seconds


def execute_in_reference_mode(path: Path, out: Path | None = None) -> nbformat.NotebookNode:
    """``path`` executed in a fresh kernel, in reference mode, from the notebooks' folder,
    with no timing metadata, so that the same code gives the same file.  New captures
    would go to ``out`` (reference mode makes none); the environment is restored after."""
    nb = nbformat.read(path, as_version=4)
    saved = {name: os.environ.get(name) for name in ("TCPCHATX_CAPTURE_MODE", "TCPCHATX_OUT")}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TCPCHATX_CAPTURE_MODE"] = "reference"
        os.environ["TCPCHATX_OUT"] = str(out or scratch)
        try:
            NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    # Only what Jupyter needs to open it: no Python version to differ from machine to machine.
    nb.metadata = {"kernelspec": nb.metadata["kernelspec"], "language_info": {"name": "python"}}
    return nb


def coalesce_streams(outputs: list) -> list:
    """Consecutive prints to the same stream as one output: how the kernel batched them
    depends on timing, what they say does not."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] += output["text"]
        else:
            merged.append(output)
    return merged


def main(names: list[str]) -> int:
    notebooks = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    chosen = [path for path in notebooks if not names or any(name in path.name for name in names)]
    if not chosen:
        print(f"no notebook in {NOTEBOOK_DIR} matches {' '.join(names)}", file=sys.stderr)
        return 2
    for number, path in enumerate(chosen, start=1):
        started = time.monotonic()
        print(f"[{number}/{len(chosen)}] {path.name}: running in reference mode...", flush=True)
        nbformat.write(execute_in_reference_mode(path), path)
        print(f"[{number}/{len(chosen)}] {path.name}: stored ({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
