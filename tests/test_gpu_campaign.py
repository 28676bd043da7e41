"""The GPU campaign (benchmarks/gpu.py), rehearsed on this machine: it must work before it meets a GPU."""

from __future__ import annotations

import json
import tarfile
from importlib.util import find_spec

import pytest

from benchmarks import gpu
from common.result import load_results
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slow  # the GPU campaign's whole rehearsal (minutes)


def _gpu_visible() -> bool:
    if find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    missing = [name for name in ("torch", "jax", "onnxruntime") if find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[all]'")
    if _gpu_visible():
        pytest.skip("a GPU is visible: the rehearsal checks what a machine without one does")
    out, packed = tmp_path_factory.mktemp("campaign"), tmp_path_factory.mktemp("packed")
    proc = run_cli("benchmarks/gpu.py", "--rehearse", "--out", str(out), "--pack-into", str(packed), timeout=1200)
    return proc, out, packed


def test_every_step_runs_and_is_recorded(rehearsal):
    proc, out, _ = rehearsal
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((out / "campaign.json").read_text())
    assert [s["step"] for s in record["steps"]] == ["precision", "compare", "sweep", "feed", "deploy"]
    assert all(s["status"] == "done" and s["command"].startswith("python ") for s in record["steps"]), record["steps"]


def test_every_gpu_row_is_a_clean_skip_and_every_cpu_row_matches(rehearsal):
    _, out, _ = rehearsal
    for step in ("compare", "sweep", "feed"):
        _, results = load_results(out / step / "results.json")
        gpu_rows = [r for r in results if r.device == "gpu"]
        cpu_rows = [r for r in results if r.device == "cpu"]
        assert gpu_rows and cpu_rows, step
        assert all(r.status == "skipped" and r.error for r in gpu_rows), [(r.framework, r.status, r.error)
                                                                          for r in gpu_rows]
        assert all(r.status == "ok" for r in cpu_rows), [(r.framework, r.variant, r.status, r.error) for r in cpu_rows]
    frameworks = {r.framework for r in load_results(out / "compare" / "results.json")[1]}
    assert frameworks == set(gpu.REHEARSAL_FRAMEWORKS.split(","))


def test_the_precision_and_deploy_checks_say_why_they_could_not_run(rehearsal):
    _, out, _ = rehearsal
    record = json.loads((out / "campaign.json").read_text())
    for framework in ("torch", "jax"):
        assert record["precision"][framework]["status"] == "skipped"
        assert "CUDA" in record["precision"][framework]["reason"] or "GPU" in record["precision"][framework]["reason"]
    # NumPy's own float32 error sets the TF32 limit: measured, so above zero and far below TF32's rounding
    assert 0 < record["precision"]["numpy_cpu_error"] < 2.0**-11 / 100
    assert record["deploy"]["status"] == "skipped" and "CUDAExecutionProvider" in record["deploy"]["reason"]
    assert record["bound"] == {"rows": [], "smallest_margin": None, "covers": False}


def test_the_pack_fits_what_a_device_machine_returns_and_unpacks_to_the_step_folders(rehearsal):
    _, out, packed = rehearsal
    files = sorted(p.name for p in packed.iterdir())
    assert files == ["campaign.json", "campaign.log", "campaign.tar.gz"]  # at most 8 files, none in folders
    assert all((packed / name).stat().st_size < 16 * 2**20 for name in files)
    with tarfile.open(packed / "campaign.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"compare/results.json", "sweep/results.json", "feed/results.json", "precision.json"} <= names


def test_a_rehearsal_is_never_reported_as_a_gpu_campaign(rehearsal):
    _, out, _ = rehearsal
    text = gpu.report(out)
    assert text.startswith("No GPU campaign is committed") and "no GPU was available" in text


def test_the_report_of_a_gpu_campaign_reads_the_rows_the_campaign_writes(rehearsal, tmp_path):
    # The rehearsal's files with its CPU rows copied as GPU rows: what the report makes of a campaign's
    # shape (the committed one's numbers come from a real GPU)
    import dataclasses

    from common.report import results_document
    from common.config import RunConfig

    _, out, _ = rehearsal
    doc, results = load_results(out / "compare" / "results.json")
    cpu = [r for r in results if r.device == "cpu"]
    twins = [dataclasses.replace(r, device="gpu") for r in cpu]
    (tmp_path / "compare").mkdir()
    (tmp_path / "compare" / "results.json").write_text(json.dumps(
        results_document(RunConfig.from_dict(doc["config"]), cpu + twins, doc["measurement"])))
    record = json.loads((out / "campaign.json").read_text())
    record.update(rehearsal=False, bound=gpu.bound_margins(tmp_path / "compare" / "results.json"))
    record["machine"]["gpu"] = "a CPU standing in"
    (tmp_path / "campaign.json").write_text(json.dumps(record))
    text = gpu.report(tmp_path)
    table = [line for line in text.splitlines() if line.startswith("| ") and "implementation" not in line]
    assert len(table) == len(cpu)
    assert all("1.00x" in line for line in table)  # the same times on both "devices"
    assert record["bound"]["covers"] and record["bound"]["smallest_margin"] > 1


def test_without_a_campaign_the_report_says_so_and_the_measurement_page_carries_it():
    text = gpu.report(ROOT / "docs" / "gpu")
    page = (ROOT / "docs" / "measurement.md").read_text()
    assert "<!-- generated: python benchmarks/gpu.py --report docs/gpu -->" in page
    if not (ROOT / "docs" / "gpu" / "campaign.json").exists():
        assert "no GPU was available for these measurements" in text


def test_a_step_that_stops_on_a_traceback_is_failed_with_its_last_line(tmp_path):
    # a traceback exits 1, as compare.py does for a mismatch: what tells them apart is the output
    step = gpu.Step("compare", 1.0, ("-c", "raise RuntimeError('no library could be timed')"),
                    tmp_path / "results.json")
    with open(tmp_path / "campaign.log", "w") as log:
        record = gpu.run_step(step, 60, log)
    assert record["status"] == "failed" and record["exit"] == 1
    assert record["error"] == "RuntimeError: no library could be timed"
    step = gpu.Step("compare", 1.0, ("-c", f"open({str(tmp_path / 'results.json')!r}, 'w'); raise SystemExit(1)"),
                    tmp_path / "results.json")
    with open(tmp_path / "campaign.log", "a") as log:
        assert gpu.run_step(step, 60, log)["status"] == "done"


def test_bad_arguments_are_one_line_errors(cli):
    proc = cli("benchmarks/gpu.py")
    assert proc.returncode == 2 and "--out is required" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("benchmarks/gpu.py", "--out", "x", "--budget", "0")
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
