"""The two-layer net trained on the device: ExecuTorch, PyTorch's phone runtime, runs the steps.

- train: the lecture's net and loss as a torch module, exported with its backward pass
         (torch.export, then _export_forward_backward) into one ExecuTorch program; the runtime's
         forward_backward runs forward, loss and backward in one call, and its own SGD optimizer
         updates the weights the runtime holds. Python only drives the loop, as an app's Java,
         Kotlin or Swift would. ExecuTorch marks its training API experimental; its Python
         module runs three metadata methods and copies the gradients on every call.

Run alone: python -m implementations.executorch_training --steps 100
"""

from __future__ import annotations

import torch

from common.config import RunConfig
from common.problem import Problem, Start, place
from common.timing import Trainer
from implementations import executorch_support, torch_support


# --- the network and loss ---------------------------------------------------------------------

class NetWithLoss(torch.nn.Module):
    """The lecture's forward pass and loss; w1 and w2 are what the exported program trains."""

    def __init__(self, w1, w2):
        super().__init__()
        self.w1 = torch.nn.Parameter(w1)
        self.w2 = torch.nn.Parameter(w2)

    def forward(self, x, y):
        y_pred = x.mm(self.w1).clamp(min=0).mm(self.w2)
        return (y_pred - y).pow(2).sum()  # the loss is the program's first output: what backward starts from


# --- the step of each variant -----------------------------------------------------------------

def build_train(cfg: RunConfig, start: Start) -> Trainer:
    from executorch.exir import to_edge
    from executorch.extension.training import _load_for_executorch_for_training_from_buffer, get_sgd_optimizer
    from torch.export.experimental import _export_forward_backward

    # Export once, ahead of time, as a phone app ships its .pte: forward and backward in one graph
    exported = torch.export.export(NetWithLoss(start.w1, start.w2), (start.x, start.y), strict=True)
    program = to_edge(_export_forward_backward(exported)).to_executorch().buffer
    module = _load_for_executorch_for_training_from_buffer(program)
    module.program = program  # the runtime reads the program's bytes where they lie: they live as long as it
    optimizer = None

    def step(x=start.x, y=start.y):
        nonlocal optimizer
        loss = module.forward_backward("forward", (x, y))[0]
        if optimizer is None:  # the runtime hands out its parameters only after a first forward_backward
            optimizer = get_sgd_optimizer(module.named_parameters(), cfg.lr, 0, 0, 0, False)  # plain SGD
        optimizer.step(module.named_gradients())
        return loss

    def weights():
        params = module.named_parameters()
        return torch_support.to_numpy((params["w1"], params["w2"]))

    return Trainer(step, weights=weights)


BUILDERS = {"train": build_train}


# --- build ------------------------------------------------------------------------------------

def build(cfg: RunConfig, problem: Problem, variant: str) -> Trainer:
    if cfg.device != "cpu":
        raise NotImplementedError("ExecuTorch's training runs on the CPU here (its phone backends are elsewhere)")
    torch_support.set_threads(cfg.threads)  # the export's
    executorch_support.set_threads(cfg.threads)  # the runtime's
    # the framework's own copies: training in place must never write into the shared Problem
    start = place(cfg, problem, "cpu", lambda a: torch.tensor(a))
    return BUILDERS[variant](cfg, start)


if __name__ == "__main__":
    from implementations.standalone import main

    main("executorch", build)
