"""compare.py --deploy: train once, export three ways, time each model in each runtime."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from common.config import RunConfig
from common.launch import child_env, config_flags, run_one
from common.problem import make_serving_batch
from common.report import format_deploy_table, write_json_atomic
from common.runner import apply_verdict
from common.timing import step_stats
from deploy import node
from deploy.bench import DEPLOY_TOLERANCE, max_rel_diff
from deploy.export import EXPORTERS, NEEDS, numpy_forward


def run_deploy(args, cfg: RunConfig, reference: list[float]) -> int:
    """Train once with --deploy-from, export three ways, time each model in each runtime."""

    impl, variant = args.deploy_from
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.out / "models" if args.out else Path(tmp)
        model_dir.mkdir(parents=True, exist_ok=True)
        weights = model_dir / "weights.npz"
        print(f"training {impl.framework}/{variant} for the weights to deploy ...", file=sys.stderr, flush=True)
        trained = apply_verdict(run_one(impl, variant, cfg, args.timeout, ("--save-weights", str(weights))), reference)
        if trained.status != "ok":
            print(f"deploy: training with {trained.name} did not give weights to deploy: {trained.status} "
                  f"({trained.error})")
            return 1
        rows, notes = [], []
        for source in EXPORTERS:
            packages, extra = NEEDS[source]
            missing = [name for name in packages if find_spec(name) is None]
            if missing:
                notes.append(f"{source}: skipped, {', '.join(missing)} not installed: pip install -e '.[{extra}]'")
                continue
            print(f"exporting and timing {source} ...", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{source}.json"
            cmd = [sys.executable, "-m", "deploy.bench", "--source", source, "--weights", str(weights),
                   "--model-dir", str(model_dir), *config_flags(cfg), "--json", str(out)]
            proc = subprocess.run(cmd, env=child_env(cfg, {"KERAS_BACKEND": "tensorflow"}), capture_output=True,
                                  text=True, timeout=args.timeout)
            if proc.returncode != 0 or not out.exists():
                notes.append(f"{source}: failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
                continue
            rows += json.loads(out.read_text())

        reason = node.unavailable_reason()
        if reason:
            notes.append(f"onnxruntime-node: skipped, {reason}")
        elif (model_dir / "predict_net.onnx").exists():
            import numpy as np

            x = make_serving_batch(cfg)
            w = np.load(weights)
            forward = numpy_forward(w["w1"].astype(cfg.dtype), w["w2"].astype(cfg.dtype))
            for batch in dict.fromkeys((1, cfg.batch)):
                y, times = node.serve(model_dir / "predict_net.onnx", x[:batch], 1 + cfg.warmup + 200, cfg.threads)
                stats = step_stats(times, cfg.warmup)
                rows.append({"model": "predict_net.onnx", "source": "predict_net", "runtime": "onnxruntime-node",
                             "batch": batch, "dtype": cfg.dtype, "median_s": stats.median_s, "iqr_s": stats.iqr_s,
                             "max_rel_err": max_rel_diff(y, forward(x[:batch]))})

    print(f"\ndeploying {trained.name}'s weights; N={cfg.batch} D_in={cfg.d_in} H={cfg.hidden} D_out={cfg.d_out}, "
          f"{cfg.threads} threads; median of 200 calls after {cfg.warmup} warm-up; max rel err: max|out - source| "
          f"/ max|source| on a fresh input (bound {cfg.dtype} {DEPLOY_TOLERANCE[cfg.dtype]:g})\n")
    if rows:
        print(format_deploy_table(rows, DEPLOY_TOLERANCE))
    if notes:
        print("\nnotes:\n" + "\n".join(f"  {n}" for n in notes))
    if args.out is not None:
        write_json_atomic(args.out / "deploy.json", {"config": cfg.to_dict(), "rows": rows, "notes": notes})
        print(f"wrote {args.out / 'deploy.json'} and the models in {args.out / 'models'}")
    failed = any(n.split(": ", 1)[1].startswith("failed") for n in notes)
    bad = [r for r in rows if r["max_rel_err"] is not None and r["max_rel_err"] > DEPLOY_TOLERANCE[r["dtype"]]]
    return 0 if rows and not failed and not bad else 1
