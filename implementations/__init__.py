"""The registry: the one place that declares an implementation, without importing any framework.

Every other place reads it: the implementation modules (their variants), compare.py (what to
run, which variant represents a framework in the sweep and in minibatch mode, how to launch
data-parallel workers), deploy/ (which exporter a framework has) and the tests.

Adding a framework = one module here (the same sections as pytorch.py), one entry below, its tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Keeps TensorFlow's start-up chatter off the table, wherever TF is loaded from (the TF and Keras
# modules, tf.data under any Keras backend, the deploy exporters): it must precede TF's import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True, kw_only=True)
class Distributed:
    """A framework's data-parallel engine: its module, variant name and how workers start."""

    module: str
    variant: str
    launcher: str  # "torchrun", "tf_config" or "jax_coordinator" (common/launch.py)
    minibatch: bool = False  # trains on minibatches (--samples), each worker on its rows of every batch
    single_host: str | None = None  # why it cannot run over --hosts 2 (None: it can)


@dataclass(frozen=True, kw_only=True)
class Exporter:
    """How compare.py --deploy serializes this framework's trained weights and serves them."""

    source: str  # what the deploy table's rows name as their source (deploy.bench --source)
    runtime: str  # what runs the source's own forward pass in the deploy table
    requires: tuple[str, ...]  # importable packages the exporter needs
    extra: str  # pip extra that installs them
    # the child that exports and times it; deploy.bench calls export and native, functions of
    # deploy/export.py: (w1, w2, model_dir, threads) -> the .onnx and the source's forward pass, and
    # the source's own saved format and its load()
    child: str = "deploy.bench"
    export: str | None = None
    native: str | None = None
    # packages that would add a row, said under the deploy table when missing: (package, why it is not here)
    optional: tuple[tuple[str, str], ...] = ()
    # programs it runs besides Python (a compiler, cmake), and how to install them when missing
    tools: tuple[str, ...] = ()
    tools_hint: str = ""


@dataclass(frozen=True, kw_only=True)
class Implementation:
    name: str  # what users type: --frameworks torch
    module: str  # runnable alone as python -m <module>; its build(cfg, problem, variant) -> Trainer
    variants: tuple[str, ...]  # in table order; the first is the default everywhere
    requires: tuple[str, ...]  # importable packages it needs
    extra: str | None  # pip extra that installs them
    versions: tuple[str, ...] = ()  # packages whose __version__ every result records
    minibatch: tuple[str, ...] = ()  # variants that train on minibatches; the first: compare.py's default
    sweep: str | None = None  # the idiomatic variant that represents it in --sweep (None: not swept)
    env: tuple[tuple[str, str], ...] = ()  # set in the child before it starts (Keras' backend)
    distributed: Distributed | None = None  # what compare.py --workers W runs
    exporters: tuple[Exporter, ...] = ()  # what compare.py --deploy exports, in table order
    # whose kernels do its arithmetic: the library implementations.kernels times for the yardstick
    kernels: str
    # why the harness's own per-step cost is what it is, by variant ("*": every variant), said under
    # the table beside a cost worth noting
    harness_notes: tuple[tuple[str, str], ...] = ()
    # why a variant ("*": every variant) cannot run inside another program's process (a test
    # session's), so that tests covering every implementation run it elsewhere, or say why not
    not_in_process: tuple[tuple[str, str], ...] = ()
    # why it trains in float32 only, said as its skipped row's reason under --dtype float64 ("": both)
    float32_only: str = ""
    # the variants that train with --precision bf16-mixed, the way the framework's documentation shows
    # (float32 weights, bf16 matmuls), and why the others do not ("*": every variant)
    bf16: tuple[str, ...] = ()
    no_bf16: tuple[tuple[str, str], ...] = ()
    # the lecture's first rung, the single-process yardstick of --workers (its math is the reference's)
    first_rung: bool = False
    # what it does around its kernels in each step, said beside its x overhead (docs/findings.py)
    around: str = ""

    @property
    def framework(self) -> str:
        """The name a RunResult carries (the same as `name`)."""
        return self.name

    def missing(self) -> list[str]:
        """Packages this implementation needs that are not importable here (found without importing)."""
        from importlib.util import find_spec

        return [name for name in self.requires if find_spec(name) is None]

    def version_info(self) -> dict[str, str]:
        """The versions a result records; imports the packages, so call it where they are loaded."""
        import importlib
        import importlib.metadata

        # a package without __version__ (executorch) is asked of its installed distribution
        return {name: getattr(importlib.import_module(name), "__version__", None) or importlib.metadata.version(name)
                for name in self.versions}

    def minibatch_variants(self) -> tuple[str, ...]:
        """Every variant that trains on minibatches, the data-parallel engine's included."""
        engine = (self.distributed.variant,) if self.distributed is not None and self.distributed.minibatch else ()
        return self.minibatch + engine

    def harness_note(self, variant: str) -> str:
        return _for_variant(self.harness_notes, variant)

    def why_not_in_process(self, variant: str) -> str:
        return _for_variant(self.not_in_process, variant)

    def why_not_bf16(self, variant: str) -> str:
        """Why `variant` has no bf16-mixed run ("": it has one)."""
        if variant in self.bf16:
            return ""
        return _for_variant(self.no_bf16, variant) or f"--precision bf16-mixed is built for {self.name}'s " \
            f"{', '.join(self.bf16) or 'no variant'}"

    def variants_of(self, module: str) -> tuple[str, ...]:
        """The variants `module` builds: the entry's own, or its data-parallel engine's one."""
        if module == self.module:
            return self.variants
        if self.distributed is not None and module == self.distributed.module:
            return (self.distributed.variant,)
        raise KeyError(f"{module} is not a module of {self.name}")


def _for_variant(said: tuple[tuple[str, str], ...], variant: str) -> str:
    """What a by-variant field says of `variant`: its own entry, else the "*" one, else nothing."""
    by_variant = dict(said)
    return by_variant.get(variant, by_variant.get("*", ""))


REGISTRY: dict[str, Implementation] = {}


def in_process_cases() -> list[tuple[str, str]]:
    """Every (implementation, variant) that can run in the caller's process, in table order."""
    return [(impl.name, variant) for impl in REGISTRY.values() for variant in impl.variants
            if not impl.why_not_in_process(variant)]


# JAX, and every framework on a GPU, is timed in blocks (common.timing.ASYNC_BLOCK)
ASYNC_NOTE = ("JAX dispatches asynchronously, so its steps are timed in blocks of 25 with one sync and one fetch of "
              "their losses per block (common.timing.ASYNC_BLOCK); this is what that still costs")
# Keras 3's CallbackList (keras/src/callbacks/callback_list.py, _configure_async_dispatch): where every
# batch-end hook is async_safe, fit hands batch ends to a thread pool, on backends that declare
# themselves thread-safe (jax, torch); the clock's callback is async_safe, so fit keeps doing so.
FIT_NOTE = ("Keras' fit drives its own loop: the harness's batch-end callback is async_safe, so fit hands it each "
            "step's logs in its thread pool as it does its own callbacks' (jax and torch backends; on tensorflow, "
            "which Keras does not deem thread-safe, in its loop), and its logs carry each step's own loss "
            "(StepLossSequential)")


def register(impl: Implementation) -> Implementation:
    REGISTRY[impl.name] = impl
    return impl


register(Implementation(
    name="numpy", module="implementations.numpy", variants=("manual",), requires=("numpy",), extra=None,
    versions=("numpy",), minibatch=("manual",), sweep="manual", kernels="numpy", first_rung=True,
    no_bf16=(("*", "NumPy has no bfloat16 arithmetic: the judge's oracle emulates it, rounding float32 through "
                   "ml_dtypes at each of bf16's points (common/reference.py), and would be judging itself"),),
    around="one Python call and one fresh array per op"))
register(Implementation(
    name="torch", module="implementations.pytorch", variants=("tensors", "autograd", "module", "compile"),
    requires=("torch",), extra="torch", versions=("torch",), kernels="torch",
    around="an eager call per op (autograd's tape, the module's and optimizer's Python where used)",
    minibatch=("module", "tensors", "autograd", "compile"), sweep="autograd",
    # torch.autocast, torch's documented mixed precision, needs autograd: tensors' backward is by hand
    bf16=("autograd", "module", "compile"),
    no_bf16=(("tensors", "its backward pass is written by hand, and torch.autocast (torch's documented bf16 path) "
                         "only rounds the forward's ops: bf16 here would be casts placed by hand, the oracle's own "
                         "code (common/reference.py)"),),
    distributed=Distributed(module="implementations.pytorch_ddp", variant="ddp", launcher="torchrun", minibatch=True),
    not_in_process=(("compile", "torch.compile recompiles for every new shape, about 15 s cold each: it is held to the "
                                "reference at the lecture's size by tests/test_determinism.py and tests/test_pytorch.py"),),
    exporters=(
        Exporter(source="torch", runtime="torch", requires=("torch", "onnx", "onnxruntime", "onnxscript"),
                 extra="torch,onnx", export="export_torch", native="native_torch"),
        # Caffe2's heirs in PyTorch: AOTInductor's .pt2 served by a C++ program (deploy/aoti.py) and
        # ExecuTorch's .pte, the phone runtime's file (deploy/executorch_export.py)
        Exporter(source="aoti", runtime="torch", requires=("torch",), extra="torch", child="deploy.aoti",
                 tools=("cmake", "g++", "make"), tools_hint="apt-get install cmake g++ make (Debian)"),
        Exporter(source="pte", runtime="torch", requires=("torch", "executorch"), extra="mobile",
                 child="deploy.executorch_export"))))
# Training on the device: PyTorch's phone runtime runs the steps (its training API is experimental)
register(Implementation(
    name="executorch", module="implementations.executorch_training", variants=("train",),
    requires=("torch", "executorch"), extra="mobile", versions=("executorch", "torch"), kernels="executorch",
    # measured with executorch 1.4.1: one float64 step moved w1 by 9.5e-5 where lr * grad was 0.069
    float32_only="ExecuTorch's SGD optimizer mis-updates float64 parameters (one step moved w1 by 1/700 of "
                 "lr * grad); its training runs float32",
    around="one forward_backward call into the runtime and one step of its SGD, each through its Python binding",
    no_bf16=(("*", "ExecuTorch's training API exports the float32 program it is given; it has no autocast pass"),)))
register(Implementation(
    name="tensorflow", module="implementations.tensorflow_graphs",
    variants=("feed", "variables", "optimizer", "function", "xla"), requires=("tensorflow",),
    extra="tensorflow", versions=("tensorflow",), kernels="tensorflow",
    around="one Session.run or traced-function call per step",
    no_bf16=(("*", "TensorFlow's documented bf16 path is Keras' mixed_bfloat16 policy: the keras-tensorflow rows "
                   "run it on TensorFlow's kernels"),),
    # tf.data feeds TF2's tf.function; the TF1 variants keep the lecture's placeholder-fed batch.
    minibatch=("function", "xla"), sweep="variables",
    distributed=Distributed(module="implementations.tensorflow_multiworker", variant="multiworker",
                            launcher="tf_config", minibatch=True)))
register(Implementation(
    name="onnx", module="implementations.onnx_runtime", variants=("step", "loop"),
    requires=("onnx", "onnxruntime"), extra="onnx", versions=("onnx", "onnxruntime"), kernels="onnxruntime",
    around="one call runs the step's whole graph",
    no_bf16=(("*", "ONNX Runtime's CPU provider has no bfloat16 MatMul kernel (onnxruntime 1.32 fails to load a bf16 "
                   "MatMul graph: NOT_IMPLEMENTED, no implementation for MatMul(13)); Cast pairs around float32 "
                   "MatMuls could emulate bf16's rounding, but the arithmetic would still be float32's"),),
    minibatch=("step",), sweep="step",  # loop_net's one call holds one batch for every step
    exporters=(
        Exporter(source="predict_net", runtime="numpy", requires=("onnx", "onnxruntime"), extra="onnx",
                 export="export_predict_net", native="native_predict_net"),
        # ONNX Runtime Mobile's .ort of the same predict_net (deploy/ort_format.py)
        Exporter(source="ort_format", runtime="numpy", requires=("onnx", "onnxruntime"), extra="onnx",
                 child="deploy.ort_format"))))

register(Implementation(
    name="jax", module="implementations.jax_transforms", variants=("manual", "grad", "scan", "flax"),
    requires=("jax",), extra="jax", versions=("jax",), kernels="jax", harness_notes=(("*", ASYNC_NOTE),),
    around="one jitted call per step (scan: one for all; Flax: its module state besides)",
    bf16=("grad", "scan"),
    no_bf16=(("manual", "its backward pass is written by hand: bf16 there would be casts placed by hand, the "
                        "oracle's own code (common/reference.py)"),
             ("flax", "not built: Flax's own path would be nnx.Linear(dtype=jnp.bfloat16) over float32 params; the "
                      "grad and scan rows run JAX's bf16 on the same XLA kernels"),),
    minibatch=("grad", "manual", "flax"), sweep="grad",  # scan's one call holds one batch for every step
    distributed=Distributed(module="implementations.jax_distributed", variant="sharded",
                            launcher="jax_coordinator",
                            # measured: its workers wait until --timeout, never connected
                            single_host="JAX's gloo collectives take each process's address from the machine's "
                                        "hostname, which both hosts here share and which resolves outside them; "
                                        "jax.distributed has no setting for the interface"),
    # the Caffe2 idea in JAX: jax.export's StableHLO, served in a fresh process (deploy/jax_export.py)
    exporters=(Exporter(source="jax", runtime="jax", requires=("jax",), extra="jax", child="deploy.jax_export",
                        optional=(("jax2onnx", "not in the jax extra (it brings equinox, huggingface_hub and netron "
                                               "among others); pip install jax2onnx to add its ONNX export"),)),)))

# Keras 3 picks its backend from KERAS_BACKEND at import, so each backend is its own entry
# (the table's "keras-torch" row is Keras on the torch backend); "--frameworks keras" means all.
for _backend in ("tensorflow", "torch", "jax"):
    register(Implementation(
        name=f"keras-{_backend}", module="implementations.keras_api", variants=("fit", "train_on_batch"),
        requires=("keras", _backend), extra="keras" if _backend == "tensorflow" else f"keras,{_backend}",
        versions=("keras", _backend), env=(("KERAS_BACKEND", _backend),), minibatch=("fit",), kernels=_backend,
        harness_notes=(("fit", FIT_NOTE),), around="Keras' train step: its metrics, callbacks and backend calls",
        bf16=("fit", "train_on_batch"),  # the mixed_bfloat16 dtype policy
        # Keras reads KERAS_BACKEND once, at its import: a process holds one backend
        not_in_process=() if _backend == "tensorflow" else
        (("*", "Keras takes one backend per process, from KERAS_BACKEND at import, and this one's is tensorflow "
               "(tests/test_keras.py runs each backend in its own process)"),),
        # the sweep's six idiomatic loops (docs/measurement.md) leave keras-torch out
        sweep=None if _backend == "torch" else "fit",
        exporters=(
            Exporter(source="keras", runtime="keras-tensorflow",
                     requires=("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime"), extra="keras,onnx",
                     export="export_keras", native="native_keras"),
            # LiteRT (formerly TensorFlow Lite), the phone runtime's .tflite (deploy/litert.py)
            Exporter(source="litert", runtime="keras-tensorflow", requires=("keras", "tensorflow", "ai_edge_litert"),
                     extra="keras,mobile", child="deploy.litert"))
        if _backend == "tensorflow" else ()))

ALIASES = {"keras": [name for name in REGISTRY if name.startswith("keras-")]}

