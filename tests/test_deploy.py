"""The deploy path: exported models pass the checker, and ONNX Runtime agrees with their source."""

import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec

import numpy as np
import pytest

from common.config import RunConfig
from common.problem import make_serving_batch
from deploy import node, web
from deploy.bench import DEPLOY_TOLERANCE, bench, max_rel_diff
from deploy.export import export_predict_net
from implementations import REGISTRY
from tests.conftest import ROOT

EXPORTERS = {exporter.source: exporter for impl in REGISTRY.values() for exporter in impl.exporters}

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install -e '.[onnx]'")
onnx = pytest.importorskip("onnx")


def trained_weights(dtype="float32", steps=50):
    from common.problem import make_problem
    from common.reference import sgd_step

    cfg = RunConfig(dtype=dtype, steps=steps)
    x, y, w1, w2 = (a.copy() for a in make_problem(cfg))
    for _ in range(steps):
        sgd_step(x, y, w1, w2, np.dtype(dtype).type(cfg.lr))
    return cfg, (w1, w2)


def installed(source):
    return all(find_spec(name) is not None for name in EXPORTERS[source].requires)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("source", ["predict_net", "torch"])
def test_exported_model_agrees_with_its_source_in_both_batch_sizes(tmp_path, source, dtype):
    if not installed(source):
        pytest.skip(f"{source} exporter not installed")
    cfg, (w1, w2) = trained_weights(dtype)
    rows = bench(source, w1, w2, make_serving_batch(cfg), tmp_path, threads=1, repeats=3, warmup=1)
    onnx_rows = [r for r in rows if r.runtime == "onnxruntime"]
    assert [r.batch for r in onnx_rows] == [1, cfg.batch]
    for row in onnx_rows:
        assert row.max_rel_err <= DEPLOY_TOLERANCE[dtype], row
        assert row.median_s > 0
    for row in rows:  # every runtime, the source's own saved format included: its load time and file size
        assert row.load_s > 0 and row.model_bytes > w1.nbytes, row
    model = onnx.load(str(tmp_path / onnx_rows[0].model))
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.slow
def test_keras_export_through_its_own_exporter(tmp_path):
    if not installed("keras"):
        pytest.skip("keras exporter (keras, tensorflow, tf2onnx) not installed")
    cfg, (w1, w2) = trained_weights()
    np.savez(tmp_path / "w.npz", w1=w1, w2=w2)
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "deploy.bench", "--source", "keras", "--weights",
                           str(tmp_path / "w.npz"), "--model-dir", str(tmp_path), "--repeats", "3", "--json", str(out)],
                          cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in json.loads(out.read_text()) if r["runtime"] == "onnxruntime"]
    assert rows and all(r["max_rel_err"] <= DEPLOY_TOLERANCE["float32"] for r in rows)
    onnx.checker.check_model(str(tmp_path / "keras_export.onnx"), full_check=True)


def test_predict_net_takes_any_batch_size(tmp_path):
    cfg, (w1, w2) = trained_weights()
    path, forward = export_predict_net(w1, w2, tmp_path, 1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 200):
        x = np.random.default_rng(batch).standard_normal((batch, cfg.d_in)).astype(np.float32)
        y = session.run(None, {"x": x})[0]
        assert y.shape == (batch, cfg.d_out) and max_rel_diff(y, forward(x)) <= DEPLOY_TOLERANCE["float32"]


@pytest.fixture(scope="module")
def node_ready():
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the Node deploy test needs Node.js and npm")
    if node.unavailable_reason():
        node.install()
    assert node.unavailable_reason() is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_node_serves_predict_net_exactly_as_python_onnx_runtime(tmp_path, node_ready, dtype):
    cfg, (w1, w2) = trained_weights(dtype)
    path, _ = export_predict_net(w1, w2, tmp_path, 1)
    x = make_serving_batch(cfg)
    python_out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    node_out, times, load_s = node.serve(path, x, repeats=3)
    assert node_out.shape == python_out.shape and len(times) == 3 and load_s > 0
    # Same ONNX Runtime kernels on the same input: bit-identical (floats survive JSON exactly).
    np.testing.assert_array_equal(node_out, python_out)


@pytest.mark.slow
def test_compare_deploy_end_to_end(cli, tmp_path):
    proc = cli("compare.py", "--deploy", "--steps", "30", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "deploy.json").read_text())
    sources = {r["source"] for r in doc["rows"]}
    assert "predict_net" in sources
    for row in doc["rows"]:
        assert row["batch"] in (1, 64) and row["median_s"] > 0
        assert row["max_rel_err"] is None or row["max_rel_err"] <= DEPLOY_TOLERANCE["float32"]
    assert (tmp_path / "models" / "predict_net.onnx").exists()
    assert "samples/s" in proc.stdout and "load ms" in proc.stdout and "size KB" in proc.stdout
    # every runtime checked against a source loads a file: its load time and that file's size
    runtimes = [row for row in doc["rows"] if row["max_rel_err"] is not None]
    assert runtimes and all(row["load_s"] > 0 and row["model_bytes"] > 0 for row in runtimes)
    # a source row loads its own saved format, or is the in-process forward that its exporter just
    # ran (jax's jitted function, torch beside its .pt2 and .pte) and then loads nothing
    for row in doc["rows"]:
        if row["max_rel_err"] is None:
            assert (row["load_s"] is None) == (row["model_bytes"] is None), row
            assert row["load_s"] is None or (row["load_s"] > 0 and row["model_bytes"] > 0), row
    if find_spec("jax") is not None:
        assert {"jax", "jax.export (fresh process)"} <= {row["runtime"] for row in doc["rows"]}
    if web.unavailable_reason() is None:  # the page in headless Chromium, at 2 threads and at 1, and its picture
        web_rows = [r for r in doc["rows"] if r["runtime"].startswith("onnxruntime-web (chromium, wasm")]
        assert {(r["model"], r["batch"]) for r in web_rows} >= {("predict_net.onnx", 1), ("predict_net.onnx", 64)}
        assert len({r["runtime"] for r in web_rows}) == (2 if RunConfig().threads > 1 else 1)
        assert (tmp_path / "web.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert any(note.startswith("onnxruntime-web (chromium, wasm): skipped") for note in doc["skipped"])


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_jax_export_is_served_in_a_fresh_process_as_the_source_computes_it(tmp_path, dtype):
    pytest.importorskip("jax")
    cfg, (w1, w2) = trained_weights(dtype)
    np.savez(tmp_path / "w.npz", w1=w1, w2=w2)
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, "-m", "deploy.jax_export", "--source", "jax", "--weights", str(tmp_path / "w.npz"),
                           "--model-dir", str(tmp_path), "--dtype", dtype, "--repeats", "3", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())
    served = [r for r in rows if r["runtime"] == "jax.export (fresh process)"]
    assert [r["batch"] for r in served] == [1, cfg.batch]
    assert all(r["max_rel_err"] <= DEPLOY_TOLERANCE[dtype] and r["load_s"] > 0 for r in served), served
    assert (tmp_path / "jax_export.stablehlo").stat().st_size > w1.nbytes


def test_the_jax_server_has_no_python_source_of_the_model_and_refuses_a_corrupt_file(tmp_path):
    import ast

    tree = ast.parse((ROOT / "deploy" / "jax_serve.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"common", "implementations", "deploy"}, imported  # only jax, NumPy, the stdlib
    pytest.importorskip("jax")
    (tmp_path / "bad.stablehlo").write_bytes(b"not a model")
    np.save(tmp_path / "x.npy", np.zeros((1, 3), np.float32))
    proc = subprocess.run([sys.executable, "-m", "deploy.jax_serve", str(tmp_path / "bad.stablehlo"),
                           str(tmp_path / "x.npy")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a serialized jax.export model" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_node_serves_the_ort_format_file_exactly_as_python_onnx_runtime(tmp_path, node_ready):
    """The .ort file converted by this onnxruntime loads in onnxruntime-node's older one (the format
    is not forward compatible, so this is checked, not assumed)."""
    from deploy.ort_format import convert

    cfg, (w1, w2) = trained_weights()
    path = convert(w1, w2, tmp_path)
    x = make_serving_batch(cfg)
    python_out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    node_out, times, load_s = node.serve(path, x, repeats=3)
    np.testing.assert_array_equal(node_out, python_out)
