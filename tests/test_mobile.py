"""Caffe2's heirs: the C++ runner with no Python, the phone runtimes' files, each against its source."""

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest

from common.config import RunConfig
from deploy import aoti
from deploy.bench import DEPLOY_TOLERANCE, SKIPPED_EXIT
from deploy.run import DeployReport, _export
from implementations import REGISTRY, Exporter
from tests.conftest import ROOT
from tests.test_deploy import trained_weights

EXPORTERS = {exporter.source: (impl, exporter) for impl in REGISTRY.values() for exporter in impl.exporters}


def installed(source):
    impl, exporter = EXPORTERS[source]
    return all(find_spec(name) is not None for name in exporter.requires)


def child(tmp_path, source, dtype="float32"):
    """The source's deploy child on trained weights, as compare.py --deploy runs it: (exit status,
    stderr, what it wrote: {"rows": [...], "skipped": [...]})."""
    impl, exporter = EXPORTERS[source]
    if not installed(source):
        pytest.skip(f"{source}: {', '.join(exporter.requires)} not all installed: pip install -e '.[{exporter.extra}]'")
    cfg, (w1, w2) = trained_weights(dtype)
    np.savez(tmp_path / "w.npz", w1=w1, w2=w2)
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", exporter.child, "--source", source, "--weights",
                           str(tmp_path / "w.npz"), "--model-dir", str(tmp_path), "--dtype", dtype, "--threads", "1",
                           "--repeats", "3", "--json", str(out)],
                          cwd=ROOT, env={**os.environ, **dict(impl.env)}, capture_output=True, text=True, timeout=600)
    given = json.loads(out.read_text()) if out.exists() else {"rows": []}
    return proc.returncode, proc.stderr, given if isinstance(given, dict) else {"rows": given, "skipped": []}


def assert_served(rows, runtimes, dtype, model_bytes):
    """Each runtime has a row at batch 1 and N, within the deploy bound of the source, with its load time
    and its file's size."""
    for runtime in runtimes:
        served = [r for r in rows if r["runtime"] == runtime]
        assert [r["batch"] for r in served] == [1, RunConfig().batch], (runtime, rows)
        for r in served:
            assert r["max_rel_err"] <= DEPLOY_TOLERANCE[dtype], r
            assert r["median_s"] > 0 and r["load_s"] > 0 and r["model_bytes"] > model_bytes, r
    sources = [r for r in rows if r["max_rel_err"] is None]
    assert sources, "the source's own rows"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_ort_format_file_is_served_as_its_source_computes_it(tmp_path, dtype):
    code, stderr, given = child(tmp_path, "ort_format", dtype)
    assert code == 0, stderr
    rows = given["rows"]
    served = [r for r in rows if r["runtime"] == "onnxruntime"]
    assert [r["model"] for r in served] == ["predict_net.ort"] * 2
    assert all(r["max_rel_err"] <= DEPLOY_TOLERANCE[dtype] and r["load_s"] > 0 for r in served), served
    # a flatbuffer, not the ONNX protobuf: ORT's format identifier sits at bytes 4-8
    assert (tmp_path / "predict_net.ort").read_bytes()[4:8] == b"ORTM"


def test_litert_runs_the_keras_model_with_and_without_xnnpack(tmp_path):
    code, stderr, given = child(tmp_path, "litert")
    assert code == 0, stderr
    assert_served(given["rows"], ["litert + XNNPACK", "litert, builtin kernels"], "float32", 400_000)


def test_litert_in_float64_is_a_skipped_row_with_its_reason(tmp_path):
    code, stderr, _ = child(tmp_path, "litert", "float64")
    assert code == SKIPPED_EXIT, stderr
    assert "FlexMatMul" in stderr.strip().splitlines()[-1]


def test_executorch_runs_the_pte_with_its_kernels_and_with_xnnpack(tmp_path):
    code, stderr, given = child(tmp_path, "pte")
    assert code == 0, stderr
    assert_served(given["rows"], ["executorch, no delegate", "executorch + XNNPACK"], "float32", 400_000)
    assert given["skipped"] == []


@pytest.mark.slow
def test_executorch_in_float64_skips_xnnpack_which_would_delegate_nothing(tmp_path):
    code, stderr, given = child(tmp_path, "pte", "float64")
    assert code == 0, stderr
    assert_served(given["rows"], ["executorch, no delegate"], "float64", 800_000)
    assert not any(r["runtime"] == "executorch + XNNPACK" for r in given["rows"])
    assert any("XNNPACK delegates no float64 op" in note for note in given["skipped"])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cpp_runner_serves_the_aoti_package_with_no_python_in_its_process(tmp_path, dtype):
    if any(aoti_tool_missing()):
        pytest.skip(f"{', '.join(aoti_tool_missing())} not on PATH: {EXPORTERS['aoti'][1].tools_hint}")
    code, stderr, given = child(tmp_path, "aoti", dtype)
    assert code == 0, stderr
    rows = given["rows"]
    assert_served(rows, [aoti.RUNTIME, "torch AOTInductor (Python)"], dtype, 400_000)
    runner = [r for r in rows if r["runtime"] == aoti.RUNTIME]
    assert all(r["runtime_bytes"] > 10 * 2**20 for r in runner), runner  # libtorch's libraries, mapped
    # a corrupt package: the runner says so in one line and exits 1; it does not crash
    (tmp_path / "bad.pt2").write_bytes(b"not a package")
    with pytest.raises(RuntimeError, match="serve_pt2: .*bad.pt2"):
        aoti.serve(tmp_path / aoti.RUNNER, tmp_path / "bad.pt2", np.zeros((1, 1000), dtype), 1, 1)


def aoti_tool_missing():
    import shutil

    return [tool for tool in EXPORTERS["aoti"][1].tools if shutil.which(tool) is None]


def test_a_runner_with_python_in_its_process_is_refused(tmp_path):
    """The no-Python check reads the runner's own list of mapped files: one with libpython is an error."""
    fake = tmp_path / "serve_pt2"
    reply = {"dims": [1, 1], "data": [0.0], "times_ms": [0.1], "load_ms": 1.0,
             "mapped": ["/usr/lib/libc.so.6", "/usr/lib/libpython3.11.so.1.0"]}
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(reply)}'\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="has Python in its process: .*libpython3.11"):
        aoti.serve(fake, tmp_path / "m.pt2", np.zeros((1, 3), np.float32), 1, 1)
    reply["mapped"] = reply["mapped"][:1]
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(reply)}'\n")
    y, times, load_s, mapped = aoti.serve(fake, tmp_path / "m.pt2", np.zeros((1, 3), np.float32), 1, 1)
    assert y.shape == (1, 1) and times == [1e-4] and load_s == 1e-3 and mapped == ["/usr/lib/libc.so.6"]


def test_a_missing_runtime_or_tool_is_a_skipped_row_that_says_how_to_install_it(tmp_path):
    owner = REGISTRY["onnx"]
    found = DeployReport("x")
    for exporter in (Exporter(source="phone", runtime="numpy", requires=("no_such_runtime_pkg",), extra="mobile",
                              child="deploy.litert"),
                     Exporter(source="cpp", runtime="numpy", requires=("numpy",), extra="torch", child="deploy.aoti",
                              tools=("no-such-compiler",), tools_hint="apt-get install no-such-compiler")):
        _export(owner, exporter, RunConfig(), tmp_path, tmp_path / "w.npz", found, 60, tmp_path)
    assert found.skipped == ["phone: skipped, no_such_runtime_pkg not installed: pip install -e '.[mobile]'",
                             "cpp: skipped, no-such-compiler not on PATH: apt-get install no-such-compiler"]
    assert found.rows == [] and found.failed == []


def test_a_child_that_skips_gives_a_skipped_note_not_a_failure(tmp_path):
    """SKIPPED_EXIT and the child's last line become a skipped note (LiteRT in float64 is one)."""
    impl, exporter = EXPORTERS["litert"]
    if not installed("litert"):
        pytest.skip("litert not installed")
    cfg, (w1, w2) = trained_weights("float64")
    np.savez(tmp_path / "w.npz", w1=w1, w2=w2)
    found = DeployReport("x")
    _export(impl, exporter, RunConfig(dtype="float64"), tmp_path, tmp_path / "w.npz", found, 300, tmp_path)
    assert found.failed == [] and found.rows == []
    assert len(found.skipped) == 1 and found.skipped[0].startswith("litert: skipped, LiteRT's builtin kernels")


def test_executorch_training_is_a_skipped_row_in_float64_with_its_reason():
    pytest.importorskip("executorch")
    from tests.conftest import train

    result = train("executorch", RunConfig(dtype="float64", steps=2), "train")
    assert (result.status, result.error) == ("skipped", REGISTRY["executorch"].float32_only)
