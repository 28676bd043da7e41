"""The two-layer net trained data-parallel by JAX across processes: one global array, sharded.

W processes, joined by jax.distributed.initialize (a coordinator on 127.0.0.1, gloo collectives
on the CPU), form one mesh of W CPU devices. The batch is one global array sharded by rows, each
process holding its own N/W rows; the weights are replicated. The step is jax_transforms' grad
step on the global arrays: the loss is the sum over every row, so XLA's partitioner inserts the
all-reduce that sums the workers' gradients, as the lecture's full-batch gradient is that sum.

Run alone, one process:  python -m implementations.jax_distributed
compare.py --workers W launches W processes, each told the coordinator, W and its own id.
"""

from __future__ import annotations

import os
import time

from implementations import jax_x64  # noqa: F401  (float64's switch, before jax is imported)

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from common import data
from common.config import RunConfig
from common.problem import Problem, Start
from common.timing import Trainer, median
from implementations import jax_support
from implementations.jax_transforms import grad_step

COMM_REPEATS = 20


# --- the network and loss: jax_transforms' grad step, on global arrays -------------------------

# --- the step of each variant -----------------------------------------------------------------

def build_sharded(cfg: RunConfig, start: Start) -> Trainer:
    replicated = start.w1.sharding
    step_fn = jax.jit(grad_step, donate_argnums=(2, 3), out_shardings=(replicated, replicated, replicated))
    state = {"w1": start.w1, "w2": start.w2}
    lr = jax.device_put(np.asarray(cfg.lr, dtype=cfg.dtype), replicated)

    def step():
        loss, state["w1"], state["w2"] = step_fn(start.x, start.y, state["w1"], state["w2"], lr)
        return loss.addressable_data(0)  # replicated: this process's copy of the batch's loss

    def weights():
        return tuple(np.asarray(state[name].addressable_data(0)) for name in ("w1", "w2"))

    return Trainer(step, sync=lambda: state["w2"].block_until_ready(), weights=weights)


BUILDERS = {"sharded": build_sharded}


# --- the processes: one mesh per run, its collectives timed alone ------------------------------

def join(cfg: RunConfig) -> None:
    """The launcher's environment names the coordinator; a lone process needs none."""
    if "JAX_COORDINATOR_ADDRESS" not in os.environ:
        if cfg.workers != 1:
            raise RuntimeError(f"--workers {cfg.workers} needs {cfg.workers} processes, each with "
                               "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (compare.py sets them)")
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]))
    if jax.process_count() != cfg.workers:
        raise RuntimeError(f"launched with {jax.process_count()} processes but --workers {cfg.workers}")


def time_collectives(cfg: RunConfig, problem: Problem, mesh: Mesh) -> float:
    """Median time of one step's collectives alone: a gradient-sized all-reduce over the workers."""
    size = problem.w1.size + problem.w2.size
    local = np.zeros((1, size), cfg.dtype)
    grads = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("workers")), local,
                                                   (cfg.workers, size))
    reduce = jax.jit(lambda g: g.sum(0), out_shardings=NamedSharding(mesh, PartitionSpec()))
    reduce(grads).block_until_ready()
    times = []
    for _ in range(COMM_REPEATS):
        start = time.perf_counter_ns()
        reduce(grads).block_until_ready()
        times.append((time.perf_counter_ns() - start) * 1e-9)
    return median(times)


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    if cfg.device != "cpu":
        raise NotImplementedError("JAX's data-parallel engine here runs on the CPU (gloo); its GPU path is not built")
    rank = int(os.environ.get("JAX_PROCESS_ID", "0"))
    note = jax_support.bound_threads(cfg.worker_threads, first_core=rank * cfg.worker_threads)
    join(cfg)
    mesh = Mesh(np.array(jax.devices()), ("workers",))
    rows, replicated = NamedSharding(mesh, PartitionSpec("workers")), NamedSharding(mesh, PartitionSpec())
    mine = data.worker_rows(cfg, jax.process_index())
    x, y = (jax.make_array_from_process_local_data(rows, a[mine], a.shape) for a in (problem.x, problem.y))
    w1, w2 = (jax.make_array_from_process_local_data(replicated, a, a.shape) for a in (problem.w1, problem.w2))
    trainer = BUILDERS[variant](cfg, Start(x, y, w1, w2, problem, mesh))
    return trainer._replace(reports=jax.process_index() == 0,
                            collectives=lambda: time_collectives(cfg, problem, mesh),
                            note=f"sharded over {cfg.workers} process(es); {note}")


if __name__ == "__main__":
    from implementations.standalone import main

    main("jax", build)
