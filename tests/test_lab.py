"""The notebook helpers (tcpchatx.lab): the mode and its words, runs, facts, self-checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest

from tcpchatx import lab
from tcpchatx.capture import choose_capture_mode, rootless_available
from tcpchatx.lab import mode as lab_mode
from tcpchatx.lab import printing as lab_printing
from tcpchatx.lab import socket_states
from tcpchatx.references import CAPTURES


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch, tmp_path):
    """No mode chosen yet, no self-check counted, no forced mode, new captures into a scratch
    directory; and no session left behind for the next test."""
    lab.reset_session()
    monkeypatch.delenv(lab.MODE_ENV, raising=False)
    monkeypatch.setenv(lab.OUT_ENV, str(tmp_path / "out"))
    yield
    lab.reset_session()


def no_capture_here(monkeypatch):
    monkeypatch.setattr(lab_mode, "_live_check", lambda backend: (False, "dumpcap cannot capture on lo"))
    monkeypatch.setattr(lab_mode, "rootless_available", lambda: (False, "user namespaces are off"))


live_only = pytest.mark.skipif(os.geteuid() != 0 or choose_capture_mode() != "live",
                               reason="live capture needs root (or capture rights) here")


# --------------------------------------------------------------------------- the mode


def test_env_var_forces_reference_and_says_so(monkeypatch, capsys):
    monkeypatch.setenv(lab.MODE_ENV, "reference")
    assert lab.capture_mode() == "reference"
    out = capsys.readouterr().out
    assert out.startswith("Capture mode: reference — ")
    assert "captures/" in out and "TCPCHATX_CAPTURE_MODE=reference" in out
    assert lab.current_mode() == "reference"


def test_parameter_beats_env_var(monkeypatch, capsys):
    monkeypatch.setenv(lab.MODE_ENV, "live")
    assert lab.capture_mode("reference") == "reference"
    assert "capture_mode(mode=...)" in capsys.readouterr().out


def test_unknown_mode_is_refused_naming_the_choices(monkeypatch):
    monkeypatch.setenv(lab.MODE_ENV, "wireless")
    with pytest.raises(ValueError, match="live, rootless, reference.*'wireless'.*TCPCHATX_CAPTURE_MODE"):
        lab.capture_mode()


def test_no_rights_at_all_means_reference_and_why(monkeypatch, capsys):
    no_capture_here(monkeypatch)
    assert lab.capture_mode() == "reference"
    out = capsys.readouterr().out
    assert "Capture mode: reference" in out
    assert "dumpcap cannot capture on lo" in out and "user namespaces are off" in out
    assert "docs/capture.md" in out


def test_rootless_when_only_namespaces_work(monkeypatch, capsys):
    monkeypatch.setattr(lab_mode, "_live_check", lambda backend: (False, "dumpcap: permission denied"))
    monkeypatch.setattr(lab_mode, "rootless_available", lambda: (True, "unprivileged user and network namespaces work"))
    assert lab.capture_mode() == "rootless"
    out = capsys.readouterr().out
    assert "Capture mode: rootless — " in out and "private network namespace" in out
    assert "dumpcap: permission denied" in out and "namespaces work" in out


def test_a_mode_that_cannot_work_is_refused_with_its_reason(monkeypatch, capsys):
    no_capture_here(monkeypatch)
    monkeypatch.setenv(lab.MODE_ENV, "live")
    assert lab.capture_mode() == "reference"
    out = capsys.readouterr().out
    assert "You asked for live capture (TCPCHATX_CAPTURE_MODE=live), but it cannot work here: " \
           "dumpcap cannot capture on lo." in out
    assert "Capture mode: reference" in out


def test_quiet_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv(lab.MODE_ENV, "reference")
    lab.capture_mode(quiet=True)
    assert capsys.readouterr().out == ""


def test_out_dir_never_is_the_reference_directory(monkeypatch):
    monkeypatch.setenv(lab.OUT_ENV, str(CAPTURES))
    with pytest.raises(ValueError, match="reference captures"):
        lab.out_dir()


# --------------------------------------------------------------------------- importing, the session


IMPORT_PROBE = textwrap.dedent(r"""
    import json, sys
    import matplotlib
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    shell = InteractiveShell.instance()  # as in a notebook kernel: get_ipython() finds a shell

    def figure_formats():
        return sorted(mime for mime, formatter in shell.display_formatter.formatters.items()
                      if Figure in formatter.type_printers)

    def process():
        # dict.__getitem__: reading rcParams["backend"] itself would resolve the backend
        rc = {key: repr(dict.__getitem__(matplotlib.rcParams, key)) for key in matplotlib.rcParams}
        return {"rc": rc, "figure_formats": figure_formats(), "pyplot": "matplotlib.pyplot" in sys.modules}

    before = process()
    from tcpchatx import lab
    after = process()
    session_at_import = sys.modules["tcpchatx.lab.session"]._current
    lab.capture_mode("reference", quiet=True)
    first = figure_formats()
    lab.capture_mode("reference", quiet=True)
    print(json.dumps({"before": before, "after": after, "session_at_import": repr(session_at_import),
                      "first_mode": first, "second_mode": figure_formats()}))
""")


def test_importing_the_lab_changes_nothing_until_the_mode_is_chosen(tmp_path):
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    env.pop(lab.MODE_ENV, None)
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                          env=env, cwd=tmp_path, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Importing leaves the kernel and matplotlib as they were, and makes no session (no checks).
    assert seen["after"]["figure_formats"] == seen["before"]["figure_formats"] == []
    assert seen["after"]["rc"] == seen["before"]["rc"]
    assert not seen["after"]["pyplot"]
    assert seen["session_at_import"] == "None"
    # The notebook's first call makes Figures show as PNG images, once.
    assert seen["first_mode"] == seen["second_mode"] == ["image/png"]


def test_reset_session_forgets_the_mode_and_the_checks(monkeypatch):
    monkeypatch.setenv(lab.MODE_ENV, "reference")
    lab.capture_mode(quiet=True)
    lab.check("counted", True, "once")
    assert lab.current_session().mode == "reference" and lab.check_counts()["PASS"] == 1
    lab.reset_session()
    assert lab.current_session().mode is None
    assert lab.check_counts() == {"PASS": 0, "FAIL": 0, "SKIP": 0}


# --------------------------------------------------------------------------- reference runs


def test_reference_run_returns_the_reference_analysis(capsys):
    run = lab.run("three-way", mode="reference")
    assert run.mode == "reference" and run.path == CAPTURES / "three-way.pcapng"
    played = json.loads((CAPTURES / "three-way.json").read_text())
    assert run.events == played["events"] and run.clients == played["clients"]
    assert run.port == played["server"][1]
    assert [c.close_kind for c in run.analysis.connections] == ["three-way"]
    assert run.frames(phase="teardown") == run.analysis.connections[0].close_frames
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("three-way: opening the reference capture ") and out[0].endswith(".pcapng...")
    assert "1 connection(s) (three-way)" in out[-1]


def test_reference_with_other_parameters_says_what_it_shows(capsys):
    run = lab.run("chat", mode="reference", clients=4, nagle=False)
    out = capsys.readouterr().out
    assert "NOTE" in out and "clients=4, nagle=False" in out
    assert "made with clients=3, messages=2, nagle=True" in out
    assert run.requested == {"clients": 4, "messages": 2, "nagle": False}
    assert run.params == {"clients": 3, "messages": 2, "nagle": True}
    assert len(run.analysis.connections) == 3


def test_reference_defaults_say_nothing_more(capsys):
    lab.run("chat", mode="reference", clients=3)
    assert "NOTE" not in capsys.readouterr().out


def test_unknown_scenario_and_parameter_are_refused():
    with pytest.raises(KeyError, match="choose one of"):
        lab.run("handshake", mode="reference")
    with pytest.raises(TypeError, match="takes the parameters"):
        lab.run("quit", mode="reference", clients=3)


def test_reference_socket_states_come_from_the_file(capsys):
    run = lab.run("quit", mode="reference", sample_sockets=True)
    assert isinstance(run.sockstates, pd.DataFrame) and "TIME_WAIT" in set(run.sockstates["state"])
    assert "recorded with the reference capture" in run.sockstates_source
    assert lab.time_wait_holders(run) == [f"the server (its socket :{run.port} to alice)"]
    lab.time_wait(run)
    assert "TIME_WAIT held by the server" in capsys.readouterr().out


def test_socket_states_in_the_other_shape_are_read_too():
    records = [{"local": ["127.0.0.1", 40000], "remote": ["127.0.0.1", 25000], "wall": 2.0, "state": "TIME_WAIT"},
               {"local": ["127.0.0.1", 40000], "remote": ["127.0.0.1", 25000], "wall": 1.0, "state": "ESTABLISHED"}]
    table = socket_states._sockstates_frame(records)
    assert table["state"].tolist() == ["ESTABLISHED", "TIME_WAIT"]
    assert table["local_port"].tolist() == [40000, 40000] and table["time"].tolist() == [1.0, 2.0]


def test_exercise_in_reference_mode_is_the_chat_capture(capsys):
    run = lab.run_exercise(clients=4, close_variant="abort", mode="reference")
    assert run.path == CAPTURES / "chat.pcapng"
    out = capsys.readouterr().out
    assert "clients=4, close_variant='abort'" in out and "close_variant='quit'" in out


def test_exercise_refuses_unknown_close_variants():
    with pytest.raises(ValueError, match="quit, close, abort"):
        lab.run_exercise(close_variant="slam", mode="reference")


# --------------------------------------------------------------------------- facts and tables


def test_facts_of_the_reference_captures():
    three = lab.run("three-way", mode="reference")
    data = lab.first_data(three)
    assert (data.frame, data.ack_frame) == (4, 5) and data.ack == data.seq + data.len
    fins = lab.fins(three)
    assert [f.frame for f in fins] == [9, 10] and all(f.ack == f.seq + 1 for f in fins)
    assert lab.resets(three) == []
    abort = lab.run("abort", mode="reference")
    (reset,) = lab.resets(abort)
    assert reset.seq == reset.next_seq and reset.who == "alice → server"
    assert lab.resets(lab.run("refused", mode="reference")) == []  # no connection to reset
    chat = lab.run("chat", mode="reference")
    counts = lab.byte_counts(chat)
    assert (counts.tcp_payload_bytes == counts.chat_line_bytes).all() and counts.lines.sum() > 0
    copies = lab.broadcasts(chat)
    assert len(copies) == 6 and (copies.copies == 2).all()


def test_packet_table_and_its_styled_view():
    run = lab.run("quit", mode="reference")
    table = lab.packet_table(run, phase="teardown")
    assert table.columns.tolist() == lab.PACKET_COLUMNS
    assert table["frame"].tolist() == [12, 13, 14, 15]
    assert table["who"].tolist() == ["server → alice", "alice → server", "alice → server", "server → alice"]
    styled = lab.show_packets(run, frames=[1, 2, 3], chat=True)
    html = styled.to_html()
    assert "SYN-ACK" in html and lab.PHASE_BACKGROUNDS["handshake"] in html


def test_handshake_numbers_and_options():
    run = lab.run("chat", mode="reference")
    numbers = lab.handshake_numbers(run)
    assert numbers["frame"].tolist() == [1, 2, 3]
    assert numbers["raw_ack"][1] == numbers["raw_seq"][0] + 1
    assert numbers["raw_ack"][2] == numbers["raw_seq"][1] + 1
    options = lab.options_table(run, [1, 2, 3])
    assert options["mss"][0] == 65495 and bool(options["sack_permitted"][0])
    assert pd.isna(options["mss"][2])


def test_nagle_bursts_from_the_reference():
    bursts = lab.nagle_bursts(lab.run("nagle", mode="reference")).set_index("nick")
    assert bursts.loc["bob", "segments"] == 5 and bursts.loc["alice", "segments"] < 5


def test_open_capture_reads_the_json_beside_it():
    run = lab.open_capture(lab.reference_capture("half-close"))
    assert run.mode == "reference" and run.events and run.clients[0]["nick"] == "alice"
    comments = lab.packet_comments(run.path)
    assert len(comments) == len(run.analysis) and comments[1].startswith("SYN: ")


def test_watch_outside_live_mode_runs_the_block_and_says_why(capsys):
    ran = []
    with lab.watch(lab.pick_port(), "listen", mode="reference") as seen:
        ran.append(True)
    assert ran and seen.run is None and seen.packets is None
    assert "not captured" in capsys.readouterr().out
    assert lab.show_packets(seen) is None


# --------------------------------------------------------------------------- self-checks


def test_check_prints_pass_fail_and_skip_clearly(capsys):
    lab.check("seq + len", True, "packet 5 acknowledges 92")
    lab.check("a FIN takes one", False, "packet 10 acknowledges 7")
    lab.check("a RST takes none", None, "no RST here")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["✔ PASS: seq + len", "    packet 5 acknowledges 92",
                     "✘ FAIL: a FIN takes one", "    packet 10 acknowledges 7",
                     "– SKIP: a RST takes none", "    no RST here"]
    assert lab.check_counts() == {"PASS": 1, "FAIL": 1, "SKIP": 1}
    lab.check_summary()
    assert capsys.readouterr().out == "Self-checks: 1 passed, 1 failed, 1 skipped.\n"


def test_a_check_after_a_question_keeps_its_numbers_until_answered(capsys):
    """Run All must not print the answer under its question: with no answer yet, only the
    verdict; with one, whether it agrees, then the explanation."""
    lab.check("the ACK of the first data", True, "packet 5 acknowledges 92", answer=None, expected=92)
    waiting = capsys.readouterr().out
    assert waiting.startswith("✔ PASS: the ACK of the first data\n") and "92" not in waiting
    assert "write it in the cell above" in waiting
    lab.check("the ACK of the first data", True, "packet 5 acknowledges 92", answer=92, expected=92)
    assert capsys.readouterr().out.splitlines()[1:] == ["    Your answer, 92: agrees with the capture.",
                                                        "    packet 5 acknowledges 92"]
    lab.check("the ACK of each FIN", True, "…", answer=[8, 7], expected=[8, 8])
    assert "Your answer, [8, 7]: the capture says [8, 8]." in capsys.readouterr().out
    assert lab.check_counts() == {"PASS": 3, "FAIL": 0, "SKIP": 0}  # counted, answered or not
    lab.check("typed as text", True, "…", answer="92", expected=92)
    lab.check("a tuple for a list", True, "…", answer=(8, 8), expected=[8, 8])
    lab.check("within the tolerance", True, "…", answer=1003, expected=1000, tolerance=10)
    assert capsys.readouterr().out.count("agrees with the capture") == 3
    lab.check("the ACK of each FIN", None, "no FIN here, nothing to check", answer=None, expected=None)
    assert capsys.readouterr().out.splitlines()[1] == "    no FIN here, nothing to check"  # nothing to wait for


def test_a_failed_check_explains_at_once(capsys):
    """A FAIL is about the run, not the student: what it showed is printed with no answer
    yet, so that a student (and a test's log) can see why."""
    lab.check("the ACK of the first data", False, "packet 5 acknowledges 91", answer=None, expected=91)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "✘ FAIL: the ACK of the first data"
    assert "did not show what the notebook teaches" in lines[1] and lines[2] == "    packet 5 acknowledges 91"


def test_why_reset_says_what_the_program_did_that_the_wire_cannot(capsys):
    """abort and unread-data end with the same packets; what the program did at close tells them apart."""
    abort, unread = lab.run("abort", mode="reference"), lab.run("unread-data", mode="reference")
    last = [lab.packet_table(r).iloc[-1][["flags", "len"]].tolist() for r in (abort, unread)]
    assert last[0] == last[1] == ["AR", 0]  # the wire: the same RST+ACK
    capsys.readouterr()
    lab.why_reset(abort)
    said = capsys.readouterr().out
    assert "setsockopt(SO_LINGER, on, 0 s), then close(); every byte the server had sent was read." in said
    lab.why_reset(unread)
    said = capsys.readouterr().out
    assert "called close(); 22 byte(s) the server had sent were still unread" in said and "RFC 2525" in said
    lab.why_reset(lab.run("chat", mode="reference"))
    assert "does not say what the client's program did" in capsys.readouterr().out


def test_long_lines_are_wrapped_between_words(monkeypatch):
    """A notebook breaks a too-long line wherever its edge falls ("ac" / "knowledged");
    lab.say breaks it between words, each continuation indented under its own line."""
    monkeypatch.setattr(lab_printing, "WIDTH", 40)
    text = ("Client acknowledges every byte before 92 from the server, and more words\n"
            "    an explanation, indented, that is also longer than forty characters\nshort")
    lines = lab_printing.wrapped(text).splitlines()
    assert all(len(line) <= 40 for line in lines) and lines[-1] == "short"
    assert lines[0] == "Client acknowledges every byte before 92" and lines[1].startswith("    from")
    explanation = lines.index("    an explanation, indented, that is")
    assert lines[explanation + 1].startswith("        also")
    words = [word for line in lines for word in line.split()]
    assert words == text.split()  # nothing cut inside a word, nothing lost
    assert lab_printing.wrapped("a " + "x" * 60) == "a\n    " + "x" * 60  # a word longer than a line stays whole


# --------------------------------------------------------------------------- tables


def test_tables_read_plainly():
    """A table as the notebooks show it: no index, text left-aligned, "—" for a missing
    value, history fixed-width, an HTML id of its own, and a legend of the codes the
    first time they appear."""
    import pandas as pd

    from tcpchatx.lab.display import table_html, table_text

    df = pd.DataFrame({"frame": [1, 2, 3], "flags": ["S", "SA", "AF"], "conn_state": ["SF", "SF", None],
                       "history": ["ShADadfF", "ShAdDaFf", None], "rtt_ms": [0.1, float("nan"), 2.0]})
    shown = table_html(df.style)
    assert "row_heading" not in shown and "blank level0" not in shown
    assert "NaN" not in shown and "None" not in shown and shown.count(">—<") == 3
    assert "text-align: left" in shown and "monospace" in shown
    assert "<b>flags</b>" in shown and "<code>F</code> FIN" in shown
    assert "<code>SF</code> Normal establishment and termination." in shown
    assert "<code>D</code>/<code>d</code> packet with payload" in shown
    again = table_html(df.style)
    assert "<b>flags</b>" not in again and "<b>history</b>" not in again  # explained once per notebook
    assert again.replace("lab2", "lab1").split("<p")[0] == shown.split("<p")[0]  # the same, but its own id
    assert table_text(df).splitlines()[0].split() == ["frame", "flags", "conn_state", "history", "rtt_ms"]
    assert "—" in table_text(df)
    grouped = df.set_index("frame")  # a meaningful index is kept, as a column
    assert ">frame</th>" in table_html(grouped.style)
    long = pd.DataFrame({"n": range(100)})
    assert "The first 50 of 100 rows" in table_html(long.style) and ">49<" in table_html(long.style)
    assert ">50<" not in table_html(long.style)
    assert table_text(long).splitlines()[-2:] == ["49", "The first 50 of 100 rows; the DataFrame holds them all."]
    assert table_html(df.style).split("<style")[1][:40] != table_html(df.style).split("<style")[1][:40]


def test_tables_escape_text_and_survive_odd_shapes():
    """A chat line's <alice> is shown, not taken for a tag (a Styler does not escape by
    default); an empty table, a repeated index, a column that is also the index and
    repeated column names are all shown, not a traceback."""
    from tcpchatx.lab.display import table_html, table_text

    chat = pd.DataFrame({"frame": [33], "chat": ["<alice> message 1 <script>x</script>"]})
    assert "&lt;alice&gt; message 1 &lt;script&gt;" in table_html(chat.style) and "<alice>" not in table_html(chat.style)
    empty = pd.DataFrame({"frame": pd.Series([], dtype=int), "step": pd.Series([], dtype=object)})
    assert "frame" in table_text(empty) and "<table" in table_html(empty.style)
    twice = pd.concat([chat, chat])  # index 0, 0
    assert table_html(twice.style).count("&lt;alice&gt;") == 2 and len(table_text(twice).splitlines()) == 3
    kept = chat.set_index("frame", drop=False)  # "frame" as index and as column
    assert table_html(kept.style).count(">frame</th>") == 2 and "33" in table_text(kept)
    same_names = pd.DataFrame([[1, "<a>"]], columns=["x", "x"])
    assert "&lt;a&gt;" in table_html(same_names.style) and "<a>" in table_text(same_names)


# --------------------------------------------------------------------------- capturing


@live_only
def test_live_run_writes_into_the_output_directory_only(tmp_path, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in CAPTURES.iterdir()}
    run = lab.run("refused", mode="live")
    assert run.path == tmp_path / "out" / "refused.pcapng" and run.mode == "live"
    assert [c.close_kind for c in run.analysis.connections] == ["refused"]
    assert {p.name: p.stat().st_mtime_ns for p in CAPTURES.iterdir()} == before
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "refused: playing and capturing live on loopback..."
    assert out[1].startswith("refused: analysing ") and out[2].startswith("refused: 2 packets")


@live_only
def test_live_sampling_leaves_no_thread_behind():
    run = lab.run("quit", mode="live", sample_sockets=True)
    assert lab.time_wait_holders(run) == [f"the server (its socket :{run.port} to alice)"]
    assert not [t for t in threading.enumerate() if t.name in ("sockstate-sampler", "dumpcap-stderr")
                or t.name.startswith("chat-")]


@live_only
def test_watch_sees_the_handshake_before_accept(capsys):
    port = lab.pick_port()
    listener = socket.socket()
    with lab.watch(port, "listen", mode="live") as listening:
        listener.bind(("127.0.0.1", port))
        listener.listen()
    client = socket.socket()
    with lab.watch(port, "connect", mode="live") as connecting:
        client.connect(("127.0.0.1", port))
    with lab.watch(port, "accept", mode="live") as accepting:
        server_side, _ = listener.accept()
    for sock in (client, server_side, listener):
        sock.close()
    assert (listening.packets, connecting.packets, accepting.packets) == (0, 3, 0)
    assert connecting.run.packets["step"].tolist() == ["SYN", "SYN-ACK", "ACK (handshake)"]
    assert "connect: 3 packet(s) on the wire: SYN, SYN-ACK, ACK (handshake)." in capsys.readouterr().out


rootless_only = pytest.mark.skipif(not rootless_available()[0], reason="no user namespaces here")


@rootless_only
def test_watch_in_rootless_mode_captures_the_sockets_it_makes(capsys):
    """Each block's sockets come from the session's namespace, so the listener of one block
    accepts the client of the next, and each block's capture shows what it sent."""
    lab.capture_mode("rootless", quiet=True)
    port = lab.pick_port()
    with lab.watch(port, "listen") as listening:
        listener = listening.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen()
    with lab.watch(port, "connect") as connecting:
        client = connecting.socket()
        client.connect(("127.0.0.1", port))
    with lab.watch(port, "accept") as accepting:
        server_side, _ = listener.accept()
    with lab.watch(port, "talk") as talking:
        client.sendall(b"hello\n")
        assert server_side.recv(1024) == b"hello\n"
    for sock in (client, server_side, listener):
        sock.close()
    session = lab.current_session()
    assert {w.namespace for w in (listening, connecting, accepting, talking)} == {session.sockets}
    assert (listening.packets, connecting.packets, accepting.packets) == (0, 3, 0)
    assert connecting.run.mode == "rootless" and connecting.run.port == port
    assert connecting.run.packets["step"].tolist() == ["SYN", "SYN-ACK", "ACK (handshake)"]
    assert talking.run.packets["len"].tolist()[0] == len(b"hello\n")
    out = capsys.readouterr().out
    assert "connect: 3 packet(s) on the wire: SYN, SYN-ACK, ACK (handshake)." in out
    assert "listen: 0 packet(s) on the wire." in out and "accept: 0 packet(s) on the wire." in out
    assert lab.handshake_run(connecting) is connecting.run
    with socket.socket() as outsider, pytest.raises(ConnectionRefusedError):
        outsider.connect(("127.0.0.1", port))  # nothing listens out here: no leak either way
    factory = session.sockets
    lab.reset_session()  # ends the namespace's child with the session
    assert not factory.running


@rootless_only
def test_watch_in_rootless_mode_says_plain_sockets_are_not_captured(capsys):
    lab.capture_mode("rootless", quiet=True)
    port = lab.pick_port()
    with lab.watch(port, "plain") as seen:
        listener = socket.socket()  # made out here, where the namespace's capture cannot see
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)):
            pass
    listener.close()
    assert seen.run is None
    assert "plain: done, but not captured: in rootless mode only the sockets made with w.socket()" \
        in capsys.readouterr().out


def test_watch_socket_is_a_plain_socket_outside_rootless_mode():
    with lab.watch(lab.pick_port(mode="reference"), "plain", mode="reference") as seen:
        with seen.socket() as made:
            assert (made.family, made.type) == (socket.AF_INET, socket.SOCK_STREAM)
        with seen.socket(socket.AF_INET6, socket.SOCK_DGRAM) as made:
            assert (made.family, made.type) == (socket.AF_INET6, socket.SOCK_DGRAM)
    assert seen.namespace is None and lab.current_session().sockets is None  # no namespace started


@live_only
@pytest.mark.parametrize("variant", ["abort", "close"])
def test_exercise_close_variants(variant):
    run = lab.run_exercise(clients=3, messages=1, close_variant=variant, mode="live")
    kinds = {c.close_kind for c in run.analysis.connections}
    assert kinds == {"reset"} if variant == "abort" else kinds <= {"three-way", "four-way"}
    assert all(c.active_closer == "originator" for c in run.analysis.connections)
    counts = lab.byte_counts(run)
    assert (counts.tcp_payload_bytes == counts.chat_line_bytes).all()


@pytest.mark.skipif(not rootless_available()[0], reason="no user namespaces here")
def test_rootless_sampling_happens_inside_the_namespace():
    run = lab.run("client-close", mode="rootless", sample_sockets=True)
    assert run.mode == "rootless" and "inside the namespace" in run.sockstates_source
    assert lab.time_wait_holders(run) == [f"the client (alice's socket :{run.clients[0]['address'][1]})"]
