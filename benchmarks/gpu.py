"""The GPU campaign: every measurement the suite makes of a GPU, in one command, within a time budget.

python benchmarks/gpu.py --out DIR                 the campaign (about 8 minutes on an H200)
python benchmarks/gpu.py --rehearse --out DIR      the same steps on a tiny problem, on any machine (a test runs it)
python benchmarks/gpu.py --report docs/gpu         the CPU-against-GPU table of a committed campaign (docs/measurement.md's)

Steps, in order, each a child process with its share of the budget (a step cut short is stopped
as Ctrl-C stops compare.py: the runs it finished are kept):
  precision  TF32 off where the frameworks set it (their flags), and shown off: a float32 matmul
             on the GPU against float64, beside NumPy's float32 error on the CPU
  compare    compare.py --device all: every framework, CPU and GPU rows at the same threads
  sweep      compare.py --sweep --device all: the size from which the GPU wins
  feed       compare.py --samples --feed resident,copy,prefetch --device all: the host-to-device copy
  deploy     predict_net.onnx served by ONNX Runtime's CUDA provider against its CPU provider
campaign.json holds each step's command, status and time, the precision check, and how far every
GPU row sits inside the float32 bound; --pack-into copies campaign.json, the log and one tarball
of the step folders to a folder (a device machine returns few files).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BUDGET_S = 480  # about 8 minutes: on a GPU machine held for 15, room for one rerun
# The rehearsal's problem: small enough that every step finishes in seconds on two cores
TINY = ("--batch", "8", "--d-in", "32", "--hidden", "16", "--d-out", "4", "--steps", "60")
REHEARSAL_FRAMEWORKS = "numpy,torch,onnx,jax"  # what the GPU machine's Python has
GPU_FRAMEWORKS = "torch,jax"  # the frameworks with a GPU path there (no TensorFlow; ORT is CPU-only there)
FEED_SAMPLES = 16000  # 250 steps of the lecture's batch
# Precision check: a K this short leaves float32's own rounding far below TF32's (10 mantissa bits)
CHECK_M, CHECK_K = 1024, 256
TF32_FACTOR = 10  # a GPU error over 10x NumPy's float32 error on the CPU is a reduced-precision matmul
STOP_GRACE_S = 20  # after Ctrl-C, how long a step may take to write what it finished


@dataclass(frozen=True)
class Step:
    name: str
    share: float  # of the budget
    argv: tuple[str, ...]  # after the interpreter
    output: Path  # what the step writes: a step that exits without it failed, whatever its exit status


def steps(out: Path, rehearse: bool, threads: int | None) -> list[Step]:
    tiny = TINY + ("--rounds", "1") if rehearse else ()
    frameworks = ("--frameworks", REHEARSAL_FRAMEWORKS) if rehearse else ()
    common = ("--device", "all", *(("--threads", str(threads)) if threads else ()))
    script = str(Path(__file__).relative_to(ROOT))
    return [
        Step("precision", 0.05, (script, "--precision-check", str(out / "precision.json")), out / "precision.json"),
        Step("compare", 0.45, ("compare.py", *common, *frameworks, *tiny, "--out", str(out / "compare")),
             out / "compare" / "results.json"),
        Step("sweep", 0.25, ("compare.py", "--sweep", *common, "--frameworks", GPU_FRAMEWORKS,
                             *(("--sweep-steps", "3") if rehearse else ()), "--out", str(out / "sweep")),
             out / "sweep" / "results.json"),
        Step("feed", 0.2, ("compare.py", *common, "--frameworks", GPU_FRAMEWORKS, "--feed", "resident,copy,prefetch",
                           *(TINY[:8] + ("--samples", "256", "--rounds", "1") if rehearse
                             else ("--samples", str(FEED_SAMPLES))), "--out", str(out / "feed")),
             out / "feed" / "results.json"),
        Step("deploy", 0.05, (script, "--ort-cuda", str(out / "deploy.json"), *(TINY[:2] if rehearse else ())),
             out / "deploy.json"),
    ]


def run_step(step: Step, limit_s: float, log) -> dict:
    """One step as a child in its own process group; past limit_s it gets SIGINT (compare.py then
    keeps the runs it finished), and SIGKILL STOP_GRACE_S later."""
    command = [sys.executable, *step.argv]
    log.write(f"\n### {step.name}: {' '.join(step.argv)} (limit {limit_s:.0f} s)\n")
    log.flush()
    begins = log.tell()
    start = time.monotonic()
    # SIGINT at its default in the step: a campaign started in the background (SIGINT ignored, which
    # its children would inherit) must still be able to cut a step short
    child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    status = "done"
    try:
        child.wait(timeout=max(limit_s, 1))
    except subprocess.TimeoutExpired:
        status = "cut short"
        os.killpg(child.pid, signal.SIGINT)
        try:
            child.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    finally:
        if child.poll() is None:  # the campaign itself was stopped: leave nothing running
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    # compare.py exits 1 when a verdict is not a match: the step ran, its rows say what failed. A
    # traceback exits 1 too, and leaves no results behind.
    record = {"step": step.name, "command": "python " + " ".join(step.argv), "status": status,
              "exit": child.returncode, "seconds": round(time.monotonic() - start, 1)}
    if status == "done" and (child.returncode not in (0, 1) or not step.output.exists()):
        record["status"] = "failed"
        with open(log.name) as text:
            text.seek(begins)
            lines = [line.strip() for line in text.read().splitlines() if line.strip()]
        record["error"] = lines[-1] if lines else f"exit {child.returncode}, no output"
    return record


def campaign(out: Path, rehearse: bool, budget_s: float, threads: int | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    plan = steps(out, rehearse, threads)
    started = time.monotonic()
    record = {"date": datetime.date.today().isoformat(), "rehearsal": rehearse, "budget_s": budget_s,
              "machine": _machine(), "steps": []}
    with open(out / "campaign.log", "w") as log:
        for i, step in enumerate(plan):
            left = budget_s - (time.monotonic() - started)
            later = sum(s.share for s in plan[i:])
            # a step's limit: its share of what is left, so that time a step does not use goes to the next
            limit = left * step.share / later if not rehearse else budget_s
            if left <= STOP_GRACE_S and not rehearse:  # a rehearsal checks every step, however long
                record["steps"].append({"step": step.name, "command": "python " + " ".join(step.argv),
                                        "status": "not run: the budget was spent", "exit": None, "seconds": 0.0})
                continue
            record["steps"].append(run_step(step, limit, log))
            done = record["steps"][-1]
            print(f"{step.name}: {done['status']} in {done['seconds']:.0f} s"
                  + (f" ({done['error']})" if "error" in done else ""), flush=True)
    record["seconds"] = round(time.monotonic() - started, 1)
    record["precision"] = _read_json(out / "precision.json")
    record["deploy"] = _read_json(out / "deploy.json")
    record["bound"] = bound_margins(out / "compare" / "results.json")
    (out / "campaign.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _machine() -> dict:
    smi = shutil.which("nvidia-smi")
    gpu = None
    if smi:
        proc = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True)
        gpu = proc.stdout.strip() or None
    return {"gpu": gpu, "cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version()}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def bound_margins(results_json: Path) -> dict | None:
    """How far each GPU row sits inside the float32 bound that the noise ensemble (measured on the CPU)
    sets: margin = 1 / (its distance in bound units), losses and final weights; `covers` when every
    GPU row that ran is inside it. A GPU that orders its sums unlike every member of the ensemble
    shows here as a margin near or under 1."""
    from common.result import SchemaError, load_results

    try:
        _, results = load_results(results_json)
    except (OSError, SchemaError, ValueError):
        return None
    rows = []
    for r in results:
        if r.device != "gpu" or r.status == "skipped":
            continue
        worst = max((v for v in (r.x_noise, r.weights_x_noise) if v is not None), default=None)
        rows.append({"run": f"{r.framework}/{r.variant}", "status": r.status, "losses_x_noise": r.x_noise,
                     "weights_x_noise": r.weights_x_noise, "margin": round(1 / worst, 2) if worst else None})
    margins = [row["margin"] for row in rows if row["margin"]]
    return {"rows": rows, "smallest_margin": min(margins, default=None),
            "covers": bool(rows) and all(row["status"] == "ok" for row in rows)}


def pack(out: Path, into: Path) -> list[Path]:
    """campaign.json, campaign.log and one tarball of the step folders, copied into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    tarball = into / "campaign.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("compare", "sweep", "feed", "precision.json", "deploy.json"):
            if (out / name).exists():
                tar.add(out / name, arcname=name)
    for name in ("campaign.json", "campaign.log"):
        shutil.copy(out / name, into / name)
    return [tarball, into / "campaign.json", into / "campaign.log"]


# --- the checks that run in children (they import the frameworks) ----------------------------

def _normalised_error(got, a, b) -> float:
    """max over entries of |got - exact| / (|a| @ |b|): the error in units of the entry's own scale."""
    import numpy as np

    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    return float(np.max(np.abs(got.astype(np.float64) - exact) / scale))


def precision_check() -> dict:
    """Per GPU framework: its TF32 flags after the suite's own device setup, and a float32 matmul's
    error on the GPU against NumPy's float32 error on the CPU (TF32 shows as ~100x it)."""
    import numpy as np

    from common.config import RunConfig

    rng = np.random.default_rng(0)
    a = rng.standard_normal((CHECK_M, CHECK_K), dtype=np.float32)
    b = rng.standard_normal((CHECK_K, CHECK_M), dtype=np.float32)
    cpu_error = _normalised_error(a @ b, a, b)
    result = {"matmul": f"{CHECK_M}x{CHECK_K} @ {CHECK_K}x{CHECK_M} float32", "numpy_cpu_error": cpu_error,
              "limit": TF32_FACTOR * cpu_error}
    gpu_cfg = RunConfig(device="gpu")
    try:
        import torch

        from implementations import torch_support

        on = torch_support.device(gpu_cfg)
        flags = {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                 "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                 "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision()}
        got = (torch.from_numpy(a).to(on) @ torch.from_numpy(b).to(on)).cpu().numpy()
        result["torch"] = _verdict(flags, _normalised_error(got, a, b), result["limit"],
                                   flags_off=not flags["torch.backends.cuda.matmul.allow_tf32"]
                                   and not flags["torch.backends.cudnn.allow_tf32"])
    except ImportError as exc:
        result["torch"] = {"status": "skipped", "reason": f"{exc.name} not installed"}
    except NotImplementedError as exc:
        result["torch"] = {"status": "skipped", "reason": str(exc)}
    try:
        import jax
        import jax.numpy as jnp

        from implementations import jax_support

        on = jax_support.device(gpu_cfg)
        precision = jax.config.jax_default_matmul_precision
        got = np.asarray(jnp.matmul(jax.device_put(a, on), jax.device_put(b, on)))
        result["jax"] = _verdict({"jax_default_matmul_precision": precision}, _normalised_error(got, a, b),
                                 result["limit"], flags_off=precision == "highest")
    except ImportError as exc:
        result["jax"] = {"status": "skipped", "reason": f"{exc.name} not installed"}
    except NotImplementedError as exc:
        result["jax"] = {"status": "skipped", "reason": str(exc)}
    return result


def _verdict(flags: dict, error: float, limit: float, flags_off: bool) -> dict:
    return {"status": "ok" if flags_off and error <= limit else "failed", "flags": flags, "gpu_error": error,
            "tf32_off": flags_off and error <= limit}


def ort_cuda(batch: int) -> dict:
    """predict_net.onnx on ONNX Runtime's CUDA provider against its CPU provider: parity with NumPy's
    forward pass and latency at batch 1 and `batch` (session.run with NumPy in and out: the copies
    to and from the GPU are part of each call, as a server pays them)."""
    import tempfile

    import numpy as np
    import onnxruntime as ort

    from common.problem import make_problem
    from common.config import RunConfig
    from common.timing import step_stats, time_calls
    from deploy.export import export_predict_net

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return {"status": "skipped", "reason": f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                                              f"(it has {', '.join(available)}); onnxruntime-gpu provides it"}
    cfg = RunConfig(batch=batch)
    problem = make_problem(cfg)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path, forward = export_predict_net(problem.w1, problem.w2, Path(folder), cfg.threads)
        for provider in ("CPUExecutionProvider", "CUDAExecutionProvider"):
            session = ort.InferenceSession(str(path), providers=[provider])
            if provider not in session.get_providers():
                rows.append({"provider": provider, "status": "skipped", "reason": "the session fell back"})
                continue
            name = session.get_inputs()[0].name
            for n in dict.fromkeys((1, batch)):
                xb = np.ascontiguousarray(problem.x[:n])
                want = forward(xb)
                got = session.run(None, {name: xb})[0]
                stats = step_stats(time_calls(lambda: session.run(None, {name: xb}), 111), 10)
                rows.append({"provider": provider, "batch": n, "status": "ok", "median_s": stats.median_s,
                             "max_rel_err": float(np.abs(got - want).max() / np.abs(want).max())})
    return {"status": "ok", "onnxruntime": ort.__version__, "rows": rows}


# --- the report docs/measurement.md shows -----------------------------------------------------------------

def report(folder: Path) -> str:
    """The committed campaign as Markdown: CPU against GPU per implementation, then what the other
    steps found; or one line saying that no campaign is committed."""
    record = _read_json(folder / "campaign.json")
    if record is None or record.get("rehearsal", True):
        return (f"No GPU campaign is committed in `{folder}`: no GPU was available for these measurements. "
                f"`{folder}/README.md` says how to run one on any machine with an NVIDIA GPU.")
    from common.report import ratio_text
    from common.result import load_results
    from common.comparison import rows_of

    doc, results = load_results(folder / "compare" / "results.json")
    rows = rows_of(results, doc.get("measurement") or {})
    cpu = {(f.framework, f.label): f for f in rows if f.device == "cpu" and f.median_s}
    gpu = {(f.framework, f.label): f for f in rows if f.device == "gpu" and f.median_s}
    bound = {row["run"]: row for row in (record.get("bound") or {}).get("rows", [])}
    lines = [f"GPU: {record['machine']['gpu']}, {record['date']}; CPU rows on the same machine's "
             f"{doc['config'].get('threads')} threads",
             "", "| implementation | CPU ms | GPU ms | GPU/CPU speedup (95% interval) | GPU check (x noise) |",
             "|---|---|---|---|---|"]
    for key, f in cpu.items():
        g = gpu.get(key)
        check = bound.get(f"{f.framework}/{f.variant}", {})
        lines.append(f"| {f.framework}/{f.label} | {f.median_s * 1e3:.3f} | "
                     + (f"{g.median_s * 1e3:.3f} | {ratio_text(f, g)} | {check.get('status', '')} "
                        f"{max(filter(None, [check.get('losses_x_noise'), check.get('weights_x_noise')]), default=0):.2f}"
                        if g else "| | no GPU row") + " |")
    skipped = sorted({f"{r.framework}: {r.error}" for r in results if r.device == "gpu" and r.status == "skipped"})
    lines += [""] + [f"- skipped on the GPU: {text}" for text in skipped]
    for name, check in (record.get("precision") or {}).items():
        if isinstance(check, dict) and "status" in check:
            lines.append(f"- TF32 check, {name}: {check['status']}"
                         + (f" (float32 matmul error {check['gpu_error']:.1e} on the GPU, limit "
                            f"{record['precision']['limit']:.1e} = {TF32_FACTOR}x NumPy's on the CPU)"
                            if "gpu_error" in check else f": {check.get('reason')}"))
    if record.get("bound"):
        lines.append(f"- float32 bound: every GPU row inside it: {record['bound']['covers']}, smallest margin "
                     f"{record['bound']['smallest_margin']}x")
    for step in record["steps"]:
        if step["status"] != "done":
            lines.append(f"- step {step['step']}: {step['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the campaign's folder")
    parser.add_argument("--rehearse", action="store_true", help="a tiny problem and CPU-machine frameworks")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for every step (default {BUDGET_S})")
    parser.add_argument("--threads", type=int, help="CPU threads of every row (default: compare.py's, every core)")
    parser.add_argument("--pack-into", type=Path, help="copy campaign.json, its log and a tarball of the rest here")
    parser.add_argument("--report", type=Path, metavar="FOLDER", help="print a committed campaign's table")
    parser.add_argument("--precision-check", type=Path, metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--ort-cuda", type=Path, metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from common.launch import stop_on_signals

    stop_on_signals()  # SIGTERM and SIGHUP stop a step as Ctrl-C does: its children go with it
    if args.precision_check:
        args.precision_check.write_text(json.dumps(precision_check(), indent=1) + "\n")
        return 0
    if args.ort_cuda:
        args.ort_cuda.write_text(json.dumps(ort_cuda(args.batch), indent=1) + "\n")
        return 0
    if args.report:
        print(report(args.report))
        return 0
    if args.out is None:
        parser.error("--out is required (or --report FOLDER)")
    if args.budget <= 0 or (args.threads is not None and args.threads < 1):
        parser.error("--budget and --threads must be > 0")
    record = campaign(args.out, args.rehearse, args.budget, args.threads)
    if args.pack_into:
        pack(args.out, args.pack_into)
    failed = [s["step"] for s in record["steps"] if s["status"] == "failed"]
    print(f"campaign: {len(record['steps']) - len(failed)} of {len(record['steps'])} steps ran in "
          f"{record['seconds']:.0f} s; {args.out / 'campaign.json'}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
