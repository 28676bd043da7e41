"""Caffe2's promise kept in C++: the trained torch module compiled by AOTInductor, served with no Python.

python -m deploy.aoti --source aoti --weights w.npz --model-dir models/ --json rows.json

torch.export of the `module` variant's nn.Sequential (a symbolic batch dimension), compiled ahead
of time by AOTInductor into a .pt2 package: C++ kernels built into a shared library, with the
weights. deploy/cpp/serve_pt2.cpp, built here with CMake against the libtorch inside the torch
wheel, loads the package and serves it. Its process maps no libpython (read from its own
/proc/self/maps, and checked here: a runner with Python in it is an error, not a row). The same
package loaded from Python (torch._inductor.aoti_load_package) is a row too, beside torch eager.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.launch import run_captured
from common.problem import make_serving_batch
from common.timing import step_stats
from deploy.bench import DeployRow, load_time_s, max_rel_diff, parse_child, timed_row

SOURCE = "aoti"
MODEL = "torch_module.pt2"
RUNNER = "serve_pt2"
CPP_DIR = Path(__file__).resolve().parent / "cpp"
MAX_BATCH = 4096  # the package's batch dimension is symbolic and bounded; the serving batch fits
RUNTIME = "C++ serve_pt2 (libtorch, no Python)"


def export(w1: np.ndarray, w2: np.ndarray, path: Path, threads: int):
    """The .pt2 package at `path`; returns torch eager's forward of the same module."""
    import torch

    from implementations import torch_support
    from implementations.pytorch import make_sequential

    torch_support.set_threads(threads)
    model = make_sequential(torch.tensor(w1), torch.tensor(w2)).eval()
    example = (torch.zeros(2, w1.shape[0], dtype=model[0].weight.dtype),)
    program = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("N", max=MAX_BATCH)},))
    torch._inductor.aoti_compile_and_package(program, package_path=str(path))

    def forward(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return forward


def build_runner(out: Path, timeout_s: float = 600) -> Path:
    """deploy/cpp built with CMake (Release) against the torch wheel's libtorch; the executable, copied
    to `out`. RuntimeError with the build's last line when it fails."""
    import torch

    with tempfile.TemporaryDirectory() as build:
        steps = (["cmake", "-S", str(CPP_DIR), "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                  f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"],
                 ["cmake", "--build", build, "--parallel", "2"])
        for step in steps:
            code, stdout, stderr = run_captured(step, None, timeout_s)
            if code != 0:
                lines = [line for line in (stderr + stdout).splitlines() if "error" in line.lower()] or \
                    (stderr + stdout).strip().splitlines() or ["timed out"]
                raise RuntimeError(f"building deploy/cpp failed: {lines[-1].strip()}")
        runner = out / RUNNER
        runner.write_bytes((Path(build) / RUNNER).read_bytes())
    runner.chmod(0o755)
    return runner


def serve(runner: Path, model: Path, x: np.ndarray, calls: int, threads: int):
    """The runner on x in a process of its own: (y_pred, per-call times in s, load time in s, the
    files it mapped). RuntimeError when it fails or has Python in it."""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "x.bin"
        np.ascontiguousarray(x).tofile(request)
        code, stdout, stderr = run_captured([str(runner), str(model), str(request), str(x.shape[0]),
                                             str(x.shape[1]), str(x.dtype), str(calls), str(threads)], None, 600)
    if code != 0:
        raise RuntimeError(stderr.strip().splitlines()[-1] if stderr.strip() else f"{RUNNER} exited with {code}")
    reply = json.loads(stdout)
    python = [f for f in reply["mapped"] if Path(f).name.startswith("libpython")]
    if python:
        raise RuntimeError(f"{RUNNER} has Python in its process: {python[0]}")
    y = np.array(reply["data"], dtype=x.dtype).reshape(reply["dims"])
    return y, [t / 1e3 for t in reply["times_ms"]], reply["load_ms"] / 1e3, reply["mapped"]


def mapped_bytes(files: list[str], model: Path) -> int:
    """The size on disk of what a process mapped, the model's own compiled library and deleted files aside."""
    sizes = {}
    for name in files:
        path = Path(name)
        if path.is_file() and path != model and not name.endswith("(deleted)"):
            sizes[path.resolve()] = path.stat().st_size
    return sum(sizes.values())


def rows(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int, repeats: int,
         warmup: int) -> list[DeployRow]:
    import torch

    path = model_dir / MODEL
    forward = export(w1, w2, path, threads)
    runner = build_runner(model_dir)
    size = path.stat().st_size
    in_python = torch._inductor.aoti_load_package(str(path))
    python_load_s = load_time_s(lambda: torch._inductor.aoti_load_package(str(path)))
    found = []
    for batch in dict.fromkeys((1, len(x))):
        xb = np.ascontiguousarray(x[:batch])
        want = forward(xb)
        found.append(timed_row(path, SOURCE, "torch", forward, xb, None, warmup, repeats))
        found.append(timed_row(path, SOURCE, "torch AOTInductor (Python)",
                               lambda v: in_python(torch.from_numpy(v)).numpy(), xb, want, warmup, repeats,
                               python_load_s, size))
        y, times, load_s, mapped = serve(runner, path, xb, 1 + warmup + repeats, threads)
        stats = step_stats(times, warmup)
        found.append(DeployRow(model=MODEL, source=SOURCE, runtime=RUNTIME, batch=batch, dtype=str(x.dtype),
                               median_s=stats.median_s, iqr_s=stats.iqr_s, max_rel_err=max_rel_diff(y, want),
                               load_s=load_s, model_bytes=size,
                               runtime_bytes=runner.stat().st_size + mapped_bytes(mapped, path)))
    return found


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.aoti", __doc__.splitlines()[0], argv, [SOURCE])
    found = rows(w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats, cfg.warmup)
    args.json.write_text(json.dumps([asdict(row) for row in found]))


if __name__ == "__main__":
    sys.exit(main())
