"""Notebook 07 (flow control) under papermill with two sets of parameters: its
self-checks must pass, and the stories must have been played with the parameters given.

tests/test_notebooks.py runs every notebook, this one included, in reference mode;
this file adds what it does for notebooks 04 and 06: the parameters cell, and papermill.
The first set is the parameters cell's own, and that run is the notebook's live run;
the second is played as nobody, and that run is its nobody run (``LIVE_BY_PAPERMILL``
there).
"""

from __future__ import annotations

import re

import pytest
from test_notebooks import NOTEBOOK_DIR, live_only, parameters_cell, run_with_papermill

FLOW = NOTEBOOK_DIR / "07_flow_control.ipynb"
FLOW_PARAMETERS = [
    {"receive_buffer": 16384, "delay_ms": 20, "pause": 2.4},  # the defaults
    {"receive_buffer": 32768, "delay_ms": 10, "pause": 3.0},
]


def test_07_has_a_parameters_cell():
    assert parameters_cell(FLOW) == {"receive_buffer": 16384, "delay_ms": 20, "pause": 2.4}


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} is not in the notebook's output:\n{text}"
    return float(found.group(1).replace(",", ""))


@live_only
@pytest.mark.timeout(600)  # the second set's run as nobody has PAPERMILL_AS_NOBODY_TIMEOUT
@pytest.mark.parametrize("parameters", FLOW_PARAMETERS,
                         ids=lambda p: f"buffer={p['receive_buffer']}-delay={p['delay_ms']}-pause={p['pause']}")
def test_07_with_papermill(parameters, tmp_path, monkeypatch):
    # Twelve checks; "your window" is skipped unless answered.
    text = run_with_papermill(FLOW, parameters, tmp_path, monkeypatch, passes=11,
                              as_nobody=parameters is not FLOW_PARAMETERS[0])
    # The stories were played with the parameters: the path's round trip, the receiver's
    # window (a share of its buffer: the kernel keeps the rest for each segment's overhead),
    # alice's pause (she reads again after it, and before the story's next step).
    round_trip = number(r"the handshake's took ([0-9.]+) ms", text)
    assert 2 * parameters["delay_ms"] <= round_trip < 2 * parameters["delay_ms"] + 10, text
    window = number(r"Later the receiver says window ([0-9,]+) bytes", text)
    assert parameters["receive_buffer"] / 4 < window < parameters["receive_buffer"], text
    read_again = number(r"started reading again: ([0-9.]+) ms after her SYN", text)
    assert 1000 * parameters["pause"] <= read_again < 1000 * (parameters["pause"] + 1), text
