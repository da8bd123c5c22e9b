"""jobs.foundation.processes: one thread per process, a fresh one after a fork; the in-memory temp dir."""

import os
import threading

from jobs.foundation.processes import MEMORY_TMP, ProcessThread, memory_tmp_dir


def test_one_thread_per_process_and_a_fresh_one_after_a_fork():
    started = []
    release = threading.Event()

    def run() -> None:
        started.append(os.getpid())
        release.wait(10)

    owner = ProcessThread(target=run, name="test-process-thread")
    owner.ensure_started()
    owner.ensure_started()  # alive in this process: not a second one
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child inherits `owner`, not its thread
        alive_before = owner.is_alive()
        owner.ensure_started()
        os.write(writer, f"{int(alive_before)}{int(owner.is_alive())}".encode())
        release.set()
        owner.join(timeout=5)
        os._exit(0)
    os.close(writer)
    answer = os.read(reader, 2).decode()
    os.waitpid(child, 0)
    release.set()
    owner.join(timeout=5)

    assert answer == "01"  # not alive after the fork, then its own thread
    assert started.count(os.getpid()) == 1
    assert not owner.is_alive()


def test_memory_tmp_dir_is_dev_shm_only_when_writable(monkeypatch):
    if os.path.isdir(MEMORY_TMP) and os.access(MEMORY_TMP, os.W_OK):
        assert memory_tmp_dir() == MEMORY_TMP
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert memory_tmp_dir() is None
