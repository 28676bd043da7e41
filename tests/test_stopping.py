"""compare.py stopped any way (Ctrl-C, SIGTERM, SIGHUP), started any way (foreground, background,
nohup), and two comparisons into one --out: nothing left running, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import gone, run_cli, spawn

pytestmark = pytest.mark.slow  # compare.py stopped by each signal, and two of them at once

TINY = ("--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "20", "--lr", "1e-3",
        "--threads", "1", "--warmup", "2", "--rounds", "1")
HANG = ("-m", "tests.faulty_compare", *TINY, "--frameworks", "numpy,faulty", "--variants", "manual,hang",
        "--timeout", "600")


def hanging(tmp_path: Path, ignore: tuple = ()):
    """A comparison whose numpy row has finished and whose next run hangs; (process, helper's pid)."""
    pid_file = tmp_path / "helper.pid"
    proc = spawn(*HANG, "--out", str(tmp_path / "out"), env={**os.environ, "FAULTY_PID_FILE": str(pid_file)},
                 ignore=ignore)
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), proc.communicate(timeout=5)
    return proc, int(pid_file.read_text())


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_everything_and_keep_the_finished_runs(tmp_path, signum, code):
    proc, helper = hanging(tmp_path)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert f"stopped by {signal.Signals(signum).name}: 1 run(s) finished" in stderr and "Traceback" not in stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["framework"], r["status"]) for r in doc["runs"]] == [("numpy", "ok")]
    time.sleep(0.3)
    assert gone(helper), "the hanging run's helper outlived compare.py"


@pytest.mark.parametrize("ignored, stop, code", [(signal.SIGINT, signal.SIGTERM, 143), (signal.SIGHUP, signal.SIGINT, 130)],
                         ids=["background job", "nohup"])
def test_a_signal_compare_was_started_with_ignored_stays_ignored_and_another_still_stops_it(tmp_path, ignored, stop,
                                                                                           code):
    # `python compare.py &` starts with SIGINT ignored, nohup with SIGHUP: whoever started it asked for that
    proc, helper = hanging(tmp_path, ignore=(ignored,))
    proc.send_signal(ignored)
    time.sleep(2.0)
    assert proc.poll() is None, f"a comparison started with {signal.Signals(ignored).name} ignored acted on it"
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    time.sleep(0.3)
    assert gone(helper)


def test_an_interrupt_test_passes_when_the_suite_itself_was_started_with_sigint_ignored(tmp_path):
    # The Ctrl-C scenario of test_reliability, driven from a parent that ignores SIGINT (pytest run as
    # a background job): the child still starts with SIGINT at its default (tests.conftest.spawn)
    driver = f"""
import os, signal, sys, time
from tests.conftest import spawn
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
pid_file = {str(tmp_path / 'helper.pid')!r}
proc = spawn(*{HANG!r}, "--out", {str(tmp_path / 'out')!r}, env={{**os.environ, "FAULTY_PID_FILE": pid_file}})
while not os.path.exists(pid_file):
    time.sleep(0.1)
proc.send_signal(signal.SIGINT)
proc.communicate(timeout=60)
print(proc.returncode)
"""
    parent = spawn("-c", driver, ignore=(signal.SIGINT,))
    stdout, stderr = parent.communicate(timeout=180)
    assert stdout.strip() == "130", stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["runs"][0]["framework"] == "numpy"


def test_a_second_comparison_into_a_held_out_is_refused_naming_the_holder_and_a_rerun_says_what_it_replaces(
        tmp_path):
    proc, _ = hanging(tmp_path)
    second = run_cli("compare.py", *TINY, "--frameworks", "numpy", "--out", str(tmp_path / "out"), timeout=120)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"is held by a running comparison (pid {proc.pid}: python " in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    # the first one's finished run is still there, and the rerun says it replaces it
    assert [r["framework"] for r in json.loads((tmp_path / "out" / "results.json").read_text())["runs"]] == ["numpy"]
    assert not (tmp_path / "out" / ".running").exists()
    rerun = run_cli("compare.py", *TINY, "--frameworks", "numpy", "--out", str(tmp_path / "out"), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "replacing the earlier results (1 run(s), written" in rerun.stderr


def test_two_comparisons_started_together_into_one_out_lose_nothing_silently(tmp_path):
    out = str(tmp_path / "out")
    first = spawn("compare.py", *TINY, "--frameworks", "numpy", "--out", out)
    time.sleep(0.5)
    second = spawn("compare.py", *TINY, "--frameworks", "numpy", "--out", out)
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    # either the second was refused while the first held the folder, or it ran after the first
    # finished and said what it replaced: never two exit 0s with one result silently gone
    if codes == [0, 2]:
        assert any("is held by a running comparison" in err for _, err in results)
    else:
        assert codes == [0, 0] and any("replacing the earlier results" in err for _, err in results)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["runs"]
