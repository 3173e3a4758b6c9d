"""Chatting needs only colorama and prompt_toolkit: `pip install tcpchatx` is enough.

The lab's libraries are in the [analysis] extra.  Each test runs tcpchatx in a Python
where importing them fails, as on a machine that never installed them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import tomllib

from conftest import HOST
from tcpchatx.cli import ANALYSIS_LIBRARIES
from tcpchatx.client import ChatClient

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_THE_LAB = f"""
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(ANALYSIS_LIBRARIES)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
from tcpchatx.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tcpchatx_without_the_lab(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WITHOUT_THE_LAB, *args], cwd=ROOT, text=True, **popen)


def test_the_package_needs_only_the_chat_libraries_and_the_extra_has_the_rest():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in project["dependencies"]}
    assert names == {"colorama", "prompt_toolkit"}
    extra = {re.split(r"[<>=\[ ]", r)[0].lower() for r in project["optional-dependencies"]["analysis"]}
    assert extra == ANALYSIS_LIBRARIES
    assert "tcpchatx[analysis]" in project["optional-dependencies"]["lab"]


def test_server_and_client_run_without_the_lab_libraries(tmp_path):
    output = tmp_path / "server.txt"
    with output.open("w") as sink:
        server = tcpchatx_without_the_lab("server", "--host", HOST, "--port", "0",
                                          stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r":(\d+)\. Connect with", output.read_text())):
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        port = int(found[1])
        bob = ChatClient.connect(HOST, port, "bob")
        client = tcpchatx_without_the_lab("client", "--host", HOST, "--port", str(port), "--nick", "alice",
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = client.communicate("hello from a light install\n", timeout=30)
        assert client.returncode == 0, err
        said = bob.receive_until(lambda line: line.text == "hello from a light install")[-1]
        assert said.nick == "alice"
        bob.close()
    finally:
        server.terminate()
        server.wait(15)
    assert "Traceback" not in output.read_text()


def test_a_lab_command_says_what_to_install():
    capture = ROOT / "captures" / "chat.pcapng"
    command = tcpchatx_without_the_lab("annotate", str(capture), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = command.communicate(timeout=60)
    assert command.returncode == 1
    assert "Traceback" not in err
    assert 'pip install "tcpchatx[analysis]"' in err and "is not installed" in err


def test_a_chat_command_does_not_even_import_the_analysis():
    """Even with the lab installed, `tcpchatx client` and `server` leave numpy alone
    (0.1 s of every client's start)."""
    import socket

    with socket.socket() as bound_not_listening:  # the client's connect is refused at once
        bound_not_listening.bind((HOST, 0))
        port = bound_not_listening.getsockname()[1]
        probe = ("import sys; from tcpchatx.cli import main; "
                 f"code = main(['client', '--host', '{HOST}', '--port', '{port}']); "
                 "print(code, sorted(m for m in ('numpy', 'pandas', 'scapy') if m in sys.modules))")
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.split("\n")[0] == "1 []", done.stdout + done.stderr
    assert "connection refused" in done.stderr
