"""The two-layer net in PyTorch, four ways, as the lecture climbs the abstraction ladder.

- tensors:  torch tensors as a GPU-capable NumPy; the backward pass written by hand.
- autograd: the same forward pass; autograd builds the graph on the fly and differentiates it.
- module:   nn.Sequential of Linear layers, nn.MSELoss(reduction="sum"), optim.SGD.
- compile:  the module variant with its forward and loss compiled by torch.compile.

Run alone: python -m implementations.pytorch --variant autograd --device cpu --json out.json
"""

from __future__ import annotations

import torch

from common import data
from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import Trainer
from implementations import torch_support


# --- the network and loss ---------------------------------------------------------------------

def make_sequential(w1, w2):
    """nn.Sequential holding the Problem's weights (Linear stores W as (out, in), hence .t())."""
    d_in, h = w1.shape
    d_out = w2.shape[1]
    opts = {"bias": False, "device": w1.device, "dtype": w1.dtype}
    model = torch.nn.Sequential(
        torch.nn.Linear(d_in, h, **opts),
        torch.nn.ReLU(),
        torch.nn.Linear(h, d_out, **opts),
    )
    with torch.no_grad():
        model[0].weight.copy_(w1.t())
        model[2].weight.copy_(w2.t())
    return model


def weights_of(model):
    """The Sequential's weights as the lecture's (D_in, H) and (H, D_out) views."""
    return model[0].weight.t(), model[2].weight.t()


# --- the step of each variant -----------------------------------------------------------------

def build_tensors(cfg: RunConfig, start: Start) -> Trainer:
    w1, w2 = start.w1, start.w2

    def step(x=start.x, y=start.y):  # minibatch mode passes each batch; else the lecture's one
        # Forward pass: compute predicted y
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum()

        # Backward pass by hand, exactly as the NumPy reference does it
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h = grad_y_pred.mm(w2.t())
        grad_h[h < 0] = 0
        grad_w1 = x.t().mm(grad_h)

        w1.sub_(cfg.lr * grad_w1)
        w2.sub_(cfg.lr * grad_w2)
        return loss  # a tensor: the harness's clock fetches it (.item()); its bare run does not

    return Trainer(step, weights=lambda: torch_support.to_numpy((w1, w2)))


def build_autograd(cfg: RunConfig, start: Start) -> Trainer:
    w1, w2 = start.w1, start.w2
    w1.requires_grad_(True)
    w2.requires_grad_(True)

    def step(x=start.x, y=start.y):
        # Forward pass records the graph; backward() walks it to fill w1.grad and w2.grad
        with torch_support.autocast(cfg, start.device):  # bf16-mixed: the matmuls in bf16
            y_pred = x.mm(w1).clamp(min=0).mm(w2)
            loss = (y_pred - y).pow(2).sum()
        loss.backward()

        with torch.no_grad():  # the update itself must not become part of the next graph
            w1.sub_(cfg.lr * w1.grad)
            w2.sub_(cfg.lr * w2.grad)
            w1.grad = None  # cheaper than zeroing: the next backward allocates fresh
            w2.grad = None
        return loss

    return Trainer(step, weights=lambda: torch_support.to_numpy((w1, w2)))


def build_module(cfg: RunConfig, start: Start, *, compiled: bool = False) -> Trainer:
    model = make_sequential(start.w1, start.w2)
    loss_fn = torch.nn.MSELoss(reduction="sum")  # the default "mean" would rescale the gradient
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)

    def forward_loss(x, y):
        return loss_fn(model(x), y)

    if compiled and cfg.profile:
        # Inductor's fused C++ kernels are invisible to the profiler unless compiled to say so
        from torch._inductor import config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    if compiled:
        # Dynamo traces forward + loss into one graph; AOTAutograd derives and compiles its
        # backward too. Compilation happens on the first call, which the harness counts as setup.
        forward_loss = torch.compile(forward_loss)

    def step(x=start.x, y=start.y):
        with torch_support.autocast(cfg, start.device):  # bf16-mixed: the matmuls in bf16
            loss = forward_loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return Trainer(step, weights=lambda: torch_support.to_numpy(weights_of(model)))


def build_compile(cfg: RunConfig, start: Start) -> Trainer:
    return build_module(cfg, start, compiled=True)


BUILDERS = {"tensors": build_tensors, "autograd": build_autograd, "module": build_module, "compile": build_compile}


# --- the feed (minibatch mode) ----------------------------------------------------------------

class Rows(torch.utils.data.Dataset):
    """The dataset indexed by a whole batch of rows at once: one gather per batch, not N
    __getitem__ calls and a collate (the sampler yields each step's rows, batch_size=None)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, rows):
        return data.gather(self.x, self.y, rows)  # NumPy; the DataLoader converts to tensors


def make_feed(cfg: RunConfig, problem: Problem, device: torch.device, order=None):
    """Minibatches in the shared order: gathered on the device (resident) or by a DataLoader.
    `order`: each step's rows (default the whole batch; a DDP worker passes its own rows of it)."""
    order = data.batch_order(cfg) if order is None else order
    if cfg.feed == "resident":
        x_all, y_all = torch.tensor(problem.x, device=device), torch.tensor(problem.y, device=device)
        order_on_device = torch.tensor(order, device=device)

        def resident_batches():
            for rows in order_on_device:
                yield x_all.index_select(0, rows), y_all.index_select(0, rows)

        return resident_batches
    x, y = data.host_source(cfg, problem)
    pin = cfg.pin_memory == "on" or (cfg.pin_memory == "auto" and device.type == "cuda")
    loader = torch.utils.data.DataLoader(
        Rows(x, y), sampler=order, batch_size=None, pin_memory=pin,
        num_workers=cfg.loader_workers if cfg.feed == "prefetch" else 0)

    def loaded_batches():
        for x_batch, y_batch in loader:
            # non_blocking only helps from pinned memory, where the copy is asynchronous
            yield x_batch.to(device, non_blocking=pin), y_batch.to(device, non_blocking=pin)

    return loaded_batches


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    device = torch_support.start(cfg)
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, device, lambda a: torch.tensor(a, device=device))
    trainer = BUILDERS[variant](cfg, start)
    if cfg.minibatch:  # every step gets its batch from the feed
        trainer = trainer._replace(feed=make_feed(cfg, problem, device))
    return trainer.with_hooks(**torch_support.hooks(device))


if __name__ == "__main__":
    from implementations.standalone import main

    main("torch", build)
