"""The tcpchatx command as a student runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import HOST
from tcpchatx.analysis import analyze
from tcpchatx.capture import LiveCapture
from tcpchatx.client import ChatClient
from tcpchatx.server import ChatServer


def tcpchatx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tcpchatx", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def chat_capture(tmp_path_factory):
    """Two clients chat, one quits, one aborts: captured live with dumpcap."""
    path = tmp_path_factory.mktemp("cli") / "chat.pcapng"
    with ChatServer(HOST, 0) as server, LiveCapture(server.port, path, backend="dumpcap"):
        alice = ChatClient.connect(HOST, server.port, "alice")
        bob = ChatClient.connect(HOST, server.port, "bob")
        alice.receive()
        alice.send("hello bob")
        assert bob.receive().text == "hello bob"
        bob.quit()
        alice.receive()
        alice.abort()
        server.timeline.wait_for(lambda e: e.kind == "left" and e.nick == "alice")
    return path


def test_help_speaks_to_students():
    result = tcpchatx("--help")
    assert result.returncode == 0
    for command in ("server", "client", "capture", "annotate"):
        assert command in result.stdout


def test_annotate_prints_connections_and_a_ladder(chat_capture):
    result = tcpchatx("annotate", str(chat_capture))
    assert result.returncode == 0, result.stderr
    assert "2 TCP connection(s)" in result.stdout
    assert "conn_state RSTO" in result.stdout  # alice aborted
    assert "conn_state SF" in result.stdout  # bob quit
    assert "'hello bob' -> bob" in result.stdout
    assert "(SYN)" in result.stdout and "(SYN-ACK)" in result.stdout


def test_annotate_all_lists_every_message_of_a_reference_capture():
    """``--all`` is format_summary(max_items=None): every message line, no hint to use it."""
    from tcpchatx.analysis import analyze, format_summary

    reference = Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng"
    result = tcpchatx("annotate", str(reference), "--all", "--max-packets", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(format_summary(analyze(reference), max_items=None) + "\n")
    assert result.stdout.count("\n  frame ") == 6 and "--all lists" not in result.stdout


def test_annotate_max_packets_0_draws_the_whole_ladder_of_a_small_capture():
    from tcpchatx.analysis import analyze, format_ladder

    reference = Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng"
    result = tcpchatx("annotate", str(reference), "--max-packets", "0")
    assert result.returncode == 0, result.stderr
    ladder = format_ladder(analyze(reference))
    assert result.stdout.endswith("\n\n" + ladder + "\n") and "more packets" not in ladder


def test_annotate_max_packets_0_on_many_clients_says_why_there_is_no_ladder(tmp_path):
    """All packets of 30 connections would be a ladder 31 lanes (1.8 kB) wide per row.

    Drawing one for the benchmark's million packets (6,646 lanes) took all 24 GiB of
    this machine; now it is one line saying why, and the summary is still printed.
    """
    from benchmarks.make_capture import build_copies, write_pcap
    from tcpchatx.analysis.text import MAX_LANES

    reference = Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng"
    blob, lengths, ticks = build_copies(reference, 10 * 96)  # ten copies of its 3 connections (96 packets)
    path = tmp_path / "class.pcap"
    write_pcap(path, blob, lengths, ticks)
    result = tcpchatx("annotate", str(path), "--max-packets", "0")
    assert result.returncode == 0, result.stderr
    assert "30 TCP connection(s)" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == (
        f"(no ladder: the 960 packets to draw go between 31 endpoints, and a ladder is "
        f"readable up to {MAX_LANES}; draw fewer packets with --max-packets, or read every "
        f"packet with --json)")
    few = tcpchatx("annotate", str(path), "--max-packets", "20")
    assert few.returncode == 0 and "(no ladder" not in few.stdout and "... 940 more packets" in few.stdout
    usage = " ".join(tcpchatx("annotate", "--help").stdout.split())  # argparse wraps lines
    assert f"a ladder is drawn when its packets go between at most {MAX_LANES} endpoints" in usage


def test_annotate_json_and_comments(chat_capture, tmp_path):
    out = tmp_path / "annotated.pcapng"
    result = tcpchatx("annotate", str(chat_capture), "--json", "--comments", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"connections", "packets", "messages"}
    assert {c["close_kind"] for c in data["connections"]} == {"reset", "three-way"} or \
        {c["close_kind"] for c in data["connections"]} == {"reset", "four-way"}
    comments = subprocess.run(
        ["tshark", "-r", str(out), "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "SYN" in comments and "hello bob" in comments
    assert len(comments.strip().splitlines()) == len(data["packets"])


def test_the_tcpchatx_command_ends_annotate_without_teardown_and_loses_nothing(capsys, tmp_path):
    """The installed command ends annotate with os._exit once its output is flushed:
    every byte must still come out, through a pipe (block-buffered), and the
    annotated copy must be whole."""
    from tcpchatx.cli import main

    command = Path(sys.executable).with_name("tcpchatx")  # pyproject's [project.scripts]
    assert command.is_file(), "pip install -e . makes the tcpchatx command"
    reference = str(Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for options in (["--all", "--max-packets", "0"], ["--json"]):
        assert main(["annotate", reference, *options]) == 0  # in process: returns
        in_process = capsys.readouterr().out
        result = subprocess.run([str(command), "annotate", reference, *options],
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert len(in_process) > 2000 and result.stdout == in_process
    copy = tmp_path / "annotated.pcapng"
    result = subprocess.run([str(command), "annotate", reference, "--comments", str(copy)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0 and f"Annotated copy: {copy}" in result.stderr
    assert len(analyze(copy).packets) == len(analyze(reference).packets)


def test_python_m_tcpchatx_inside_another_program_returns_to_it():
    """``%run -m tcpchatx annotate ...`` in a notebook runs __main__ in its kernel: it
    must end with SystemExit, as usual, not end the kernel's process.  (In a process
    of its own: were it ended, this test's own process would be.)"""
    reference = str(Path(__file__).resolve().parents[1] / "captures" / "chat.pcapng")
    program = (
        "import runpy, sys\n"
        f"sys.argv = ['tcpchatx', 'annotate', {reference!r}]\n"
        "try:\n"
        "    runpy.run_module('tcpchatx', run_name='__main__')\n"
        "except SystemExit as ended:\n"
        "    print('the program goes on after exit status', ended.code)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "connection 0:" in result.stdout
    assert result.stdout.rstrip().endswith("the program goes on after exit status 0")


@pytest.mark.parametrize("content", [b"", b"not a capture at all\n" * 10])
def test_annotate_bad_input_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    result = tcpchatx("annotate", str(bad))
    assert result.returncode == 1
    assert "not a capture" in result.stderr and "Traceback" not in result.stderr


def test_annotate_missing_file():
    result = tcpchatx("annotate", "/nonexistent.pcap")
    assert result.returncode == 1 and "no such file" in result.stderr


def test_server_port_in_use_is_a_clear_error():
    with ChatServer(HOST, 0) as server:
        result = tcpchatx("server", "--host", HOST, "--port", str(server.port))
    assert result.returncode == 1
    assert "Try another --port" in result.stderr and "Traceback" not in result.stderr


def test_server_keeps_serving_when_nobody_reads_its_output():
    """Events are printed from their own thread: a full stdout pipe (64 KiB here, never
    read) must not freeze the clients."""
    import re

    process = subprocess.Popen(
        [sys.executable, "-m", "tcpchatx", "server", "--host", HOST, "--port", "0",
         "--no-flood-control"], stdout=subprocess.PIPE, text=True,
    )
    try:
        port = None
        for _ in range(5):
            found = re.search(r":(\d+)\. Connect", process.stdout.readline())
            if found:
                port = int(found.group(1))
                break
        assert port, "no banner"
        alice = ChatClient.connect(HOST, port, "alice")
        bob = ChatClient.connect(HOST, port, "bob")
        alice.receive()
        for batch in range(30):  # ~4 events of ~80 bytes a line: far more than the pipe holds
            for n in range(100):
                alice.send(f"message {batch}:{n} " + "x" * 40)
            got = bob.receive_all(100, timeout=30)  # bob keeps up: only the pipe is stuck
            assert got[-1].text.startswith(f"message {batch}:99 ")
        alice.close()
        bob.close()
    finally:
        process.kill()
        process.wait()


def test_a_server_whose_console_goes_away_keeps_serving_and_stops_cleanly():
    """``tcpchatx server | head -1``: the pipe closes after the banner.  Clients still
    chat, and SIGTERM still stops the server with status 0 and no traceback."""
    import re
    import signal

    process = subprocess.Popen([sys.executable, "-m", "tcpchatx", "server", "--host", HOST, "--port", "0",
                                "--no-flood-control"],  # 50 lines at once, not 5 a second after 10
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)\. Connect", process.stdout.readline())[1])
        process.stdout.close()  # what head does after its line
        alice = ChatClient.connect(HOST, port, "alice")  # its events now meet a closed pipe
        bob = ChatClient.connect(HOST, port, "bob")
        alice.receive()
        for n in range(50):
            alice.send(f"still here {n}")
        assert bob.receive_all(50, timeout=10)[-1].text == "still here 49"
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_a_flood_on_the_server_console_is_summed_up_and_joins_and_leaves_still_show(tmp_path):
    """Thousands of events a second cannot be read: the console says how many of each
    kind it skipped, prints the last few, and never skips who came and went."""
    import re

    output = tmp_path / "server.txt"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tcpchatx", "server", "--host", HOST, "--port", "0",
             "--no-flood-control"], stdout=sink, stderr=subprocess.STDOUT, text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r":(\d+)\. Connect", output.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        port = int(found.group(1))
        alice = ChatClient.connect(HOST, port, "alice")
        bob = ChatClient.connect(HOST, port, "bob")
        alice.receive()
        alice.send_raw(b"".join(b"line %d\n" % n for n in range(3000)))  # one write: one flood
        assert bob.receive_all(3000, timeout=30)[-1].text == "line 2999"
        alice.close()
        deadline = time.monotonic() + 30
        while "alice left" not in (text := output.read_text()) and not re.search(r"left\s+#1 alice", text):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.05)
        bob.close()
    finally:
        process.terminate()
        process.wait(15)
    text = output.read_text()
    busy = re.findall(r"\.\.\. busy: ([\d,]+) events not shown \(([^)]*)\)", text)
    assert busy, text[-3000:]
    assert sum(int(n.replace(",", "")) for n, _ in busy) > 3000  # most of the 6,000+ line events
    assert "line-received" in busy[0][1]
    assert re.search(r"nick-set\s+#1 alice", text) and re.search(r"nick-set\s+#2 bob", text)
    assert re.search(r"left\s+#1 alice", text)
    assert len(text.splitlines()) < 1000  # not one line per event


def test_a_server_on_every_interface_says_the_address_a_classmate_types(tmp_path):
    """``--host 0.0.0.0``: the banner names this machine's LAN address (never 0.0.0.0)
    and the whole client command; a client that follows it gets in.  The banner is one
    line, never merged with the first event."""
    import ipaddress
    import re

    from tcpchatx.lan import lan_addresses

    output = tmp_path / "server.txt"
    with output.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "tcpchatx", "server", "--host", "0.0.0.0",
                                    "--port", "0"], stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while "listening" not in output.read_text():
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        banner, event = output.read_text().splitlines()[:2]
        found = re.search(r"tcpchatx client --host (\S+) --port (\d+)  \(or: nc (\S+) (\d+)\)", banner)
        assert banner.startswith("Chat server on 0.0.0.0:") and found, banner
        assert banner.endswith("Ctrl-C stops it.") and event.startswith("[") and "listening" in event
        address, port = found[1], int(found[2])
        assert (found[3], int(found[4])) == (address, port)
        assert address in lan_addresses() and not ipaddress.ip_address(address).is_loopback
        carol = ChatClient.connect(address, port, "carol")  # over the LAN address, not loopback
        assert carol.sock.getpeername()[0] == address
        carol.quit()
    finally:
        process.terminate()
        process.wait(15)


def test_annotate_json_into_a_reader_that_leaves_early(tmp_path):
    """``tcpchatx annotate big.pcap --json | head``: no traceback, exit status 0."""
    from analysis_helpers import C, Talk

    talk = Talk()
    talk.handshake()
    for i in range(400):  # ~250 KB of JSON: more than a pipe holds
        talk.send(C, b"line %d\n" % i)
    path = talk.write(tmp_path / "long.pcap")
    proc = subprocess.Popen([sys.executable, "-m", "tcpchatx", "annotate", str(path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(10) == b'{\n "format'
    proc.stdout.close()  # the reader is gone before the rest is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_annotate_into_a_reader_already_gone_still_writes_the_comments(tmp_path):
    """A short summary sits in stdout's buffer until the end; the reader is gone by then.

    Before, the BrokenPipeError came from Python's exit-time flush (a complaint and
    exit status 120), and one raised while printing skipped the --comments file."""
    import os

    reference = Path(__file__).resolve().parents[1] / "captures" / "refused.pcapng"
    out = tmp_path / "annotated.pcapng"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    proc = subprocess.Popen([sys.executable, "-m", "tcpchatx", "annotate", str(reference),
                             "--comments", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # gone before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert "BrokenPipe" not in stderr and "Exception ignored" not in stderr
    assert out.stat().st_size > 0 and "Annotated copy:" in stderr


@pytest.mark.parametrize("argv, message", [
    (["server", "--port", "70000"], "70000 is not a TCP port: use 0 (any free port) or 1-65535"),
    (["server", "--port", "-1"], "-1 is not a TCP port"),
    (["client", "--port", "70000"], "70000 is not a TCP port: use 1-65535"),
    (["client", "--port", "0"], "0 is not a TCP port: use 1-65535"),
    (["client", "--port", "http"], "'http' is not a port number"),
])
def test_a_port_out_of_range_is_a_clear_error(capsys, argv, message):
    from tcpchatx.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_server_may_ask_for_any_free_port():
    from tcpchatx.cli import build_parser

    assert build_parser().parse_args(["server", "--port", "0"]).port == 0
    assert build_parser().parse_args(["client", "--port", "65535"]).port == 65535
