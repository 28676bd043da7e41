"""Faults through real subprocesses: crashes, hangs, Ctrl-C, divergence, bad files; nothing lost."""

import json
import os
import signal
import time

import pytest

from common.result import SCHEMA_VERSION
from tests.conftest import spawn

TINY = ("--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "20", "--lr", "1e-3",
        "--threads", "1", "--warmup", "2", "--rounds", "1")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead, only not yet reaped
        return f.read().split(") ")[1][0] != "Z"


@pytest.mark.slow
def test_crash_segfault_kill_and_hang_become_failed_rows_and_the_rest_is_kept(cli, tmp_path):
    pid_file = tmp_path / "helper.pid"
    os.environ["FAULTY_PID_FILE"] = str(pid_file)
    try:
        proc = cli("-m", "tests.faulty_compare", *TINY, "--frameworks", "numpy,faulty",
                   "--variants", "manual,crash,segfault,killed,hang", "--timeout", "20", "--out", str(tmp_path))
    finally:
        del os.environ["FAULTY_PID_FILE"]
    assert proc.returncode == 1 and "Traceback" not in proc.stdout
    runs = {r["variant"]: r for r in json.loads((tmp_path / "results.json").read_text())["runs"]}
    assert runs["manual"]["status"] == "ok"
    assert runs["crash"]["status"] == "failed"
    assert runs["crash"]["error"] == "RuntimeError: deliberate crash inside the framework"
    assert runs["segfault"]["status"] == "failed" and "killed by signal 11 (SIGSEGV)" in runs["segfault"]["error"]
    assert runs["killed"]["status"] == "failed" and "killed by signal 9 (SIGKILL)" in runs["killed"]["error"]
    assert runs["hang"]["status"] == "failed" and runs["hang"]["error"].startswith("timed out after 20 s")
    helper = int(pid_file.read_text())
    assert not alive(helper), "the hanging run's helper process outlived it"
    assert "verdict: 4 of 5 runs did NOT match" in proc.stdout


def test_ctrl_c_keeps_a_complete_results_json_of_the_finished_runs(tmp_path):
    pid_file = tmp_path / "helper.pid"
    env = {**os.environ, "FAULTY_PID_FILE": str(pid_file)}
    proc = spawn("-m", "tests.faulty_compare", *TINY, "--frameworks", "numpy,faulty", "--variants", "manual,hang",
                 "--timeout", "600", "--out", str(tmp_path), env=env)
    deadline = time.time() + 120
    while not pid_file.exists() and time.time() < deadline:  # numpy has finished, the hang is running
        time.sleep(0.2)
    assert pid_file.exists(), proc.communicate(timeout=5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: 1 run(s) finished" in stderr and "Traceback" not in stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    assert [(r["framework"], r["status"]) for r in doc["runs"]] == [("numpy", "ok")]
    assert "numpy" in stdout  # the finished rows are still printed
    time.sleep(0.5)
    assert not alive(int(pid_file.read_text()))
    assert not list(tmp_path.glob(".results.json.*")), "a temporary file was left behind"


def test_nan_loss_is_diverged_at_its_step_never_a_match(cli, tmp_path):
    proc = cli("-m", "tests.faulty_compare", *TINY, "--frameworks", "faulty", "--variants", "nan",
               "--out", str(tmp_path))
    assert proc.returncode == 1
    (run,) = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert run["status"] == "diverged" and run["error"].startswith("diverged at step 3")
    assert run["losses"][:2] == [1.0, 0.5] and run["losses"][2] == "nan"


@pytest.mark.slow
def test_every_framework_reports_divergence_at_lr_1(cli, tmp_path):
    # The lecture's sizes diverge at step 3 with lr=1 in every implementation and in the reference.
    proc = cli("compare.py", "--steps", "10", "--lr", "1", "--rounds", "1", "--warmup", "2",
               "--variants", "manual,autograd,variables,step,train_on_batch", "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    ran = [r for r in runs if r["status"] != "skipped"]
    assert ran and all(r["status"] == "diverged" and r["error"].startswith("diverged at step") for r in ran), ran
    assert "verdict:" in proc.stdout and "diverged" in proc.stdout


@pytest.mark.parametrize("content,expected", [
    ('{"schema_version": 0, "runs": []}', "results schema version 0; this fourways reads versions 1, 2"),
    ("not json at all", "not JSON"),
    ('{"schema_version": 1}', "malformed results"),
])
def test_results_json_of_another_schema_is_refused_in_one_line(cli, tmp_path, content, expected):
    path = tmp_path / "results.json"
    path.write_text(content)
    proc = cli("compare.py", "--report-from", str(path))
    assert proc.returncode == 2 and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_report_from_reprints_an_earlier_run(cli, tmp_path):
    first = cli("compare.py", *TINY, "--frameworks", "numpy", "--out", str(tmp_path))
    assert first.returncode == 0
    again = cli("compare.py", "--report-from", str(tmp_path / "results.json"))
    assert again.returncode == 0 and "numpy" in again.stdout and "verdict: all 1 runs match" in again.stdout


@pytest.mark.parametrize("content", [b"", b"garbage, not a protobuf", None])
def test_corrupt_or_truncated_onnx_to_the_deploy_path(cli, tmp_path, content):
    pytest.importorskip("onnxruntime")
    from implementations.onnx_runtime import predict_net
    from implementations.onnx_support import save_checked
    import numpy as np

    path = tmp_path / "model.onnx"
    if content is None:  # truncated: the first half of a valid model
        save_checked(predict_net(np.ones((20, 6), np.float32), np.ones((6, 3), np.float32)), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    proc = cli("-m", "deploy.serve", str(path))
    assert proc.returncode == 2
    assert "not a valid ONNX model (corrupt or truncated?)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_missing_model_file(cli, tmp_path):
    proc = cli("-m", "deploy.serve", str(tmp_path / "absent.onnx"))
    assert proc.returncode == 2 and "absent.onnx: no such file" in proc.stderr
