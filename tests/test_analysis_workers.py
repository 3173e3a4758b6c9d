"""The analysis's chunk loops run on two threads, and give what one thread gives."""

from __future__ import annotations

import inspect
import os
import select
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from analysis_helpers import T0, C, S, Talk, merge, write_capture
from tcpchatx.analysis import analyze, packets, run, to_json, tracker, workers
from tcpchatx.analysis.chat import lines as chat_lines
from tcpchatx.analysis.chat import parsing, pipeline, reassembly

CAPTURES = sorted((Path(__file__).parent.parent / "captures").glob("*.pcapng"))


def test_results_come_back_in_the_order_of_the_items(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    first_done = threading.Event()

    def work(x):
        if x == 0:  # item 0 finishes after item 1: order by completion would fail
            assert first_done.wait(30)
        elif x == 1:
            first_done.set()
        return x * x

    assert list(workers.in_order(work, range(50))) == [x * x for x in range(50)]


def test_for_each_has_done_every_item_when_it_returns(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    done = []
    workers.for_each(done.append, range(20))
    assert sorted(done) == list(range(20))


def test_two_chunks_are_worked_on_at_the_same_time(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    both = threading.Barrier(2, timeout=30)  # broken (an error) unless two wait at once

    def work(x):
        if x < 2:
            both.wait()
        return threading.current_thread().name

    names = list(workers.in_order(work, range(4)))
    assert all(name.startswith("tcpchatx-analysis") for name in names)
    assert len(set(names[:2])) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_threads_of_its_own(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    assert list(workers.in_order(abs, [-1, -2, -3])) == [1, 2, 3]  # the parent's pool exists
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: the parent's pool threads are not here
        try:
            ok = list(workers.in_order(abs, [-4, -5, -6])) == [4, 5, 6]
            os.write(write, b"ok" if ok else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)  # a hung child writes nothing
    answer = os.read(read, 16) if ready else b"hung"
    if not ready:
        os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    os.close(read)
    assert answer == b"ok"


def test_one_thread_works_in_the_callers_own_thread(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "1")
    names = list(workers.in_order(lambda _: threading.current_thread().name, range(3)))
    assert names == [threading.current_thread().name] * 3


@pytest.mark.parametrize("threads", ["1", "2"])
def test_an_error_in_a_chunk_reaches_the_caller_after_the_chunks_before_it(monkeypatch, threads):
    monkeypatch.setenv("TCPCHATX_THREADS", threads)

    def work(x):
        if x == 3:
            raise ValueError("chunk 3 is broken")
        return x

    got = []
    with pytest.raises(ValueError, match="chunk 3 is broken"):
        for result in workers.in_order(work, range(10)):
            got.append(result)
    assert got == [0, 1, 2]


def test_a_job_beside_runs_while_the_block_runs(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    both = threading.Barrier(2, timeout=30)  # broken (an error) unless both wait at once

    def job(x):
        both.wait()
        return x + 1, threading.current_thread().name

    with workers.beside(job, 41) as future:
        both.wait()
    assert future.result() == (42, future.result()[1]) and future.result()[1] != threading.current_thread().name


def test_a_job_beside_runs_first_in_one_thread(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "1")
    ran = []
    with workers.beside(lambda: ran.append(threading.current_thread().name) or "done") as future:
        assert ran == [threading.current_thread().name]  # before the block
    assert future.result() == "done"


def test_a_connection_too_long_to_label_beside_the_chat_is_labelled_first(tmp_path, monkeypatch):
    """label() and the expert work a connection in one piece: with a very long one,
    each goes first, alone."""
    monkeypatch.setenv("TCPCHATX_THREADS", "2")
    talk = Talk()
    talk.handshake()
    for k in range(12):
        talk.send(C, b"line %d\n" % k)
        talk.send(S, b"<x> line %d\n" % k)
    path = write_capture(tmp_path / "long.pcap", talk.packets)
    calls = []

    def spy(job, *args, first=False):
        calls.append(first)
        return workers.beside(job, *args, first=first)

    monkeypatch.setattr(run, "beside", spy)
    beside_it = to_json(analyze(path))
    monkeypatch.setattr(tracker, "LABEL_RANGE", 4)  # 4 x 4 packets: the connection is longer
    first = to_json(analyze(path))
    assert calls == [False, False, True, True] and first == beside_it  # label, expert; twice


def test_an_error_beside_reaches_the_caller_and_a_failed_block_still_waits(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "2")

    def broken():
        raise ValueError("the job is broken")

    with pytest.raises(ValueError, match="the job is broken"), workers.beside(broken):
        pass
    finished = threading.Event()
    go = threading.Event()

    def slow():
        assert go.wait(30)
        finished.set()

    with pytest.raises(KeyError), workers.beside(slow):
        go.set()
        raise KeyError("the block failed")
    assert finished.is_set()  # waited for: no job left running after the block


@pytest.mark.parametrize("setting, count", [("1", 1), ("3", 3), (" 2 ", 2), ("0", 1)])
def test_the_thread_count_can_be_set(monkeypatch, setting, count):
    monkeypatch.setenv("TCPCHATX_THREADS", setting)
    assert workers.thread_count() == count


def test_a_thread_count_that_is_not_a_number_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", "two")
    with pytest.raises(ValueError, match="TCPCHATX_THREADS must be a whole number, not 'two'"):
        workers.thread_count()


def test_by_default_at_most_two_threads(monkeypatch):
    monkeypatch.delenv("TCPCHATX_THREADS", raising=False)
    assert 1 <= workers.thread_count() <= 2


def with_chunk(function, size: int):
    """``function`` called with ``chunk=size``, whatever chunk its caller passes."""
    signature = inspect.signature(function)

    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.arguments["chunk"] = size
        return function(*bound.args, **bound.kwargs)

    return call


def small_chunks(monkeypatch) -> None:
    """Chunks of a few packets, bytes and lines: many chunks even in a small capture."""
    monkeypatch.setattr(packets, "DECODE_CHUNK", 3)
    for module in (reassembly, chat_lines):  # each module that calls it
        monkeypatch.setattr(module, "gather_runs", with_chunk(reassembly.gather_runs, 40))
    for module in (pipeline, parsing):
        monkeypatch.setattr(module, "line_ids", with_chunk(chat_lines.line_ids, 2))
    monkeypatch.setattr(run, "label", with_chunk(tracker.label, 3))  # a few connections a range


def analysed_in(threads: str, path, monkeypatch):
    monkeypatch.setenv("TCPCHATX_THREADS", threads)
    return analyze(path)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_the_analysis_is_the_same_in_one_thread_and_in_two(monkeypatch, path):
    small_chunks(monkeypatch)
    one, two = (analysed_in(threads, path, monkeypatch) for threads in ("1", "2"))
    assert to_json(one) == to_json(two)
    assert one.packets.addresses == two.packets.addresses
    for name in ("src", "dst", "flags", "seq", "payload_len"):
        assert np.array_equal(getattr(one.packets, name), getattr(two.packets, name)), name


def test_addresses_are_numbered_in_order_of_first_appearance_across_chunks(tmp_path, monkeypatch):
    small_chunks(monkeypatch)
    talks = []
    for k in range(12):  # a new client address every few packets
        talk = Talk(client=(f"10.0.1.{k + 1}", 40000 + k), start=T0 + k)
        talk.handshake()
        talk.send(C, b"hi\n")
        talk.send(S, b"<x> hi\n")
        talks.append(talk)
    path = tmp_path / "many.pcap"
    write_capture(path, merge(*talks))
    a = analysed_in("2", path, monkeypatch)
    first_seen = list(dict.fromkeys(
        x for i in range(len(a)) for x in (a.packets.src[i], a.packets.dst[i])))
    assert first_seen == list(range(len(a.packets.addresses)))
    assert len(a.packets.addresses) == 13
