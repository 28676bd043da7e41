"""The two-layer net trained data-parallel by torch.distributed's DistributedDataParallel.

W processes, launched by torchrun, each hold the whole model and take their own N/W rows of
the batch. DDP all-reduces the gradients during backward (gloo on CPU, nccl on GPU). The
lecture's loss is a sum over rows, so the full batch's gradient is the *sum* of the workers'
gradients: a comm hook sums them, where DDP's default divides by the world size.

Run alone, one process:  python -m implementations.pytorch_ddp --device cpu
Two on this machine:     torchrun --nproc-per-node 2 -m implementations.pytorch_ddp --workers 2
compare.py --workers W launches it with torchrun on 127.0.0.1 (docs/data-parallel.md: across machines).
"""

from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from common import data
from common.config import RunConfig
from common.launch import free_ports
from common.problem import Problem, Start, place
from common.timing import Trainer, median
from implementations import torch_support
from implementations.pytorch import make_feed, make_sequential, weights_of

COMM_REPEATS = 20


# --- the network and loss: pytorch.py's nn.Sequential, wrapped by DDP --------------------------

def sum_gradients(state, bucket):
    """DDP comm hook: all-reduce SUM of the bucket's gradients (the default hook averages)."""
    future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return future.then(lambda fut: fut.value()[0])


# --- the step of each variant -----------------------------------------------------------------

def build_ddp(cfg: RunConfig, start: Start) -> Trainer:
    model = DistributedDataParallel(make_sequential(start.w1, start.w2))
    model.register_comm_hook(None, sum_gradients)
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)

    def step(x=start.x, y=start.y):  # minibatch mode passes this worker's rows of each batch
        local_loss = loss_fn(model(x), y)  # over this worker's rows only
        optimizer.zero_grad()
        local_loss.backward()  # DDP sums the gradients of every worker as backward runs
        optimizer.step()
        loss = local_loss.detach().clone()
        dist.all_reduce(loss)  # the batch's loss: the sum over every worker's rows
        return loss.item()

    return Trainer(step, weights=lambda: torch_support.to_numpy(weights_of(model.module)))


BUILDERS = {"ddp": build_ddp}


# --- the process group: one per run, its collectives timed alone ------------------------------

def join_process_group(cfg: RunConfig) -> None:
    """torchrun's environment names the group; a lone process forms a group of one on loopback."""
    if "RANK" not in os.environ:
        if cfg.workers != 1:
            raise RuntimeError(f"--workers {cfg.workers} needs a launcher: torchrun --nproc-per-node "
                               f"{cfg.workers} -m implementations.pytorch_ddp --workers {cfg.workers}")
        port = free_ports(1)[0]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend="nccl" if cfg.device == "gpu" else "gloo")
    if dist.get_world_size() != cfg.workers:
        raise RuntimeError(f"launched with {dist.get_world_size()} processes but --workers {cfg.workers}")


def local_device(cfg: RunConfig) -> torch.device:
    """This worker's device: its own GPU (nccl allows one rank per GPU), or the CPU."""
    local_workers = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if cfg.device == "gpu" and torch.cuda.is_available() and local_workers > torch.cuda.device_count():
        raise NotImplementedError(f"{local_workers} workers on this machine need as many GPUs; "
                                  f"it has {torch.cuda.device_count()}")
    device = torch_support.device(cfg, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)  # nccl's collectives run on the current device
    return device


def time_collectives(cfg: RunConfig, problem: Problem, device: torch.device) -> float:
    """Median time of one step's collectives alone: a gradient-sized all-reduce and the loss's."""
    grads = torch.zeros(problem.w1.size + problem.w2.size, dtype=getattr(torch, cfg.dtype), device=device)
    loss = torch.zeros((), dtype=grads.dtype, device=device)
    times = []
    for _ in range(COMM_REPEATS):
        dist.barrier()
        start = time.perf_counter_ns()
        dist.all_reduce(grads)
        dist.all_reduce(loss)
        loss.item()
        times.append((time.perf_counter_ns() - start) * 1e-9)
    return median(times)


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    torch_support.set_threads(cfg.worker_threads)
    device = local_device(cfg)
    join_process_group(cfg)
    mine = data.worker_rows(cfg, dist.get_rank())  # this worker's rows of the batch
    start = place(cfg, problem._replace(x=problem.x[mine], y=problem.y[mine]), device,
                  lambda a: torch.tensor(a, device=device))
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:
        # The sampler, as DistributedSampler is one: this worker's rows of each batch of the shared
        # order, so the W workers' rows together are the batch the reference trains on.
        trainer = trainer._replace(feed=make_feed(cfg, problem, device, order=data.worker_order(cfg, dist.get_rank())))
    return trainer._replace(sync=torch_support.sync(device), reports=dist.get_rank() == 0,
                            collectives=lambda: time_collectives(cfg, problem, device),
                            note=f"DDP, {cfg.workers} worker(s) x {cfg.worker_threads} thread(s)",
                            close=dist.destroy_process_group)


if __name__ == "__main__":
    from implementations.standalone import main

    main("torch", build)
