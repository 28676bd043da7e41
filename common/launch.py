"""Launching one run in a fresh subprocess, with equal threads, and every way it can end as a row."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common.config import RunConfig
from common.result import RunResult
from common.runner import failed, skipped

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def config_flags(cfg: RunConfig) -> list[str]:
    """The CLI flags that reproduce `cfg` in a child process (repr keeps floats exact)."""
    flags = []
    for name, value in cfg.to_dict().items():
        if name == "steps" and cfg.minibatch:
            continue  # derived from samples and epochs; the child refuses it alongside --samples
        if name == "profile":
            continue  # the child's --profile DIR says it, with where the trace goes
        flags += [f"--{name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
    return flags


def child_env(cfg: RunConfig, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every child: equal thread counts, set before any library loads."""
    # Data-parallel workers share the run's threads (cfg.worker_threads each).
    return {**os.environ, **{name: str(cfg.worker_threads) for name in THREAD_ENV}, **extra}


def run_one(impl, variant: str, cfg: RunConfig, timeout_s: float, save_weights: Path | None = None,
            harness_cost: bool = False, profile: Path | None = None, hosts=None,
            servers: ForkServers | None = None) -> RunResult:
    """One run of a registry entry (implementations.Implementation) in a fresh subprocess, W of
    them for a data-parallel engine; any way it can fail becomes a row with the reason.
    `harness_cost`: the child also measures its steps with no per-step clock (not data-parallel);
    `profile`: the child runs under the framework's profiler and writes its trace into that folder;
    `hosts` (common.hosts.TwoHosts): a data-parallel run's workers are spread over those two hosts;
    `servers`: a single-process run is forked from its module's fork server, which imported it once."""
    missing = impl.missing()
    if missing:
        return skipped(cfg, impl.framework, variant,
                       f"{', '.join(missing)} not installed: pip install -e '.[{impl.extra}]'")
    env = child_env(cfg, dict(impl.env))
    distributed = impl.distributed is not None and variant == impl.distributed.variant
    module = impl.distributed.module if distributed else impl.module
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        # The trained weights come back in a file for the verdict (results.json keeps only their error),
        # kept at `save_weights` when the caller wants them (deploy).
        weights = save_weights or Path(tmp) / "weights.npz"
        # --no-check: the parent judges every run against its one reference; the child need not.
        args = [module, "--variant", variant, *config_flags(cfg), "--no-check", "--save-weights", str(weights)]
        if distributed:
            launch = data_parallel_launch(impl.distributed.launcher, args, out, cfg, env, hosts)
            returncode, stderr, account = run_group(*launch, timeout_s)
        else:
            account = None
            args += ["--json", str(out), *(["--harness-cost"] if harness_cost else []),
                     *(["--profile", str(profile)] if profile else [])]
            served = servers.run(args, env, timeout_s, Path(tmp) / "stderr.txt") if servers is not None else None
            # served None: no server could take it; the plain child, which imports for itself
            returncode, stderr = served or run_child([sys.executable, "-m", *args], env, timeout_s)
        if returncode is None:
            return failed(cfg, impl.framework, variant, f"timed out after {timeout_s:g} s (--timeout)")
        if out.exists():
            try:
                result = RunResult.from_json(out.read_text())
            except (ValueError, TypeError, KeyError) as exc:
                return failed(cfg, impl.framework, variant, f"its result file is unreadable: {exc}")
            if weights.exists():
                with np.load(weights) as saved:
                    result.final_weights = (saved["w1"], saved["w2"])
            if account and result.status == "failed":  # rank 0 wrote its own row: say first what the harness saw
                result.error = f"{account}; {result.error}"
            return result
        # the last line that says something (torchrun ends its report with a rule of "=")
        last = account or ([line for line in stderr.strip().splitlines() if line.strip("=- ")] or ["no output"])[-1]
        if returncode < 0:
            how = f"killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        else:
            how = f"exit status {returncode}"
        return failed(cfg, impl.framework, variant, f"{how}: {last}")


class ForkServers:
    """One comparison's fork servers (implementations.forkserver): one per module and environment,
    each importing its module once; every run is forked from it as a
    process of its own, which does what `python -m module ...` would. Closed, every server and any
    run still going are killed. A server that cannot serve (its import failed, it died) is left
    out, and the run is started as a plain child, which then says why itself."""

    MODULE = "implementations.forkserver"

    def __init__(self):
        self.servers: dict[tuple, _Server] = {}

    def __enter__(self) -> "ForkServers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for server in self.servers.values():
            kill_tree(server.proc)
        self.servers.clear()

    def ready(self, module: str, env: dict, timeout_s: float) -> _Server | None:
        """The server of `module` in `env`, started if it is not running, and waited for until imported,
        so that no import runs beside a timed run; None when it dies importing (or takes the whole
        timeout to), and it is left out."""
        key = (module, tuple(sorted(env.items())))
        server = self.servers.get(key)
        if server is None or server.proc.poll() is not None:
            with interrupts_deferred():
                server = self.servers[key] = _Server(subprocess.Popen(
                    [sys.executable, "-m", self.MODULE, module], env=env, stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True), key)
        if not server.ready:
            try:
                said = server.reply(time.monotonic() + timeout_s)
            except TimeoutError:
                said = None
            server.ready = bool(said and said.get("ready"))
        if not server.ready:
            self.drop(server)
            return None
        return server

    def drop(self, server: _Server) -> None:
        kill_tree(self.servers.pop(server.key).proc)

    def run(self, args: list[str], env: dict, timeout_s: float, stderr: Path) -> tuple[int | None, str] | None:
        """`python -m args[0] args[1:]` forked from its server: (exit status, stderr), status None on a
        timeout; None when the server could not take it (a plain child will say why)."""
        server = self.ready(args[0], env, timeout_s)
        if server is None:
            return None
        deadline = time.monotonic() + timeout_s
        try:
            server.send({"argv": args[1:], "stderr": str(stderr)})
            started = server.reply(deadline)
        except (OSError, TimeoutError):
            started = None
        if started is None:  # it died since: the same
            self.drop(server)
            return None
        try:
            ended = server.reply(deadline)
        except TimeoutError:
            ended = None
        except BaseException:  # Ctrl-C: the run ends with the comparison
            kill_group(started["pid"])
            raise
        if ended is None:
            kill_group(started["pid"])
            try:  # the server's word that it reaped the run, so that its next reply is the next run's
                ended = server.reply(time.monotonic() + 10)
            except TimeoutError:
                ended = None
            if ended is None:
                self.drop(server)
            ended = {"status": None}
        return ended["status"], stderr.read_text(errors="replace") if stderr.exists() else ""


def forked_module(impl, variant: str, cfg: RunConfig) -> tuple[str, dict] | None:
    """The (module, environment) of a run that a fork server can start: one process, its packages here."""
    if impl.missing() or (impl.distributed is not None and variant == impl.distributed.variant):
        return None
    return impl.module, child_env(cfg, dict(impl.env))


class _Server:
    """A fork server's process and what it has written that is not read yet."""

    def __init__(self, proc: subprocess.Popen, key: tuple):
        self.proc, self.key, self.pending, self.ready = proc, key, b"", False

    def send(self, request: dict) -> None:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def reply(self, deadline: float) -> dict | None:
        """The next reply line; None at the end of the server's output; TimeoutError past the
        deadline. Waits in slices of WAIT_SLICE_S, so that a signal is acted on meanwhile."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if select.select([fd], [], [], min(WAIT_SLICE_S, left))[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)


def kill_group(pid: int, below: bool = True) -> None:
    """Process group `pid` and (`below`) every process below `pid`, killed; not reaped (a forked run's
    server reaps it)."""
    for kill, target in ((os.killpg, pid), *((os.kill, child) for child in (_descendants(pid) if below else []))):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# The longest a wait in compare.py's main thread blocks before it looks at its signals again.
# Python runs signal handlers in the main thread only: a Ctrl-C that the kernel hands to another
# thread of the process (NumPy's BLAS workers) cannot wake a main thread blocked in one long
# select(), so every wait here is cut into slices of this length.
WAIT_SLICE_S = 0.1
# After a data-parallel worker fails: how long the others get to end by themselves, so that the
# row can name the one that died (killed by a signal) rather than a peer that only noticed it
PEERS_SETTLE_S = 2.0


def run_child(cmd: list[str], env: dict, timeout_s: float) -> tuple[int | None, str]:
    """Run cmd in its own process group; (exit status, stderr), or (None, stderr) on timeout."""
    code, _, stderr = run_captured(cmd, env, timeout_s, stdout=False)
    return code, stderr


def run_captured(cmd: list[str], env: dict | None, timeout_s: float, stdout: bool = True,
                 cwd: Path | None = None) -> tuple[int | None, str, str]:
    """Run cmd in its own process group; (exit status, stdout, stderr), status None on a timeout.

    On a timeout or an interrupt the whole group is killed: a framework's helper processes
    (compile workers, loader workers) must not outlive the run that started them. Ctrl-C is
    acted on within WAIT_SLICE_S, whichever of this process's threads the signal reached.
    """
    proc = None
    try:
        with interrupts_deferred():
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                out, err = proc.communicate(timeout=max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic())))
                return proc.returncode, out or "", err
            except subprocess.TimeoutExpired:  # a slice ended: signals get their turn, then wait on
                if time.monotonic() >= deadline:
                    break
        kill_tree(proc)
        out, err = proc.communicate()
        return None, out or "", err
    except BaseException:  # Ctrl-C: no orphan left running
        if proc is not None:
            kill_tree(proc)
        raise


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be, so that every path that
    cleans up after Ctrl-C (children killed, finished runs kept) cleans up after them too."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process that the signal ended: 130 for Ctrl-C,
    143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (timeout, job schedulers, docker stop, a closed terminal) raise Stopped in
    the main thread. A signal this process was started with ignored stays ignored, as SIGINT does in
    a background job and SIGHUP under nohup: whoever started it asked for that."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise_stopped)


def _raise_stopped(signum, frame):
    raise Stopped(signum)


# The signals whose Python handlers raise (Ctrl-C's, and stop_on_signals' where installed)
DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C (or SIGTERM, SIGHUP) inside the block is raised at its end, once the processes it
    starts are known.

    A KeyboardInterrupt inside subprocess.Popen, after the fork and before Popen returns,
    would leave a child that no one can kill. Outside the main thread (where Python cannot
    set handlers) the block runs as it is; a signal that is ignored stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {signum: signal.getsignal(signum) for signum in DEFERRED}
    for signum, handler in previous.items():
        if callable(handler):
            signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if callable(handler):
                signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt if received[0] == signal.SIGINT else Stopped(received[0])


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while chosen, so all distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def data_parallel_launch(launcher: str, args: list[str], out: Path, cfg: RunConfig, env: dict, hosts=None):
    """The commands and environments of a W-worker run on loopback, rank 0 writing `out`;
    with `hosts` (common.hosts.TwoHosts), docs/data-parallel.md's multi-machine commands, one per host.

    torchrun: one launcher process that starts the W workers (c10d rendezvous on 127.0.0.1).
    tf_config: W processes, each told the whole cluster and its own index through TF_CONFIG.
    jax_coordinator: W processes, each told the coordinator (process 0's), W and its own id.
    """
    if hosts is not None:
        return _two_host_launch(launcher, args, out, cfg, env, hosts)
    env = {**env, "GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}  # loopback only
    if launcher == "torchrun":
        port = free_ports(1)[0]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(cfg.workers),
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--max-restarts", "0",
               "-m", *args, "--json", str(out)]
        return [cmd], [env]
    if launcher == "tf_config":
        cluster = [f"127.0.0.1:{port}" for port in free_ports(cfg.workers)]
        cmds = [[sys.executable, "-m", *args] + (["--json", str(out)] if index == 0 else [])
                for index in range(cfg.workers)]
        envs = [{**env, "TF_CONFIG": json.dumps({"cluster": {"worker": cluster},
                                                 "task": {"type": "worker", "index": index}})}
                for index in range(cfg.workers)]
        return cmds, envs
    if launcher == "jax_coordinator":
        coordinator = f"127.0.0.1:{free_ports(1)[0]}"
        cmds = [[sys.executable, "-m", *args] + (["--json", str(out)] if index == 0 else [])
                for index in range(cfg.workers)]
        envs = [{**env, "JAX_COORDINATOR_ADDRESS": coordinator, "JAX_NUM_PROCESSES": str(cfg.workers),
                 "JAX_PROCESS_ID": str(index)} for index in range(cfg.workers)]
        return cmds, envs
    raise ValueError(f"unknown launcher {launcher!r}")


# Fixed ports are safe across hosts: each namespace has its own, all free.
RENDEZVOUS_PORT, TF_PORT, JAX_PORT = 29500, 23456, 23457


def _two_host_launch(launcher: str, args: list[str], out: Path, cfg: RunConfig, env: dict, hosts):
    """W workers, W/2 on each of two hosts, started as docs/data-parallel.md's across-machines section says:
    one torchrun per host (--node-rank), or one process per worker with TF_CONFIG / the JAX
    coordinator naming the hosts' addresses. Gloo and NCCL use each host's own interface;
    TensorFlow's collectives reach the addresses in TF_CONFIG, so it needs no setting."""
    if cfg.workers % 2:
        raise ValueError(f"--workers {cfg.workers} over 2 hosts: it must be even")
    per_host = cfg.workers // 2
    envs = [{**env, "GLOO_SOCKET_IFNAME": hosts.interfaces[h], "NCCL_SOCKET_IFNAME": hosts.interfaces[h]}
            for h in range(2)]
    if launcher == "torchrun":
        # Both namespaces share the machine's hostname, which resolves outside them, so the two
        # things torchrun infers from it are said: which agent hosts the rendezvous store
        # (is_host), and each agent's own address for its workers (--local-addr).
        cmds = [hosts.command(h, [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                                  "--nproc-per-node", str(per_host), "--node-rank", str(h),
                                  "--rdzv-backend", "c10d", "--rdzv-endpoint", f"{hosts.address(0)}:{RENDEZVOUS_PORT}",
                                  "--rdzv-conf", f"is_host={'true' if h == 0 else 'false'}",
                                  "--local-addr", hosts.address(h), "--max-restarts", "0",
                                  "-m", *args, "--json", str(out)]) for h in range(2)]
        return cmds, envs
    placement = [h for h in range(2) for _ in range(per_host)]  # worker index -> its host
    if launcher == "tf_config":
        cluster = [f"{hosts.address(h)}:{TF_PORT + i % per_host}" for i, h in enumerate(placement)]
        cmds = [hosts.command(h, [sys.executable, "-m", *args] + (["--json", str(out)] if i == 0 else []))
                for i, h in enumerate(placement)]
        return cmds, [{**envs[h], "TF_CONFIG": json.dumps({"cluster": {"worker": cluster},
                                                           "task": {"type": "worker", "index": i}})}
                      for i, h in enumerate(placement)]
    if launcher == "jax_coordinator":
        cmds = [hosts.command(h, [sys.executable, "-m", *args] + (["--json", str(out)] if i == 0 else []))
                for i, h in enumerate(placement)]
        return cmds, [{**envs[h], "JAX_COORDINATOR_ADDRESS": f"{hosts.address(0)}:{JAX_PORT}",
                       "JAX_NUM_PROCESSES": str(cfg.workers), "JAX_PROCESS_ID": str(i)}
                      for i, h in enumerate(placement)]
    raise ValueError(f"unknown launcher {launcher!r}")


def run_group(cmds: list[list[str]], envs: list[dict],
              timeout_s: float) -> tuple[int | None, str, str | None]:
    """Run processes that only finish together: (0, stderr of the first, None) when all succeed,
    (status, its stderr, the harness's account of it) of the one that failed, (None, stderr of the
    first, None) on a timeout. The account names the worker and how it ended (or, for torchrun,
    the worker its report says failed first), whatever the framework printed.

    A worker that dies leaves the others waiting in a collective for ever, so the first
    failure (or the timeout, or Ctrl-C) kills every process of the group and its helpers.
    """
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        logs = [stack.enter_context(open(Path(tmp) / f"worker{i}.err", "w+")) for i in range(len(cmds))]
        procs = []
        try:
            with interrupts_deferred():
                for cmd, env, log in zip(cmds, envs, logs):
                    procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                                  start_new_session=True))
            deadline = time.monotonic() + timeout_s
            while True:
                codes = [p.poll() for p in procs]
                failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
                if failed or all(code == 0 for code in codes) or time.monotonic() > deadline:
                    break
                time.sleep(WAIT_SLICE_S / 2)
            if failed:  # a peer's death reaches the others as their own error: let each say how it ended
                settle = time.monotonic() + PEERS_SETTLE_S
                while any(code is None for code in codes) and time.monotonic() < settle:
                    time.sleep(WAIT_SLICE_S / 2)
                    codes = [p.poll() for p in procs]
                failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        finally:  # every path, Ctrl-C included: nothing outlives the run
            for proc in procs:
                kill_tree(proc)
        stderrs = []
        for log in logs:
            log.seek(0)
            stderrs.append(log.read())
    if not failed:
        return (0 if all(code == 0 for code in codes) else None), stderrs[0], None
    # A worker killed by a signal is the cause; the others' errors (a peer gone) are its effect
    i = next((i for i in failed if codes[i] < 0), failed[0])
    lines = [line for line in stderrs[i].splitlines() if line.strip("=- ")]
    if len(procs) > 1 and codes[i] < 0:  # killed (a host that died): what it printed before is not why
        return codes[i], stderrs[i], f"worker {i} of {len(procs)} was killed ({signal.Signals(-codes[i]).name})"
    if len(procs) > 1:
        said = f": {lines[-1]}" if lines else ""
        return codes[i], stderrs[i], f"worker {i} of {len(procs)} exited with status {codes[i]}{said}"
    return codes[i], stderrs[i], _torchrun_root_cause(stderrs[i])


def _torchrun_root_cause(stderr: str) -> str | None:
    """torchrun's report names the worker that failed first; its last line is only a URL."""
    match = re.search(r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", stderr, re.DOTALL)
    return f"worker {match[1]} failed first (its exit status {match[2]}; torchrun stopped the rest)" if match else None


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc): launchers such as torchrun start their workers
    in sessions of their own, out of reach of a signal to the launcher's process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """proc, its process group and every process below it, killed; proc reaped."""
    kill_group(proc.pid, below=proc.poll() is None)  # its helpers too, even after the leader has exited
    proc.wait()
