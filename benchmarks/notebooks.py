"""Every notebook executed headless, one after another, in the mode this machine picks.

Each notebook runs in a fresh kernel (nbclient, as the tests do) with the capture mode
chosen as a student's would be (live where this user may capture, else rootless,
else the reference captures).  The figure is the total against a budget of 60 s,
target 1x; each notebook's time is printed.  Outputs go to a scratch directory.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tcpchatx.capture import choose_capture_mode

from .common import Result

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BUDGET_S = 60.0


def run(quick: bool = False) -> list[Result]:
    mode = choose_capture_mode()
    times = []
    with tempfile.TemporaryDirectory(prefix="tcpchatx-bench-notebooks-") as out:
        saved = {key: os.environ.get(key) for key in ("TCPCHATX_CAPTURE_MODE", "TCPCHATX_OUT")}
        os.environ.update(TCPCHATX_CAPTURE_MODE=mode, TCPCHATX_OUT=out)
        try:
            for path in NOTEBOOKS:
                nb = nbformat.read(path, as_version=4)
                started = time.perf_counter()
                NotebookClient(nb, timeout=120, kernel_name="python3",
                               resources={"metadata": {"path": str(path.parent)}}).execute()
                times.append(time.perf_counter() - started)
                print(f"    {path.name}: {times[-1]:.1f} s ({mode})", flush=True)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    total = sum(times)
    return [Result(f"notebooks: all {len(times)} executed headless, {mode} mode",
                   f"budget {BUDGET_S:g} s; took {total:.1f} s "
                   f"({', '.join(f'{t:.1f}' for t in times)})",
                   BUDGET_S / total, 1.0)]
