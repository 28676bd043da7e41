"""The plumbing every torch-based run shares (PyTorch, DDP, Keras on torch): device, threads, sync.

Kept out of the implementation files so that they hold only the lecture's code.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from common.config import RunConfig
from common.timing import no_sync


def device(cfg: RunConfig, index: int = 0) -> torch.device:
    """The run's torch device; on a GPU with TF32 off, so that matmuls keep the reference's math."""
    if cfg.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device")
    # TF32 rounds matmul inputs to 10 mantissa bits: fast, but no longer the reference's math.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", index)


def start(cfg: RunConfig) -> torch.device:
    """What every torch run sets before it builds: its threads, then its device."""
    set_threads(cfg.threads)
    return device(cfg)


def autocast(cfg: RunConfig, on: torch.device):
    """The forward pass's context: with --precision bf16-mixed, torch.autocast (matmuls in bf16, the loss
    in float32, float32 parameters); else a no-op. Entered each step, so the weights' bf16 casts,
    which autocast caches until its context exits, are made afresh from the updated weights. A disabled
    autocast still costs ~3 us to enter and leave (measured here), so full precision gets a null context."""
    if cfg.precision != "bf16-mixed":
        return contextlib.nullcontext()
    return torch.autocast(on.type, dtype=torch.bfloat16)


def sync(on: torch.device):
    """The device barrier the clock waits on before it stops."""
    return torch.cuda.synchronize if on.type == "cuda" else no_sync


def asynchronous(on: torch.device) -> dict:
    """Trainer fields: on a GPU a step returns before its kernels finish, so the clock times blocks
    of steps and fetches their losses in one transfer (common.timing); on the CPU torch is synchronous."""
    if on.type != "cuda":
        return {}
    return {"asynchronous": True, "fetch": lambda losses: torch.stack(losses).tolist()}


def set_threads(threads: int) -> None:
    """torch's intra-op pool, checked: a run with other threads than its config is an error."""
    torch.set_num_threads(threads)
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"torch runs with {torch.get_num_threads()} threads, not the {threads} asked for")


def to_numpy(tensors) -> tuple:
    """Tensors (on any device, in or out of a graph) as NumPy copies."""
    return tuple(t.detach().cpu().numpy().copy() for t in tensors)


def profiler(on: torch.device):
    """Trainer.profile for torch: torch.profiler over what it wraps (the device's kernels too),
    its own Chrome trace written as the run's trace.json."""
    from common.profiling import TRACE, tag_trace

    @contextlib.contextmanager
    def profile(folder: Path):
        activities = [torch.profiler.ProfilerActivity.CPU]
        if on.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        # record_shapes: each op's input sizes in the trace ("Input Dims"), to tell the matmuls apart
        with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
            yield
        prof.export_chrome_trace(str(folder / TRACE))
        tag_trace(folder / TRACE, "torch.profiler")

    return profile


def device_memory(on: torch.device):
    """Trainer.device_memory: torch's own peak allocation on the GPU, in MB (None on the CPU)."""
    if on.type != "cuda":
        return None
    return lambda: torch.cuda.max_memory_allocated(on) / 2**20


def hooks(on: torch.device) -> dict:
    """Every Trainer field the harness reads from torch on `on`: its barrier, profiler, device
    memory and, on a GPU, the block clock's fields."""
    return {"sync": sync(on), "profile": profiler(on), "device_memory": device_memory(on), **asynchronous(on)}
