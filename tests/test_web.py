"""The browser deploy: deploy/web's page in a real headless Chromium gives Python ONNX Runtime's outputs."""

import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from common.config import RunConfig
from common.problem import make_serving_batch
from deploy import web
from deploy.bench import DEPLOY_TOLERANCE, max_rel_diff
from deploy.export import export_predict_net
from tests.test_deploy import installed, trained_weights

pytestmark = pytest.mark.slow  # a headless browser

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install -e '.[onnx]'")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser_ready():
    """npm ci when only the package is missing; in CI, where .ci/run installs Chromium, a missing piece
    fails the test instead of skipping it."""
    if web.chromium() and not web.runtime_installed():
        web.install()
    reason = web.unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the browser deploy's pieces (.ci/run), yet: {reason}")
        pytest.skip(f"the browser deploy test needs a headless Chromium: {reason}")


def exported(tmp_path, dtype):
    """The trained net as predict_net.onnx, as ONNX Runtime Mobile's predict_net.ort and, where torch is
    installed, torch.onnx.export's file (its weights in external data, which the page fetches too)."""
    from deploy.ort_format import convert

    cfg, (w1, w2) = trained_weights(dtype)
    models = [export_predict_net(w1, w2, tmp_path, 1)[0], convert(w1, w2, tmp_path)]
    if installed("torch"):
        from deploy.export import export_torch

        models.append(export_torch(w1, w2, tmp_path, 1)[0])
    return cfg, models


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_page_in_headless_chromium_computes_what_python_onnx_runtime_computes(tmp_path, browser_ready, dtype):
    cfg, models = exported(tmp_path, dtype)
    x = make_serving_batch(cfg)
    shot = tmp_path / "page.png"
    pages = web.serve_in_browser(tmp_path, models, x, (2, 1), repeats=3, warmup=1, timeout_s=300, screenshot=shot)
    assert set(pages) == {1, 2}
    for threads, page in pages.items():
        # isolated, so the 2-thread page really has WASM threads and the timer its 5 us resolution
        assert page["cross_origin_isolated"] is True and page["threads"] == threads
        assert page["timer_resolution_ms"] <= 0.02
        assert [m["name"] for m in page["models"]] == [m.name for m in models]
        got = web.outputs(page, dtype)
        for model in models:
            session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
            for batch in (1, cfg.batch):
                want = session.run(None, {session.get_inputs()[0].name: x[:batch]})[0]
                assert got[model.name, batch].shape == want.shape
                assert max_rel_diff(got[model.name, batch], want) <= DEPLOY_TOLERANCE[dtype], (threads, model, batch)
        for m in page["models"]:
            assert m["load_ms"] > 0
            assert all(len(b["times_ms"]) == 1 + 1 + 3 and min(b["times_ms"]) > 0 for b in m["batches"])
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000


def test_a_corrupt_model_fails_alone_and_the_others_still_run(tmp_path, browser_ready):
    cfg, (w1, w2) = trained_weights()
    good, _ = export_predict_net(w1, w2, tmp_path, 1)
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"not an onnx model")
    pages = web.serve_in_browser(tmp_path, [bad, good], make_serving_batch(cfg), (1,), 2, 0, 300)
    corrupt, fine = pages[1]["models"]
    assert "protobuf" in corrupt["error"] and not corrupt["batches"]
    assert "error" not in fine and len(fine["batches"]) == 2


def test_the_server_sends_isolation_headers_and_serves_only_the_page_its_runtime_and_the_models(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"model bytes")
    (tmp_path / "secret.txt").write_text("not for the page")
    with web.page_server(tmp_path, {"models": []}) as url:
        with urllib.request.urlopen(url) as reply:
            assert reply.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert reply.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b"app.mjs" in reply.read()
        with urllib.request.urlopen(url + "app.mjs") as reply:  # module scripts need a JavaScript MIME type
            assert reply.headers["Content-Type"].startswith("text/javascript")
        with urllib.request.urlopen(url + "models/m.onnx") as reply:
            assert reply.read() == b"model bytes"
        with urllib.request.urlopen(url + "request.json") as reply:
            assert reply.read() == b'{"models": []}'
        for path in ("models/../../pyproject.toml", "secret.txt", "ort/package.json", "models/.hidden", "web.py"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + path)
            assert refused.value.code == 404, path
    with pytest.raises(urllib.error.URLError):  # always stopped afterwards
        urllib.request.urlopen(url, timeout=5)


def test_without_a_browser_the_reason_says_how_to_install_one(monkeypatch):
    monkeypatch.setattr(web.shutil, "which", lambda name: None)
    assert "apt-get install chromium chromium-driver" in web.unavailable_reason()


def test_deploy_web_refuses_a_folder_without_models_in_one_line(cli, tmp_path):
    proc = cli("-m", "deploy.web", "--model-dir", str(tmp_path), "--headless")
    assert proc.returncode == 2 and "no .onnx or .ort files" in proc.stderr and "Traceback" not in proc.stderr


def test_page_request_lists_the_external_data_of_torch_exports(tmp_path):
    if not installed("torch"):
        pytest.skip("torch exporter not installed")
    _, models = exported(tmp_path, "float32")
    request = web.page_request(models, np.zeros((2, 3), np.float32), (1, 2), 5, 1)
    by_name = {m["name"]: m for m in request["models"]}
    assert by_name["predict_net.onnx"]["external_data"] == []
    assert by_name["torch_export.onnx"]["external_data"] == [{"path": "torch_export.onnx.data",
                                                             "url": "models/torch_export.onnx.data"}]
    assert request["batches"] == [1, 2] and request["dtype"] == "float32" and len(request["data"]) == 6


def test_a_config_dtype_reaches_the_page():
    cfg = RunConfig(dtype="float64", batch=3, d_in=4)
    request = web.page_request([], make_serving_batch(cfg), (1, 3), 1, 0)
    assert request["dtype"] == "float64" and request["shape"] == [3, 4]
