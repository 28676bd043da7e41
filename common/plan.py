"""The plan of one comparison: what compare.py's arguments decide, once, and the runs that follow.

Everything here reads the registry it is given (implementations.REGISTRY, passed by compare.py),
never a list of its own: common/ imports no implementation.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from common import hosts
from common.config import DEVICES, FEEDS, PRECISIONS, ConfigError, RunConfig, config_from_args


@dataclass(frozen=True)
class Plan:
    """What this invocation does, decided once from the arguments; everything below reads it."""

    cfg: RunConfig  # the run's configuration (device and feed are set per run)
    frameworks: tuple[str, ...]
    variants: tuple[str, ...]
    devices: tuple[str, ...]
    feeds: tuple[str, ...]
    precisions: tuple[str, ...]  # --precision, compared side by side: each run in each
    # --sweep and minibatch mode without --variants: one idiomatic variant per framework
    representatives: bool
    rounds: int
    timeout_s: float
    out: Path | None
    sweep: bool = False
    sweep_steps: int = 30
    deploy_from: tuple[Any, str] | None = None  # --deploy: the (implementation, variant) whose weights are deployed
    report_from: Path | None = None
    markdown: bool = False
    profile: bool = False  # one extra run each under the framework's profiler, traces in out/traces
    fork_server: bool = True  # single-process runs forked from one import per framework (common.launch.ForkServers)
    hosts: int = 1  # --workers over 1 host (loopback) or 2 (network namespaces joined by a veth pair)
    link_gbit: float | None = None  # the 2 hosts' link, limited to this many Gbit/s (None: unlimited)
    command: str = "python compare.py"  # as typed: results.json and report.md name what made them
    # the implementations by name (implementations.REGISTRY), and the kernel libraries their
    # frameworks call that are installed (the yardstick measures each)
    registry: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    libraries: tuple[str, ...] = ()


def plan_from_args(args, registry: Mapping[str, Any], aliases: Mapping[str, list[str]]) -> Plan:
    """The Plan of compare.py's parsed arguments; ConfigError names the first bad one."""
    feeds = _pick(args.feed, list(FEEDS), "--feed")
    if not args.samples and feeds != ["resident"]:
        raise ConfigError("--feed needs --samples: the lecture's one batch is always resident")
    if args.workers > 1 and (args.sweep or args.deploy or args.variants != "all"):
        flag = "--sweep" if args.sweep else ("--deploy" if args.deploy else "--variants")
        raise ConfigError(f"--workers cannot be combined with {flag}: each framework's data-parallel "
                          "engine is one variant on the lecture's batch")
    if args.samples and (args.sweep or args.deploy):
        raise ConfigError(f"--samples cannot be combined with {'--sweep' if args.sweep else '--deploy'}, "
                          "which train on the lecture's one batch")
    precisions = _pick(args.precision, list(PRECISIONS), "--precision")
    if len(precisions) > 1 and (args.workers > 1 or args.deploy):
        raise ConfigError(f"--precision takes one value with {'--workers' if args.workers > 1 else '--deploy'}")
    if args.deploy and precisions != ["full"]:
        raise ConfigError("--deploy trains and exports in --dtype: --precision bf16-mixed is a training comparison")
    cfg = config_from_args(args, device="cpu", feed=feeds[0], precision=precisions[0])
    frameworks = _pick(args.frameworks, list(registry), "--frameworks", aliases)
    all_variants = [v for f in frameworks for v in registry[f].variants]
    rounds = (1 if args.sweep else 3) if args.rounds is None else args.rounds
    if rounds < 1:
        raise ConfigError(f"--rounds must be an integer >= 1, got {rounds}")
    if args.sweep_steps < 2:
        raise ConfigError(f"--sweep-steps must be an integer >= 2, got {args.sweep_steps}")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {args.timeout!r}")
    if args.profile and (args.sweep or args.deploy or args.workers > 1 or args.report_from):
        flag = ("--sweep" if args.sweep else "--deploy" if args.deploy else "--workers" if args.workers > 1
                else "--report-from")
        raise ConfigError(f"--profile cannot be combined with {flag}: it profiles one size's single-process runs "
                          "(set the size with --batch/--d-in/--hidden/--d-out)")
    if args.profile and args.out is None:
        raise ConfigError("--profile needs --out DIR: the traces are written to DIR/traces")
    _check_hosts(args)
    if args.markdown and args.report_from is None:
        raise ConfigError("--markdown goes with --report-from: it prints an earlier results.json's table")
    if args.out is not None:
        _check_writable(args.out)
    return Plan(cfg=cfg, frameworks=tuple(frameworks),
                variants=tuple(_pick(args.variants, list(dict.fromkeys(all_variants)), "--variants")),
                devices=tuple(_pick(args.device, list(DEVICES), "--device")), feeds=tuple(feeds),
                precisions=tuple(precisions),
                representatives=(args.sweep or bool(args.samples)) and args.variants == "all",
                rounds=rounds, timeout_s=args.timeout, out=args.out, sweep=args.sweep, sweep_steps=args.sweep_steps,
                deploy_from=_deploy_source(args.deploy_from, registry) if args.deploy else None, report_from=args.report_from,
                markdown=args.markdown, profile=args.profile, hosts=args.hosts, link_gbit=args.link_gbit,
                fork_server=not getattr(args, "no_fork_server", False),
                registry=registry)


def _check_hosts(args) -> None:
    """--hosts and --link-gbit: what they combine with, and whether this machine can make hosts."""
    if args.hosts not in (1, 2):
        raise ConfigError(f"--hosts must be 1 (loopback) or 2 (two network namespaces), got {args.hosts}")
    if args.link_gbit is not None and args.hosts != 2:
        raise ConfigError("--link-gbit limits the link between two hosts: it needs --hosts 2")
    if args.link_gbit is not None and not args.link_gbit > 0:
        raise ConfigError(f"--link-gbit must be > 0 Gbit/s, got {args.link_gbit!r}")
    if args.hosts == 2:
        if args.workers < 2 or args.workers % 2:
            raise ConfigError(f"--hosts 2 needs --workers W, even and >= 2 (W/2 per host), got {args.workers}")
        reason = hosts.unavailable_reason()
        if reason:
            raise ConfigError(f"--hosts 2: {reason}")


def _pick(text: str, allowed: list[str], flag: str, aliases: dict[str, list[str]] | None = None) -> list[str]:
    if text == "all":
        return allowed
    aliases = aliases or {}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed and n not in aliases]
    if unknown or not names:
        choices = ", ".join([*allowed, *aliases])
        raise ConfigError(f"{flag}: unknown {', '.join(unknown) or 'empty list'}; allowed: {choices} or all")
    expanded = [m for n in names for m in aliases.get(n, [n])]
    return list(dict.fromkeys(expanded))


def _deploy_source(text: str, registry: Mapping[str, Any]) -> tuple[Any, str]:
    framework, _, variant = text.partition("/")
    if framework not in registry or variant not in registry[framework].variants:
        choices = ", ".join(f"{f}/{v}" for f, impl in registry.items() for v in impl.variants)
        raise ConfigError(f"--deploy-from: unknown {text!r}; allowed: {choices}")
    return registry[framework], variant


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


class Run(NamedTuple):
    """One row of the comparison: what runs, where, fed how, on how many workers."""

    impl: Any  # an implementations.Implementation
    variant: str
    device: str
    feed: str | None = None  # None: the lecture's batch
    workers: int = 1
    skip: str | None = None  # a row that cannot run, with the reason
    precision: str | None = None  # None: the plan's


def runs_of(plan: Plan) -> list[Run]:
    """Every run, in table order."""
    if plan.cfg.workers > 1:
        return data_parallel_runs(plan)

    def wanted(impl, variant: str) -> bool:
        if not plan.representatives:
            return variant in plan.variants
        # one per framework keeps the sweep, and the grid of feeds, to minutes
        return variant == (impl.minibatch[:1] or (None,))[0] if plan.cfg.minibatch else variant == impl.sweep

    feeds = plan.feeds if plan.cfg.minibatch else (None,)
    registry = plan.registry
    return [Run(registry[f], v, d, feed, precision=p) for d in plan.devices for f in plan.frameworks
            for v in registry[f].variants if wanted(registry[f], v) for feed in feeds for p in plan.precisions]


def data_parallel_runs(plan: Plan) -> list[Run]:
    """--workers W: each engine on 1 worker and on W (the scaling baseline is the same code);
    NumPy's row as the single-process yardstick; frameworks without an engine, a skipped row."""
    runs = []
    for device in plan.devices:
        for framework in plan.frameworks:
            impl = plan.registry[framework]
            if impl.distributed is not None and plan.hosts > 1 and impl.distributed.single_host:
                runs.append(Run(impl, impl.distributed.variant, device,
                                skip=f"--hosts {plan.hosts}: {impl.distributed.single_host}"))
            elif impl.distributed is not None and plan.cfg.minibatch and not impl.distributed.minibatch:
                runs.append(Run(impl, impl.distributed.variant, device, skip=(
                    f"--workers with --samples is built for {_engines(plan.registry, lambda engine: engine.minibatch)}; "
                    f"{framework}'s {impl.distributed.variant} engine trains on the lecture's batch")))
            elif impl.distributed is not None:
                runs += [Run(impl, impl.distributed.variant, device, workers=w) for w in (1, plan.cfg.workers)]
            elif impl.first_rung:
                runs.append(Run(impl, impl.variants[0], device))
            else:
                runs.append(Run(impl, impl.variants[0], device, skip=(
                    f"no data-parallel engine wired for {framework}; --workers runs {_engines(plan.registry)}")))
    return runs


def _engines(registry: Mapping[str, Any], which=lambda engine: True) -> str:
    """The registry's data-parallel engines that `which` accepts, as 'torch (ddp), ...'."""
    return ", ".join(f"{name} ({impl.distributed.variant})" for name, impl in registry.items()
                     if impl.distributed is not None and which(impl.distributed))


