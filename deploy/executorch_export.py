"""ExecuTorch: the trained torch module as the .pte file PyTorch's phone runtime loads.

python -m deploy.executorch_export --source pte --weights w.npz --model-dir models/ --json rows.json

torch.export of the `module` variant's nn.Sequential, lowered twice, as ExecuTorch's documentation
shows: to_edge(...).to_executorch() runs every op with the kernels the runtime was built with, and
to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()]) hands the graph to the XNNPACK
delegate, ExecuTorch's CPU backend on phones. executorch.runtime, the runtime's C++ core behind a
Python binding, loads each file and runs it; each output is checked against torch eager.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.problem import make_serving_batch
from deploy.bench import DeployRow, load_time_s, parse_child, timed_row

SOURCE = "pte"
MAX_BATCH = 4096  # the exported program's symbolic batch dimension is bounded; the serving batch fits
# file name -> (runtime label, delegated to XNNPACK)
PROGRAMS = {"torch_module.pte": ("executorch, no delegate", False),
            "torch_module_xnnpack.pte": ("executorch + XNNPACK", True)}


def export(w1: np.ndarray, w2: np.ndarray, model_dir: Path, threads: int):
    """Both .pte files; returns ({name: delegated ops}, torch eager's forward)."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge, to_edge_transform_and_lower

    from implementations import torch_support
    from implementations.pytorch import make_sequential

    torch_support.set_threads(threads)
    model = make_sequential(torch.tensor(w1), torch.tensor(w2)).eval()
    example = (torch.zeros(2, w1.shape[0], dtype=model[0].weight.dtype),)
    program = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("N", max=MAX_BATCH)},))
    delegated = {}
    for name, (_, xnnpack) in PROGRAMS.items():
        edge = (to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]) if xnnpack
                else to_edge(program))
        # what the delegate took: XNNPACK takes float32 matmuls, and leaves float64 ones to the kernels
        delegated[name] = sum(node.target.__name__ == "executorch_call_delegate"
                              for node in edge.exported_program().graph.nodes if node.op == "call_function"
                              and hasattr(node.target, "__name__"))
        (model_dir / name).write_bytes(edge.to_executorch().buffer)

    def forward(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return delegated, forward


def load(path: Path):
    """The program's forward method, ready to run: run(x) -> y_pred."""
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


def rows(w1: np.ndarray, w2: np.ndarray, x: np.ndarray, model_dir: Path, threads: int, repeats: int,
         warmup: int) -> tuple[list[DeployRow], list[str]]:
    delegated, forward = export(w1, w2, model_dir, threads)
    found, skipped = [], []
    for name, (runtime, xnnpack) in PROGRAMS.items():
        if xnnpack and not delegated[name]:
            skipped.append(f"{SOURCE}: {runtime}: skipped, XNNPACK delegates no {x.dtype} op of this net (it runs "
                           f"float32 and quantized kernels), so its program would be the undelegated one")
            continue
        path = model_dir / name
        load_s, size = load_time_s(lambda: load(path)), path.stat().st_size  # noqa: B023
        run = load(path)
        for batch in dict.fromkeys((1, len(x))):
            xb = np.ascontiguousarray(x[:batch])
            want = forward(xb)
            if not xnnpack:
                found.append(timed_row(path, SOURCE, "torch", forward, xb, None, warmup, repeats))
            found.append(timed_row(path, SOURCE, runtime, run, xb, want, warmup, repeats, load_s, size))
    return found, skipped


def main(argv: list[str] | None = None) -> None:
    args, cfg, w1, w2 = parse_child("python -m deploy.executorch_export", __doc__.splitlines()[0], argv, [SOURCE])
    from implementations import executorch_support

    executorch_support.set_threads(cfg.threads)  # the runtime's pool: its kernels' and XNNPACK's
    found, skipped = rows(w1, w2, make_serving_batch(cfg), args.model_dir, cfg.threads, args.repeats, cfg.warmup)
    args.json.write_text(json.dumps({"rows": [asdict(row) for row in found], "skipped": skipped}))


if __name__ == "__main__":
    sys.exit(main())
