"""Ctrl-C is acted on within a second, whichever thread of compare.py the kernel hands it to.

Python runs signal handlers in the main thread only. A SIGINT delivered to another thread
(NumPy's BLAS workers live in compare.py too) sets Python's flag but cannot wake a main thread
blocked in one long select(); compare.py's waits are therefore cut into short slices
(common/launch.py). These tests aim the signal at each thread in turn, and at random moments
under load, and check the exit, the results file and that no process is left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import gone, spawn

pytestmark = pytest.mark.slow  # signals aimed at threads, under load

TINY = ("--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "20", "--lr", "1e-3",
        "--threads", "2", "--warmup", "2", "--rounds", "1")
ACTED_ON_WITHIN_S = 3.0  # a slice is 0.1 s; the rest is killing the child and printing the table


def threads_of(pid: int) -> list[int]:
    """The thread ids of a process, the main thread (its pid) first."""
    tids = sorted(int(p.name) for p in Path(f"/proc/{pid}/task").iterdir())
    return sorted(tids, key=lambda tid: tid != pid)


def interrupt_thread(tid: int) -> None:
    """SIGINT to the process, handed to thread `tid`: kill(2) on a thread id delivers the signal
    to that thread whenever it can take it (as the kernel does by its own choice under load)."""
    os.kill(tid, signal.SIGINT)


def processes_with(token: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def wait_exit(proc: subprocess.Popen, within_s: float) -> tuple[int | None, float]:
    start = time.monotonic()
    try:
        proc.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, time.monotonic() - start
    return proc.returncode, time.monotonic() - start


def started_hang(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """compare.py (with the faulty implementation) in the middle of a run that never ends."""
    pid_file = tmp_path / "helper.pid"
    proc = spawn("-m", "tests.faulty_compare", *TINY, "--timeout", "600", *args,
                 env={**os.environ, "FAULTY_PID_FILE": str(pid_file)})
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), proc.communicate(timeout=5)
    return proc, pid_file


@pytest.mark.parametrize("mode", ["compare", "sweep", "deploy"])
def test_ctrl_c_reaching_a_worker_thread_of_compare_is_acted_on_at_once(tmp_path, mode):
    args = {"compare": ("--frameworks", "numpy,faulty", "--variants", "manual,hang", "--out", str(tmp_path)),
            "sweep": ("--sweep", "--sweep-steps", "3", "--lr", "1e-6", "--frameworks", "numpy,faulty",
                      "--variants", "manual,hang",
                      "--out", str(tmp_path)),
            "deploy": ("--deploy", "--deploy-from", "faulty/hang")}[mode]
    proc, pid_file = started_hang(tmp_path, *args)
    others = threads_of(proc.pid)[1:]
    assert others, "compare.py has no thread besides the main one: NumPy's BLAS should have started some"
    interrupt_thread(random.choice(others))
    code, took_s = wait_exit(proc, ACTED_ON_WITHIN_S)
    stdout, stderr = proc.communicate()
    assert code == 130, f"not acted on within {ACTED_ON_WITHIN_S} s (took {took_s:.1f} s): {stderr[-500:]}"
    assert "Traceback" not in stderr
    time.sleep(0.3)
    assert gone(int(pid_file.read_text())), "the hanging run's helper process outlived compare.py"
    if mode != "deploy":  # the finished rows, complete (it parses), the hanging run not among them
        doc = json.loads((tmp_path / "results.json").read_text())
        assert [(run["framework"], run["status"]) for run in doc["runs"]] == [("numpy", "ok")]


@pytest.fixture
def cpu_burner():
    """One busy process for the test's length: the race shows under load."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    burner.kill()
    burner.wait()


def test_thirty_interrupts_at_random_moments_and_threads_under_load(cpu_burner):
    rng = random.Random(14)
    token = f"fourways-stress-{uuid.uuid4().hex}"
    try:
        slow = _interrupt_at_random(rng, token)
        time.sleep(0.3)
        left = [pid for pid in processes_with(token) if not gone(pid)]
    finally:  # a failing run must not leave its sleepers behind either
        for pid in processes_with(token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert slow == [], f"not acted on within {ACTED_ON_WITHIN_S} s: {slow}"
    assert left == [], "a child outlived its parent's Ctrl-C"


def _interrupt_at_random(rng: random.Random, token: str) -> list[tuple]:
    """30 drivers, each sent SIGINT on a random thread at a random moment; the ones that were slow."""
    slow = []
    for i in range(30):
        mode = ("child", "group", "captured")[i % 3]
        proc = spawn("-m", "tests.interrupt_driver", mode, token)
        assert proc.stdout.readline().strip() == "waiting", proc.communicate(timeout=30)
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere in the wait: a slice or the turn between two
        tid = rng.choice(threads_of(proc.pid))
        interrupt_thread(tid)
        code, took_s = wait_exit(proc, ACTED_ON_WITHIN_S)
        if code != 130:
            slow.append((i, mode, "main" if tid == proc.pid else "other thread", code, round(took_s, 2)))
        proc.communicate()
    return slow
