"""The plumbing ExecuTorch runs share (on-device training, the yardstick's kernels, the deploy child):
the runtime's thread pool, and a torch module turned into a loaded ExecuTorch program.

Kept out of the implementation file so that it holds only the lecture's code.
"""

from __future__ import annotations


def set_threads(threads: int) -> None:
    """The runtime's own thread pool (its optimized kernels' and XNNPACK's), checked; ExecuTorch's
    Python binding sizes it once, to the machine's cores, unless reset before anything runs."""
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != threads:
        portable_lib._unsafe_reset_threadpool(threads)
    if portable_lib._threadpool_get_thread_count() != threads:
        raise RuntimeError(f"ExecuTorch runs with {portable_lib._threadpool_get_thread_count()} threads, "
                           f"not the {threads} asked for")


def method_of(module, example: tuple):
    """`module` exported at the shapes of `example`, lowered to an ExecuTorch program (no delegate) and
    loaded by the runtime: run(tensors) calls its forward method."""
    import torch
    from executorch.exir import to_edge
    from executorch.runtime import Runtime

    buffer = to_edge(torch.export.export(module, example, strict=True)).to_executorch().buffer
    program = Runtime.get().load_program(buffer)
    method = program.load_method("forward")

    def run(tensors):
        # the runtime reads the program's bytes where they lie, uncopied: they, and the program,
        # live as long as this function
        return method.execute(tensors) if buffer and program else None

    return run
