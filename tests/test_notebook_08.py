"""Notebook 08 (congestion control) under papermill with two sets of parameters: its
self-checks must pass, and the stories must have been played with the parameters.

tests/test_notebooks.py runs it as stored in reference mode; this file adds what
papermill does to it (the ``parameters`` cell), as that file does for notebooks 04 and
06.  The first set is the parameters cell's own, and that run is the notebook's live
run; the second is played as nobody, and that run is its nobody run
(``LIVE_BY_PAPERMILL`` there).
"""

from __future__ import annotations

import re

import pytest
from test_notebooks import NOTEBOOK_DIR, live_only, parameters_cell, run_with_papermill

NOTEBOOK = NOTEBOOK_DIR / "08_congestion_control.ipynb"
PARAMETERS = [
    {"rate": "4mbit", "buffer_bytes": 30000, "delay_ms": 10, "size": 600000,  # the defaults
     "algorithms": ["cubic", "reno", "bbr"], "receive_buffer": 16384},
    # A faster link, a longer path, a shorter queue; reno first (cubic's HyStart may leave
    # slow start before a queue overflows, and the story needs a loss from the first).
    {"rate": "8mbit", "buffer_bytes": 20000, "delay_ms": 15, "size": 400000,
     "algorithms": ["reno", "cubic", "bbr"], "receive_buffer": 32768},
]


def test_08_has_a_parameters_cell():
    assert parameters_cell(NOTEBOOK) == {"rate": "4mbit", "buffer_bytes": 30000, "delay_ms": 10, "size": 600000,
                                         "algorithms": ("cubic", "reno", "bbr"), "receive_buffer": 16384}


def test_08s_defaults_are_the_stories():
    """The parameters cell asks for what the reference captures were made with, so that
    reference mode shows them without a note that they differ."""
    from tcpchatx.lab.stories import not_the_defaults

    defaults = {"rate": "4mbit", "buffer_bytes": 30000, "delay_ms": 10, "size": 600000,
                "algorithms": ("cubic", "reno", "bbr")}
    assert not_the_defaults("bottleneck", defaults) == {}
    assert not_the_defaults("limits", {"rate": "4mbit", "receive_buffer": 16384}) == {}


@live_only
@pytest.mark.timeout(600)
@pytest.mark.parametrize("parameters", PARAMETERS,
                         ids=lambda p: f"{p['rate']}-{p['buffer_bytes']}B-{p['delay_ms']}ms-{p['algorithms'][0]}")
def test_08_with_papermill(parameters, tmp_path, monkeypatch):
    # Eleven checks; bbr's is skipped when its run lost nothing.
    text = run_with_papermill(NOTEBOOK, parameters, tmp_path, monkeypatch, passes=10,
                              as_nobody=parameters is not PARAMETERS[0])
    # The stories were played with the parameters: the transfer, the link, the path, the buffer.
    main = parameters["algorithms"][0]
    assert (f"{main}: {parameters['size']:,} bytes in " in text
            and f"a link of {parameters['rate']} with a queue of {parameters['buffer_bytes']:,} bytes" in text), text
    # The least RTT is never below the path's two delays (the relay holds each frame at least
    # that long); above them by a segment's time on the link, and by however late a busy
    # machine runs the relay's loop: a loose bound, which still tells 20 ms from 30.
    least = re.search(r"The least RTT the kernel measured was ([0-9.]+) ms", text)
    assert least and 2 * parameters["delay_ms"] - 0.5 <= float(least.group(1)) < 2 * parameters["delay_ms"] + 8, text
    window = re.search(r"against a receiver's window of ([0-9,]+)", text)  # the rwnd run's, at its middle sample
    assert window and parameters["receive_buffer"] / 4 < int(window.group(1).replace(",", "")) < parameters[
        "receive_buffer"], text
    for name in parameters["algorithms"]:
        assert re.search(rf"^{name}\s+[0-9.]+\s", text, re.MULTILINE), f"no row for {name} in the comparison"
