"""lab.story: the lab network's stories in a notebook, played or opened from captures/lab/."""

from __future__ import annotations

import pytest

from tcpchatx import lab
from tcpchatx.capture import rootless_available
from tcpchatx.scenarios.lab import LAB_STORIES


@pytest.mark.parametrize("name", list(LAB_STORIES))
def test_every_story_opens_from_its_reference_captures(name, capsys):
    run = lab.story(name, mode="reference")
    assert run.mode == "reference" and run.parts
    for part in run.parts:
        views = run.views(part)
        assert set(views) == {"client", "server"} and all(path.is_file() for path in views.values())
        assert len(run.analysis("server", part).packets) > 0
    said = capsys.readouterr().out
    assert f"{name}" in said and "the client's view" in said


def test_a_reference_story_has_what_the_kernel_said():
    run = lab.story("rto", mode="reference")
    assert run.parts == [None]
    assert run.outcome["tcp_info"] and run.outcome["tcp_info"][-1]["total_retrans"] == 1
    a = run.analysis("client")
    assert [a.events(i) for i in range(len(a.packets)) if "retransmission" in a.events(i)] == [["retransmission"]]


def test_parts_are_named_and_a_wrong_one_says_which_there_are():
    run = lab.story("fast-retransmit", mode="reference")
    assert run.parts == ["sack", "no_sack"]
    with pytest.raises(ValueError, match="several runs"):
        run.views()
    with pytest.raises(ValueError, match=r"its runs are \['sack', 'no_sack'\]"):
        run.views("nosack")


def test_parameters_cannot_change_a_reference_and_it_says_so(capsys):
    lab.story("reorder", mode="reference", hold_ms=8)
    assert "made with the default parameters, not with {'hold_ms': 8}" in capsys.readouterr().out


def test_an_unknown_story_is_a_clear_error():
    with pytest.raises(ValueError, match="no lab story 'rtos'"):
        lab.story("rtos")


@pytest.mark.skipif(not rootless_available()[0], reason="needs unprivileged user namespaces")
def test_a_story_plays_into_the_notebooks_out_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCPCHATX_OUT", str(tmp_path))
    run = lab.story("reorder", mode="rootless", hold_ms=6)
    assert run.mode == "rootless" and run.requested == {"hold_ms": 6}
    assert run.views()["client"].parent == tmp_path
    assert run.outcome["relay"]["events"]["to_server"][0]["event"] == "hold data segment 3 for 6 ms"
    assert "Playing reorder across the lab's router" in capsys.readouterr().out
