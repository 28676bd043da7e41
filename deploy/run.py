"""compare.py --deploy: train once, export each way the registry names, time each model in each runtime."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path

from common.config import RunConfig
from common.launch import child_env, config_flags, run_captured, run_one
from common.problem import make_serving_batch
from common.report import aligned, machine_info, markdown, write_json_atomic
from common.runner import apply_verdict
from common.timing import step_stats
from deploy import node, web
from deploy.bench import DEPLOY_TOLERANCE, SKIPPED_EXIT, DeployRow, max_rel_diff, onnx_size_bytes, source_outputs_path
from deploy.export import numpy_forward
from implementations import REGISTRY

DEPLOY_COLUMNS = ("model", "runtime", "batch", "dtype", "median us (IQR)", "samples/s", "max rel err", "match",
                  "load ms", "size KB")


@dataclass
class DeployReport:
    """What --deploy found: the table's rows, and each exporter or runtime that was skipped or failed."""

    trained: str  # the run whose weights were deployed
    rows: list[DeployRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def mismatched(self) -> list[DeployRow]:
        return [r for r in self.rows if r.max_rel_err is not None and r.max_rel_err > DEPLOY_TOLERANCE[r.dtype]]

    @property
    def exit_status(self) -> int:
        return 0 if self.rows and not self.failed and not self.mismatched else 1


def format_deploy_table(rows: list[DeployRow], as_markdown: bool = False) -> str:
    """The inference table: one row per (model, runtime, batch)."""
    body = [list(DEPLOY_COLUMNS)]
    for r in rows:
        err = r.max_rel_err
        body.append([r.model, r.runtime, str(r.batch), r.dtype, f"{r.median_s * 1e6:.1f} ({r.iqr_s * 1e6:.1f})",
                     f"{r.batch / r.median_s:,.0f}", "(source)" if err is None else f"{err:.1e}",
                     "" if err is None else ("yes" if err <= DEPLOY_TOLERANCE[r.dtype] else "NO"),
                     "" if r.load_s is None else f"{r.load_s * 1e3:.1f}",
                     "" if r.model_bytes is None else f"{r.model_bytes / 1024:,.0f}"])
    if any(r.runtime_bytes is not None for r in rows):  # a runtime outside Python: what its process mapped
        body[0].append("runtime MB")
        for row, r in zip(body[1:], rows):
            row.append("" if r.runtime_bytes is None else f"{r.runtime_bytes / 2**20:,.0f}")
    elif not any(r.load_s is not None or r.model_bytes is not None for r in rows):
        body = [row[:-2] for row in body]  # a deploy.json from before load time and size were measured
    return markdown(body) if as_markdown else "\n".join(aligned(body))


def reprint(path: Path, as_markdown: bool = False) -> int:
    """compare.py --report-from DIR/deploy.json: the table and notes of an earlier --deploy."""
    try:
        doc = json.loads(Path(path).read_text())
        found = DeployReport(doc.get("trained", "?"), [DeployRow(**row) for row in doc["rows"]],
                             doc.get("skipped", []), doc.get("failed", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"python compare.py: error: --report-from {path}: not a readable deploy.json ({exc})", file=sys.stderr)
        return 2
    machine = doc.get("machine")
    if machine:  # microseconds differ twice over between two CPUs that share the name "AMD EPYC"
        print(f"Machine: {machine['cpu']}" + (f" ({machine['cpu_model']})" if machine.get("cpu_model") else "")
              + f", {doc.get('config', {}).get('threads', '?')} threads\n")
    print(format_deploy_table(found.rows, as_markdown))
    _print_notes(found)
    return found.exit_status


def _print_notes(found: DeployReport) -> None:
    notes = found.skipped + found.failed
    if notes:
        print("\nnotes:\n" + "\n".join(f"  {n}" for n in notes))


def run_deploy(cfg: RunConfig, source: tuple, out: Path | None, timeout_s: float,
               reference: list[float]) -> DeployReport:
    """Train once with `source` (a registry entry and variant), export every way the registry
    names, time each model in each runtime; print the table and return what was found."""
    impl, variant = source
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = out / "models" if out else Path(tmp)
        model_dir.mkdir(parents=True, exist_ok=True)
        weights = model_dir / "weights.npz"
        print(f"training {impl.name}/{variant} for the weights to deploy ...", file=sys.stderr, flush=True)
        trained = apply_verdict(run_one(impl, variant, cfg, timeout_s, save_weights=weights), reference)
        if trained.status != "ok":
            print(f"deploy: training with {trained.name} did not give weights to deploy: {trained.status} "
                  f"({trained.error})")
            return DeployReport(trained.name, failed=[f"training: {trained.status}"])
        found = DeployReport(trained.name)
        for owner in REGISTRY.values():
            for exporter in owner.exporters:
                _export(owner, exporter, cfg, model_dir, weights, found, timeout_s, Path(tmp))
        _serve_with_node(cfg, model_dir, weights, found)
        _serve_in_browser(cfg, model_dir, found, timeout_s, out / "web.png" if out else None)

    print(f"\ndeploying {trained.name}'s weights; N={cfg.batch} D_in={cfg.d_in} H={cfg.hidden} D_out={cfg.d_out}, "
          f"{cfg.threads} threads; median of 200 calls after {cfg.warmup} warm-up; max rel err: max|out - source| "
          f"/ max|source| on a fresh input (bound {cfg.dtype} {DEPLOY_TOLERANCE[cfg.dtype]:g})\n")
    if found.rows:
        print(format_deploy_table(found.rows))
    _print_notes(found)
    if out is not None:
        write_json_atomic(out / "deploy.json", {"config": cfg.to_dict(), "machine": machine_info(),
                                                "trained": found.trained,
                                                "rows": [asdict(r) for r in found.rows], "skipped": found.skipped,
                                                "failed": found.failed, "notes": found.skipped + found.failed})
        print(f"wrote {out / 'deploy.json'} and the models in {out / 'models'}")
    return found


def _export(owner, exporter, cfg: RunConfig, model_dir: Path, weights: Path, found: DeployReport,
            timeout_s: float, tmp: Path) -> None:
    """One of a registry entry's exporters, in its own child (its Exporter.child, with the entry's
    environment: Keras' backend): its rows into `found`, or why there are none."""
    missing = [name for name in exporter.requires if find_spec(name) is None]
    if missing:
        found.skipped.append(f"{exporter.source}: skipped, {', '.join(missing)} not installed: "
                             f"pip install -e '.[{exporter.extra}]'")
        return
    absent = [tool for tool in exporter.tools if shutil.which(tool) is None]
    if absent:
        found.skipped.append(f"{exporter.source}: skipped, {', '.join(absent)} not on PATH: {exporter.tools_hint}")
        return
    print(f"exporting and timing {exporter.source} ...", file=sys.stderr, flush=True)
    rows_file = tmp / f"{exporter.source}.json"
    cmd = [sys.executable, "-m", exporter.child, "--source", exporter.source, "--weights", str(weights),
           "--model-dir", str(model_dir), *config_flags(cfg), "--json", str(rows_file)]
    code, _, stderr = run_captured(cmd, child_env(cfg, dict(owner.env)), timeout_s, stdout=False)
    if code == SKIPPED_EXIT:
        found.skipped.append(f"{exporter.source}: skipped, {(stderr.strip().splitlines() or ['no reason'])[-1]}")
    elif code != 0 or not rows_file.exists():
        why = (f"timed out after {timeout_s:g} s (--timeout)" if code is None
               else (stderr.strip().splitlines() or ["no output"])[-1])
        found.failed.append(f"{exporter.source}: failed: {why}")
    else:
        given = json.loads(rows_file.read_text())
        if isinstance(given, list):  # a child with nothing to skip writes its rows alone
            given = {"rows": given}
        found.rows += [DeployRow(**row) for row in given["rows"]]
        found.skipped += given.get("skipped", [])
    found.skipped += [f"{package}: skipped, {why}" for package, why in exporter.optional if find_spec(package) is None]


def _serve_with_node(cfg: RunConfig, model_dir: Path, weights: Path, found: DeployReport) -> None:
    """predict_net, as .onnx and as ONNX Runtime Mobile's .ort, served by onnxruntime-node, when Node
    and the package are here."""
    reason = node.unavailable_reason()
    if reason:
        found.skipped.append(f"onnxruntime-node: skipped, {reason}")
        return
    source_of = {row.model: row.source for row in found.rows}  # this run's exports (not a stale file of --out's)
    models = [model_dir / name for name in NODE_MODELS if name in source_of]
    if not models:
        return
    import numpy as np

    x = make_serving_batch(cfg)
    w = np.load(weights)
    forward = numpy_forward(w["w1"].astype(cfg.dtype), w["w2"].astype(cfg.dtype))
    for model in models:
        for batch in dict.fromkeys((1, cfg.batch)):
            try:
                y, times, load_s = node.serve(model, x[:batch], 1 + cfg.warmup + 200, cfg.threads)
            except RuntimeError as exc:  # one model that Node cannot load leaves the others' rows standing
                found.failed.append(f"onnxruntime-node: {model.name}: failed: {str(exc).splitlines()[-1]}")
                break
            stats = step_stats(times, cfg.warmup)
            found.rows.append(DeployRow(model=model.name, source=source_of[model.name], runtime="onnxruntime-node",
                                        batch=batch, dtype=cfg.dtype, median_s=stats.median_s, iqr_s=stats.iqr_s,
                                        max_rel_err=max_rel_diff(y, forward(x[:batch])), load_s=load_s,
                                        model_bytes=onnx_size_bytes(model)))


# what Node serves: predict_net in both of ONNX Runtime's formats (NumPy's forward is their source)
NODE_MODELS = ("predict_net.onnx", "predict_net.ort")
WEB_RUNTIME = "onnxruntime-web (chromium, wasm)"


def _serve_in_browser(cfg: RunConfig, model_dir: Path, found: DeployReport, timeout_s: float,
                      screenshot: Path | None) -> None:
    """The exported .onnx models in deploy/web's page, in headless Chromium: the run's thread count
    (multi-threaded WASM, the page cross-origin isolated) and, when that is more than one, one thread."""
    reason = web.unavailable_reason()
    if reason:
        found.skipped.append(f"{WEB_RUNTIME}: skipped, {reason}")
        return
    source_of = {row.model: row.source for row in found.rows}  # this run's exports (not a stale file of --out's)
    models = [m for m in sorted(web.models_in(model_dir)) if m.name in source_of and source_outputs_path(m).exists()]
    if not models:
        return
    import numpy as np

    print("serving the models in headless Chromium ...", file=sys.stderr, flush=True)
    try:
        pages = web.serve_in_browser(model_dir, models, make_serving_batch(cfg), (cfg.threads, 1), 200, cfg.warmup,
                                     timeout_s, screenshot)
    except Exception as exc:  # noqa: BLE001  (a browser or page failure is a failed row, not a lost table)
        found.failed.append(f"{WEB_RUNTIME}: failed: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}")
        return
    size_of = {m.name: onnx_size_bytes(m) for m in models}
    for threads, page in pages.items():
        runtime = WEB_RUNTIME if threads == cfg.threads else f"{WEB_RUNTIME[:-1]}, {threads} thread)"
        outputs = web.outputs(page, cfg.dtype)
        for m in page["models"]:
            if m.get("error"):
                found.failed.append(f"{runtime}: {m['name']}: failed: {m['error']}")
                continue
            with np.load(source_outputs_path(model_dir / m["name"])) as want:
                for b in m["batches"]:
                    stats = step_stats([t / 1e3 for t in b["times_ms"]], cfg.warmup)
                    found.rows.append(DeployRow(
                        model=m["name"], source=source_of[m["name"]],
                        runtime=runtime, batch=b["batch"], dtype=cfg.dtype, median_s=stats.median_s,
                        iqr_s=stats.iqr_s, max_rel_err=max_rel_diff(outputs[m["name"], b["batch"]],
                                                                           want[str(b["batch"])]),
                        load_s=m["load_ms"] / 1e3, model_bytes=size_of[m["name"]]))
