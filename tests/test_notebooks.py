"""Every notebook, executed for real in a fresh kernel, in every capture mode.

* **live**: as root (this process), ``TCPCHATX_CAPTURE_MODE=live``;
* **reference**: ``TCPCHATX_CAPTURE_MODE=reference``, no capture at all; the outputs must
  be exactly those stored in git (``make notebooks`` stores them);
* **as nobody**: Debian's ``/usr/bin/python3`` with the repository and the venv's
  site-packages on PYTHONPATH (the venv's own interpreter lives under /root, which
  nobody cannot read), in a scratch directory nobody owns; no mode is forced, so
  the notebooks pick the rootless namespace (or, where namespaces are off, the
  reference captures) by themselves; notebook 01 captures its own handshake there too;
* **papermill**: notebooks 04, 06, 07 and 08 with two sets of parameters each; their
  self-checks must pass.  For 06, 07 and 08 (``LIVE_BY_PAPERMILL``) the first set is the
  parameters cell's own (checked here), so that papermill run is their live run, and the
  second set is played as nobody, so that it is their nobody run: each of them plays its
  stories twice, not three times.  (Where this machine cannot become nobody or build the
  rootless namespace, the second set runs live too, and 06-08 have no nobody run.)

Each executed notebook must have no error, nothing on stderr in any cell (no thread
may print into a cell) and a first cell that names the mode.  The other live, reference
and nobody runs are made up front by one fixture (``notebook_runs``), several side by
side: those runs mostly wait (kernel start-up, dumpcap's flush) and time nothing.  The
lab network's stories (notebooks 06, 07 and 08) are timed, so their runs are the
papermill tests, one at a time.  The run time of every notebook is printed at the end
of the session (pytest's terminal summary).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from itertools import zip_longest
from pathlib import Path

import nbformat
import pytest

from tcpchatx.capture import choose_capture_mode, rootless_available
from tcpchatx.lab.printing import (
    WIDTH as NOTEBOOK_WIDTH,  # bound now: conftest widens WIDTH in this process
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from store_notebook_outputs import coalesce_streams  # noqa: E402  (`make notebooks`; DRIVER runs it too)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
NAMES = [path.name for path in NOTEBOOKS]
EXERCISE = NOTEBOOK_DIR / "04_lab_exercises.ipynb"
LOSS = NOTEBOOK_DIR / "06_loss_and_retransmission.ipynb"
FIRST_CELL = "from tcpchatx import lab\n\nmode = lab.capture_mode()"
CELL_TIMEOUT = 120  # seconds per cell
SYSTEM_PYTHON = "/usr/bin/python3"
#: Seconds a papermill run as nobody may take; the tests that make one allow more.
PAPERMILL_AS_NOBODY_TIMEOUT = 480
PAPERMILL_PARAMETERS = [
    {"clients": 3, "messages": 2, "nagle": True, "close_variant": "quit"},
    {"clients": 4, "messages": 2, "nagle": False, "close_variant": "abort"},
]
LOSS_PARAMETERS = [
    {"delay_ms": 25, "lost": 3, "hold_ms": 5, "broken_for": 1.7, "loss_rate": 0.02, "sack": True},  # the defaults
    {"delay_ms": 40, "lost": 5, "hold_ms": 8, "broken_for": 1.0, "loss_rate": 0.04, "sack": False},
]
#: The notebooks whose live run is their papermill run with the parameters cell's own
#: values (the first set of each: test_papermill_runs_the_defaults_first checks it), and
#: whose nobody run is their papermill run with the second set.
LIVE_BY_PAPERMILL = ("06_loss_and_retransmission.ipynb", "07_flow_control.ipynb", "08_congestion_control.ipynb")
LINE_BYTES = 34  # "line K of 10, all written at once\n", K < 10: fast-retransmit's lines

TIMES: dict[str, float] = {}  # "mode: notebook" -> seconds
#: How many untimed notebook runs notebook_runs makes at once.  Each is busy only about half
#: the time, so on two cores three side by side took 83 s where two took 92 (and one
#: after another, 142).
SIDE_BY_SIDE = 3


@pytest.fixture(scope="module", autouse=True)
def report_times(request):
    """Print every notebook's run time once the module is done (the lead's closing note)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not TIMES:
        return
    lines = ["", "notebook run times (s):"]
    lines += [f"  {key:<60} {seconds:6.1f}" for key, seconds in TIMES.items()]
    for mode in sorted({key.split(":")[0] for key in TIMES}):
        total = sum(s for key, s in TIMES.items() if key.startswith(f"{mode}:"))
        lines.append(f"  {mode + ': all':<60} {total:6.1f}")
    with capture.global_and_fixture_disabled():  # shown even without -s
        for line in lines:
            reporter.write_line(line)


# --------------------------------------------------------------------------- checking outputs


def cell_text(cell) -> str:
    """All the text a cell printed or displayed."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
        elif output.get("output_type") == "error":
            parts.append("\n".join(output.get("traceback", [])))
    return "".join(parts)


def assert_clean_run(nb, mode: str | tuple[str, ...]) -> str:
    """No error, no stderr, the first cell names the mode; returns the mode named."""
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells):
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", (
                f"cell {number} raised {output.get('ename')}: {output.get('evalue')}\n{cell.source}")
            if output.get("output_type") == "stream":
                assert output.get("name") != "stderr", (
                    f"cell {number} wrote to stderr:\n{output.get('text')}\n--- cell:\n{cell.source}")
    assert code_cells[0].source == FIRST_CELL
    named = re.search(r"Capture mode: (\w+)", cell_text(code_cells[0]))
    assert named, f"the first cell does not name the capture mode:\n{cell_text(code_cells[0])}"
    modes = (mode,) if isinstance(mode, str) else mode
    assert named.group(1) in modes, cell_text(code_cells[0])
    return named.group(1)


def printed(nb) -> str:
    """Everything the code cells printed or displayed (as cell_text), with the lines that
    lab.say wrapped between words joined again (tables left as they are)."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            text = cell_text({"outputs": [output]})
            parts.append(re.sub(r"\n +", " ", text) if output.get("output_type") == "stream" else text)
    return "".join(parts)


def assert_own_handshake(nb) -> None:
    """Notebook 01's story, told by its own sockets: listen 0 packets, connect 3, accept 0,
    and the numbers are read from that handshake."""
    text = printed(nb)
    assert "socket, bind, listen: 0 packet(s) on the wire." in text
    assert "connect: 3 packet(s) on the wire: SYN, SYN-ACK, ACK (handshake)." in text
    assert "accept: 0 packet(s) on the wire." in text
    assert "Using your own handshake: packets 1-3 of " in text


# --------------------------------------------------------------------------- as stored in git


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_is_clean(name):
    """Valid nbformat 4, minimal metadata, the lab cell first, and stored *executed*: every
    code cell ran once, in order (the outputs themselves: test_stored_outputs_are_current)."""
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata == {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                           "language_info": {"name": "python"}}
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code_cells[0].source == FIRST_CELL
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1)), (
        f"{name} is not stored as one run of all its cells: run `make notebooks`")
    assert "Capture mode: reference" in cell_text(code_cells[0])
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def assert_reads_plainly(nb) -> None:
    """Every table: no index column beside `frame`, nothing missing shown as NaN or <NA>,
    Zeek's history in a fixed-width font (the rest of the look: test_lab.py's
    test_tables_read_plainly).  Every printed line fits the output area: a wider one is
    broken by the browser wherever the edge falls, mid-word ("ac/knowledged"), so the lab
    wraps between words at lab.say's WIDTH; only a table printed as text may be wider."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            table = output.get("data", {}).get("text/html")
            if table is not None:
                assert "row_heading" not in table and "blank level0" not in table, "an index column is shown"
                assert ">NaN<" not in table and "&lt;NA&gt;" not in table and ">None<" not in table
                assert "monospace" in table if ">history</th>" in table else True
                assert " at 0x" not in output.data.get("text/plain", ""), "a table's text is an object's address"
            if "format_checks" in cell.source:
                continue
            for line in output.get("text", "").splitlines():
                assert len(line) <= NOTEBOOK_WIDTH or " " not in line.strip(), f"{len(line)} characters: {line}"


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_reads_plainly(name):
    assert_reads_plainly(nbformat.read(NOTEBOOK_DIR / name, as_version=4))


def stale_outputs(stored, executed) -> list[str]:
    """Where ``stored`` differs from a fresh run (``executed``): one line per code cell.
    Text outputs must be equal; images must have the same pixels (PNG's compression and
    metadata may differ without the picture changing)."""
    problems = []
    code = [(a, b) for a, b in zip(stored.cells, executed.cells) if a.cell_type == "code"]
    assert len(stored.cells) == len(executed.cells)
    for number, (mine, fresh) in enumerate(code):
        if _comparable(mine.outputs) != _comparable(fresh.outputs):
            first_line = mine.source.splitlines()[0] if mine.source else ""
            problems.append(f"code cell {number} ({first_line!r})")
    return problems


def test_stale_outputs_are_found():
    """The freshness check itself: a changed word, or one changed pixel, is found."""
    import base64
    import copy
    import io

    import matplotlib.image

    stored = nbformat.read(NOTEBOOK_DIR / "01_handshake.ipynb", as_version=4)
    assert stale_outputs(stored, copy.deepcopy(stored)) == []
    worded = copy.deepcopy(stored)
    printed = next(o for c in worded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream")
    printed.text = printed.text.replace("reference", "shipped", 1)
    assert len(stale_outputs(stored, worded)) == 1
    drawn = copy.deepcopy(stored)
    image = next(o for c in drawn.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(image.data["image/png"])), format="png").copy()
    pixels[10, 10] = 1.0 - pixels[10, 10]
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, pixels, format="png")
    image.data["image/png"] = base64.b64encode(buffer.getvalue()).decode()
    found = stale_outputs(stored, drawn)
    assert len(found) == 1 and "from tcpchatx import plots" in found[0], found


def _comparable(outputs) -> list:
    import base64
    import io

    import matplotlib.image

    shown = []
    for output in coalesce_streams([dict(output) for output in outputs]):
        output = dict(output)
        if "data" in output:
            data = dict(output["data"])
            if "image/png" in data:
                pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data.pop("image/png"))), format="png")
                data["image/png"] = (pixels.shape, pixels.tobytes())
            output["data"] = data
        shown.append(output)
    return shown


def test_every_notebook_is_tested():
    assert NAMES == ["01_handshake.ipynb", "02_messages_and_broadcast.ipynb", "03_the_close.ipynb",
                     "04_lab_exercises.ipynb", "05_pcap_replay.ipynb", "06_loss_and_retransmission.ipynb",
                     "07_flow_control.ipynb", "08_congestion_control.ipynb"]


def test_exercise_has_a_parameters_cell():
    assert parameters_cell(EXERCISE) == {"clients": 3, "messages": 2, "nagle": True, "close_variant": "quit",
                                         "port": 0, "backend": "auto"}


def parameters_cell(path: Path) -> dict:
    """The values a notebook's one ``parameters`` cell assigns (literals only)."""
    nb = nbformat.read(path, as_version=4)
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, path.name
    values = {}
    for statement in ast.parse(tagged[0].source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, ast.unparse(statement)
        values[statement.targets[0].id] = ast.literal_eval(statement.value)
    return values


def test_06_has_a_parameters_cell():
    assert parameters_cell(LOSS) == {"delay_ms": 25, "lost": 3, "hold_ms": 5, "broken_for": 1.7,
                                     "loss_rate": 0.02, "sack": True}


def test_papermill_runs_the_defaults_first():
    """The first papermill set of each notebook in LIVE_BY_PAPERMILL is its parameters
    cell, so that run is the notebook's live run as stored."""
    from test_notebook_07 import FLOW, FLOW_PARAMETERS
    from test_notebook_08 import NOTEBOOK as CONGESTION
    from test_notebook_08 import PARAMETERS as CONGESTION_PARAMETERS

    runs = {LOSS: LOSS_PARAMETERS[0], FLOW: FLOW_PARAMETERS[0], CONGESTION: CONGESTION_PARAMETERS[0]}
    assert sorted(path.name for path in runs) == sorted(LIVE_BY_PAPERMILL)
    for path, first in runs.items():
        as_tuples = {key: tuple(value) if isinstance(value, list) else value for key, value in first.items()}
        assert as_tuples == parameters_cell(path), path.name


# --------------------------------------------------------------------------- executing the notebooks


DRIVER = r"""
import json, sys, time
from pathlib import Path

import matplotlib.font_manager  # build the font cache here, not in a notebook cell
import nbformat
from nbclient import NotebookClient

spec = json.loads(sys.argv[1])
if spec["reference"]:
    sys.path.insert(0, spec["scripts"])
    from store_notebook_outputs import execute_in_reference_mode
results = {}
for path in spec["notebooks"]:
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    error = None
    try:
        if spec["reference"]:  # exactly as `make notebooks` stores it
            nb = execute_in_reference_mode(Path(path), out=Path(spec["out"]))
        else:
            NotebookClient(nb, timeout=spec["timeout"], kernel_name="python3",
                           resources={"metadata": {"path": spec["cwd"]}}).execute()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    executed = str(Path(spec["executed"]) / Path(path).name)
    nbformat.write(nb, executed)
    results[path] = {"seconds": time.monotonic() - started, "error": error, "executed": executed}
print(json.dumps(results))
"""


def run_driver(python: list[str], notebooks: list[Path], *, cwd: Path, executed: Path,
               env: dict[str, str] | None = None, reference_out: Path | None = None) -> dict[str, tuple]:
    """Execute *notebooks* one after another in a driver process (``python``: the command
    that runs Python, perhaps as another user), each in a fresh kernel started in *cwd*,
    or with *reference_out* in reference mode, by ``make notebooks``' own function;
    {name: (executed notebook, error or None, seconds)}."""
    spec = {"notebooks": [str(path) for path in notebooks], "timeout": CELL_TIMEOUT, "cwd": str(cwd),
            "executed": str(executed), "reference": reference_out is not None, "out": str(reference_out),
            "scripts": str(REPO / "scripts")}
    done = subprocess.run([*python, "-c", DRIVER, json.dumps(spec)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {Path(path).name: (nbformat.read(result["executed"], as_version=4), result["error"], result["seconds"])
            for path, result in results.items()}


def selected(request, test_name: str) -> list[Path]:
    """The notebooks the session runs *test_name* for (``-k 01`` runs only notebook 01's)."""
    names = {item.callspec.params["name"] for item in request.session.items
             if getattr(item, "originalname", None) == test_name}
    return [path for path in NOTEBOOKS if path.name in names]


def _can_become_nobody() -> str | None:
    """Why the nobody run cannot happen here, or None if it can."""
    if os.geteuid() != 0 or not shutil.which("runuser"):
        return "needs root and runuser"
    if not Path(SYSTEM_PYTHON).exists():
        return f"needs {SYSTEM_PYTHON}"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=False)
    if probe.stdout.strip() != str(sys.version_info[:2]):
        return f"{SYSTEM_PYTHON} is not Python {sys.version_info[0]}.{sys.version_info[1]} like the venv"
    readable = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-r",
                               str(REPO / "tcpchatx" / "lab" / "__init__.py")], check=False)
    if readable.returncode != 0:
        return f"nobody cannot read {REPO}"
    return None


def nobody_python(scratch: Path, lane: str) -> list[str]:
    """The command that runs Debian's python3 as nobody, with the repository and the venv's
    site-packages on PYTHONPATH and every Jupyter, IPython and matplotlib folder in
    *scratch* (nobody's).  Each *lane* has its own IPython folder and captures folder, so
    that kernels running side by side never share a file."""
    for folder in (scratch / "ipython" / lane, scratch / "out" / lane):
        folder.mkdir()
        shutil.chown(folder, "nobody")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch / "home"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "JUPYTER_DATA_DIR": str(scratch / "home" / "jupyter"),
        "IPYTHONDIR": str(scratch / "ipython" / lane),
        "MPLCONFIGDIR": str(scratch / "mpl"),
        "TCPCHATX_OUT": str(scratch / "out" / lane),
        "PYTHONPATH": f"{REPO}:{sysconfig.get_paths()['purelib']}",
        "LANG": "C.UTF-8",
    }
    return ["runuser", "-u", "nobody", "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), SYSTEM_PYTHON]


def nobody_scratch() -> Path:
    """A scratch folder for nobody's runs (pytest's tmp_path is root's only), with the
    folders nobody_python points at; the caller removes it."""
    scratch = Path(tempfile.mkdtemp(prefix="tcpchatx-notebooks-nobody-"))
    try:
        for name in ("notebooks", "home", "runtime", "mpl", "executed", "ipython", "out"):
            (scratch / name).mkdir()
        subprocess.run(["chown", "-R", "nobody", str(scratch)], check=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch


def as_nobody(scratch: Path, notebooks: list[Path], lane: str) -> dict[str, tuple]:
    """run_driver as nobody (nobody_python), in *scratch* (nobody_scratch)."""
    for path in notebooks:
        shutil.chown(shutil.copy(path, scratch / "notebooks" / path.name), "nobody")
    return run_driver(nobody_python(scratch, lane), [scratch / "notebooks" / path.name for path in notebooks],
                      cwd=scratch / "notebooks", executed=scratch / "executed")


@pytest.fixture(scope="module")
def notebook_runs(request, tmp_path_factory):
    """Every selected live, reference and nobody run, made once, up front:
    {"live" | "reference" | "nobody": {name: (executed notebook, error or None)}}, and
    {name: the folder its captures would go to} under "reference out".

    The lab network's stories (LIVE_BY_PAPERMILL's notebooks) are timed, and a busy
    machine can make one miss its event (a StoryError): their live and nobody runs are
    the papermill tests, one at a time.  Every run here mostly waits for its kernel and
    for dumpcap to flush, and times nothing (reference mode does not even capture), so
    they run SIDE_BY_SIDE at a time, each notebook in its own driver process."""
    runs: dict[str, dict] = {"live": {}, "reference": {}, "nobody": {}, "reference out": {}}
    root = tmp_path_factory.mktemp("notebook-runs")
    pending: dict[str, list] = {"live": [], "reference": [], "nobody": []}  # run_driver, arguments bound

    if LIVE_HERE:
        for path in selected(request, "test_notebook_live"):
            out = root / "live" / path.name / "out"
            out.mkdir(parents=True)
            env = {**os.environ, "TCPCHATX_CAPTURE_MODE": "live", "TCPCHATX_OUT": str(out)}
            pending["live"].append(partial(run_driver, [sys.executable], [path], cwd=NOTEBOOK_DIR,
                                           executed=out.parent, env=env))
    for path in selected(request, "test_notebook_reference"):
        out = runs["reference out"][path.name] = root / "reference" / path.name / "out"
        out.mkdir(parents=True)
        pending["reference"].append(partial(run_driver, [sys.executable], [path], cwd=NOTEBOOK_DIR,
                                            executed=out.parent, reference_out=out))

    for_nobody = selected(request, "test_notebook_as_nobody") if _can_become_nobody() is None else []
    scratch = nobody_scratch() if for_nobody else None
    try:
        pending["nobody"] = [partial(as_nobody, scratch, [path], path.stem) for path in for_nobody]

        # Taken in turns (a live run, a reference run, a nobody run, ...), so that a reference
        # run, which mostly computes, mostly runs beside one that mostly waits.
        in_turns = [(mode, run) for group in zip_longest(*pending.values()) for mode, run in zip(pending, group)
                    if run is not None]
        with ThreadPoolExecutor(max_workers=SIDE_BY_SIDE) as pool:
            made = [(mode, pool.submit(run)) for mode, run in in_turns]
            for mode, future in made:
                runs[mode].update(future.result())
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    for mode in ("live", "reference", "nobody"):
        for name, (nb, error, seconds) in sorted(runs[mode].items()):
            TIMES[f"{mode}: {name}"] = seconds
            runs[mode][name] = (nb, error)
    return runs


# --------------------------------------------------------------------------- live and reference


LIVE_HERE = os.geteuid() == 0 and choose_capture_mode() == "live"
live_only = pytest.mark.skipif(not LIVE_HERE, reason="live capture needs root (or capture rights) here")


@live_only
@pytest.mark.timeout(900)  # the first one waits for notebook_runs
@pytest.mark.parametrize("name", [name for name in NAMES if name not in LIVE_BY_PAPERMILL])
def test_notebook_live(name, notebook_runs):
    nb, error = notebook_runs["live"][name]
    assert error is None, error
    assert_clean_run(nb, "live")
    assert_reads_plainly(nb)
    if name == "01_handshake.ipynb":
        assert_own_handshake(nb)


@pytest.mark.timeout(900)  # the first one waits for notebook_runs
@pytest.mark.parametrize("name", NAMES)
def test_notebook_reference(name, notebook_runs):
    """Reference mode: clean, captures nothing, and gives exactly the outputs stored in git
    (which is what a student sees on GitHub before running anything)."""
    nb, error = notebook_runs["reference"][name]
    assert error is None, error
    assert_clean_run(nb, "reference")
    assert list(notebook_runs["reference out"][name].iterdir()) == [], "reference mode must not capture anything"
    if name == "01_handshake.ipynb":  # the same calls, from captures/own-sockets/: prose true here too
        text = printed(nb)
        assert "put 3 packet(s) on the wire: SYN, SYN-ACK, ACK (handshake)." in text
        assert text.count("put 0 packet(s) on the wire.") == 2
        assert "Using the reference capture's handshake: packets 1-3 of " in text
    stale = stale_outputs(nbformat.read(NOTEBOOK_DIR / name, as_version=4), nb)
    assert not stale, (f"{name}: the stored outputs are stale in " + ", ".join(stale)
                       + ". Run `make notebooks` and commit the notebooks.")


# --------------------------------------------------------------------------- as nobody


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", [name for name in NAMES if name not in LIVE_BY_PAPERMILL])
def test_notebook_as_nobody(name, notebook_runs):
    why_not = _can_become_nobody()
    if why_not:
        pytest.skip(why_not)
    nb, error = notebook_runs["nobody"][name]
    assert error is None, error
    assert_ran_as_nobody(nb)
    if name == "01_handshake.ipynb" and rootless_available()[0]:  # its own sockets, in the namespace
        assert_own_handshake(nb)


def assert_ran_as_nobody(nb) -> None:
    """A clean run in the mode nobody's notebooks pick by themselves, which says why."""
    expected = "rootless" if rootless_available()[0] else "reference"
    assert assert_clean_run(nb, ("rootless", "reference")) == expected
    assert_reads_plainly(nb)
    if expected == "rootless":  # why, in a student's words first, the capture tool's after
        why = printed(nb).split("Why: ", 1)[1]
        assert why.startswith("you may not capture on lo (that needs root, the wireshark group, or capture "
                              "rights for dumpcap); dumpcap said: "), why[:300]


# --------------------------------------------------------------------------- papermill


def run_with_papermill(notebook: Path, parameters: dict, tmp_path: Path, monkeypatch, passes: int,
                       *, as_nobody: bool = False) -> str:
    """Execute *notebook* under papermill with *parameters*: live, or *as_nobody* as the
    user nobody in the mode nobody's notebooks pick (where this machine can become nobody
    and build the rootless namespace; live otherwise).  Check that it ran clean and that
    its self-checks passed, at least *passes* of them and none failing; return everything
    its code cells printed (for the caller's checks that the parameters were used)."""
    as_nobody = as_nobody and _can_become_nobody() is None and rootless_available()[0]
    started = time.monotonic()
    if as_nobody:
        nb = papermill_as_nobody(notebook, parameters)
        assert_ran_as_nobody(nb)
    else:
        nb = papermill_live(notebook, parameters, tmp_path, monkeypatch)
        assert_clean_run(nb, "live")
        assert_reads_plainly(nb)
    TIMES[f"papermill: {notebook.name[:2]} {parameters}{' as nobody' if as_nobody else ''}"] = (
        time.monotonic() - started)
    text = printed(nb)
    assert "FAIL" not in text, text
    assert text.count("PASS: ") >= passes, text
    assert "Self-checks: " in text and " 0 failed" in text
    return text


def papermill_live(notebook: Path, parameters: dict, tmp_path: Path, monkeypatch):
    """*notebook* executed live by papermill in this process's user; the executed notebook."""
    import papermill

    monkeypatch.setenv("TCPCHATX_CAPTURE_MODE", "live")
    monkeypatch.setenv("TCPCHATX_OUT", str(tmp_path / "out"))
    executed = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(executed), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR),
                               progress_bar=False, execution_timeout=CELL_TIMEOUT)
    return nbformat.read(executed, as_version=4)


def papermill_as_nobody(notebook: Path, parameters: dict):
    """*notebook* executed by papermill's command line as nobody (nobody_python), from a
    copy in a scratch folder of nobody's, no mode forced; the executed notebook."""
    scratch = nobody_scratch()
    try:
        source, executed = scratch / "notebooks" / notebook.name, scratch / "executed" / notebook.name
        shutil.chown(shutil.copy(notebook, source), "nobody")
        command = [*nobody_python(scratch, "papermill"), "-m", "papermill", str(source), str(executed),
                   "--parameters_yaml", json.dumps(parameters), "--cwd", str(scratch / "notebooks"),
                   "--kernel", "python3", "--no-progress-bar", "--execution-timeout", str(CELL_TIMEOUT)]
        # A session of its own, so that a run that overstays is killed whole: runuser passes
        # no SIGKILL on to papermill, and its kernel would go on beside the next test.
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as run:
            try:
                _, stderr = run.communicate(timeout=PAPERMILL_AS_NOBODY_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.communicate()
                raise AssertionError(f"papermill as nobody took over {PAPERMILL_AS_NOBODY_TIMEOUT} s") from None
        assert run.returncode == 0, stderr[-3000:]
        return nbformat.read(executed, as_version=4)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)



@live_only
@pytest.mark.parametrize("parameters", PAPERMILL_PARAMETERS,
                         ids=lambda p: f"clients={p['clients']}-nagle={p['nagle']}-{p['close_variant']}")
def test_exercise_with_papermill(parameters, tmp_path, monkeypatch):
    text = run_with_papermill(EXERCISE, parameters, tmp_path, monkeypatch, passes=4)
    # The run really used the parameters: the digest line counts one connection per client.
    assert f"{parameters['clients']} connection(s)" in text
    expected_close = "reset" if parameters["close_variant"] == "abort" else "four-way"
    assert f"({expected_close})" in text
    assert "the sequence number of each RST" in text and "the ACK of each FIN" in text


@live_only
@pytest.mark.timeout(600)  # the second set's run as nobody has PAPERMILL_AS_NOBODY_TIMEOUT
@pytest.mark.parametrize("parameters", LOSS_PARAMETERS,
                         ids=lambda p: f"delay={p['delay_ms']}-lost={p['lost']}-hold={p['hold_ms']}-broken={p['broken_for']}"
                                       f"-loss={p['loss_rate']}-sack={p['sack']}")
def test_06_with_papermill(parameters, tmp_path, monkeypatch):
    # Eleven checks; "your RTO" is skipped unless answered, the kernel's sample after the
    # resent line's ACK only where TCP_INFO was still read by then, and Wireshark's names
    # for the random losses' resends when it called none Out-Of-Order or Retransmission.
    text = run_with_papermill(LOSS, parameters, tmp_path, monkeypatch, passes=9,
                              as_nobody=parameters is not LOSS_PARAMETERS[0])
    # The stories were played with the parameters: the path's outage, the lost line, the hold.
    assert f"The path came back about {parameters['broken_for']} s after packet" in text
    hole = 1 + len("alice\n") + LINE_BYTES * (parameters["lost"] - 1)
    assert f"never reached the server. The server's ACKs that ask for seq {hole} " in text
    late = re.search(r"reached the server ([0-9.]+) ms after the packet that overtook it", text)
    held = re.search(r"its trip across the router took ([0-9.]+) ms longer than that packet's", text)
    # Held back hold_ms: never less (the relay releases no frame early); later only as
    # late as a busy machine makes the relay's loop.  How late it arrived is smaller by
    # the time alice took to send the line that overtook it (1.9 ms of a 5 ms hold, once).
    assert held and parameters["hold_ms"] - 1 <= float(held.group(1)) < parameters["hold_ms"] + 50, text
    assert late and 0 <= float(late.group(1)) <= float(held.group(1)) + 1, text
    # Section 6 lost frames at the rate asked for, with SACK or without.
    assert f"With loss_rate {parameters['loss_rate']} and SACK {'on' if parameters['sack'] else 'off'}: " in text
