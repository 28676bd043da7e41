"""Data-parallel across two hosts: network namespaces joined by a veth pair (common/hosts.py), docs/data-parallel.md's
multi-machine commands run one per host, float64 equality, a host that dies, a link that goes down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from common import hosts
from common.equivalence import FACTOR
from common.launch import child_env, config_flags, data_parallel_launch, run_one
from common.runner import apply_verdict
from implementations import REGISTRY
from tests.conftest import small_config

pytestmark = pytest.mark.slow  # two network namespaces, links shaped and cut

REASON = hosts.unavailable_reason()
needs_namespaces = pytest.mark.skipif(REASON is not None, reason=f"two-host tests need network namespaces: {REASON}")

ENGINES = ["torch", "tensorflow"]
# What a data-parallel run leaves running if it leaks: its launcher and its workers.
PROCESS_MARKS = ("torch.distributed.run", "implementations.pytorch_ddp", "implementations.tensorflow_multiworker")


def _engine(framework: str):
    impl = REGISTRY[framework]
    if impl.missing():
        pytest.skip(f"{framework} not installed")
    return impl


def _running(marks=PROCESS_MARKS) -> list[int]:
    """Live processes (not zombies) whose command line holds one of the marks."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            alive = "\nState:\tZ" not in (proc / "status").read_text()
        except OSError:
            continue
        if alive and any(mark in cmdline for mark in marks) and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


@pytest.fixture
def nothing_left_behind():
    """Before and after each test: no namespace of ours and no data-parallel process anywhere."""
    assert hosts.leftovers() == [] and _running() == []
    yield
    assert hosts.leftovers() == [], "a namespace outlived its test"
    assert _running() == [], "a data-parallel process outlived its test"


@needs_namespaces
def test_the_hosts_reach_each_other_over_the_link_and_nothing_else(nothing_left_behind):
    with hosts.TwoHosts(link_gbit=1) as two:
        server = subprocess.Popen(two.command(0, [sys.executable, "-c", (
            "import socket, sys\n"
            "s = socket.create_server(('0.0.0.0', 5000)); print('ready', flush=True)\n"
            "c, peer = s.accept(); print(peer[0], flush=True)")]), stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        connect = ("import socket, sys\n"
                   "try:\n    socket.create_connection((sys.argv[1], 5000), timeout=2); print('connected')\n"
                   "except OSError as e:\n    print(type(e).__name__)")
        reach = lambda host, address: subprocess.run(  # noqa: E731
            two.command(host, [sys.executable, "-c", connect, address]), capture_output=True, text=True).stdout.strip()
        assert reach(1, "127.0.0.1") != "connected"  # host 1's loopback is its own, not host 0's
        assert reach(1, two.address(0)) == "connected"  # over the veth link
        assert server.communicate(timeout=10)[0].strip() == two.address(1)
        # the link's ends live in the namespaces only: this (root) namespace has neither them nor their subnet
        root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert hosts.SUBNET not in root and not any(f" {name}" in root for name in two.interfaces)
        routes = subprocess.run(["ip", "-n", two.names[1], "route"], capture_output=True, text=True).stdout
        assert routes.split()[:1] == ["10.213.0.0/24"] and "default" not in routes  # nothing routed outside
        qdisc = subprocess.run(["tc", "-n", two.names[0], "qdisc", "show", "dev", two.interfaces[0]],
                               capture_output=True, text=True).stdout
        assert "tbf" in qdisc and "rate 1Gbit" in qdisc


@needs_namespaces
def test_leaving_the_block_on_an_exception_kills_its_processes_and_removes_the_hosts(nothing_left_behind):
    with pytest.raises(RuntimeError, match="the test failed here"):
        with hosts.TwoHosts() as two:
            sleeper = subprocess.Popen(two.command(1, ["sleep", "600"]))
            raise RuntimeError("the test failed here")
    assert sleeper.wait(timeout=10) == -9
    assert hosts.leftovers() == []


@needs_namespaces
@pytest.mark.parametrize("framework", ENGINES)
def test_readme_commands_on_two_hosts_match_the_reference_in_float64(framework, references, nothing_left_behind):
    impl = _engine(framework)
    cfg = small_config(dtype="float64", workers=2, threads=2)
    with hosts.TwoHosts() as two:
        result = apply_verdict(run_one(impl, impl.distributed.variant, cfg, timeout_s=300, hosts=two), references(cfg))
    assert result.status == "ok", result.error
    assert len(result.losses) == cfg.steps and result.world_size == 2
    assert result.x_noise <= FACTOR["float64"] and result.weights_x_noise <= FACTOR["float64"]


def _link_packets(two: hosts.TwoHosts, host: int) -> int:
    """Packets host's end of the link has sent and received so far."""
    listed = subprocess.run(["ip", "-n", two.names[host], "-j", "-s", "link", "show", two.interfaces[host]],
                            capture_output=True, text=True).stdout
    stats = json.loads(listed)[0]["stats64"]
    return stats["rx"]["packets"] + stats["tx"]["packets"]


# Steps' collectives cross the link hundreds of times a second; start-up (import, rendezvous, the
# strategy's server) a handful: past this rate the workers are training.
TRAINING_PACKETS_PER_S = 100


def _when_training(two: hosts.TwoHosts, module: str, then, settle_s: float = 10.0) -> threading.Thread:
    """In the background: once host 1's worker process runs, wait settle_s (past its import and the
    rendezvous, here about 5 s), then until the link carries the steps' collectives, and call then():
    the run is mid-way through its steps. Waiting for the traffic, not for a fixed time, matters on
    one core, where TF's start-up can outlast settle_s, and a peer that dies before the collective
    group forms leaves host 0 waiting for it with no error of its own."""

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(pid in two.pids(1) for pid in _running((module,))):
                time.sleep(settle_s)
                while time.monotonic() < deadline:
                    before = _link_packets(two, 1)
                    time.sleep(1.0)
                    if _link_packets(two, 1) - before >= TRAINING_PACKETS_PER_S:
                        break
                then()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# Long enough that the fault always comes mid-run: about 10 minutes of steps between the hosts.
FAULT_STEPS = 300_000


@needs_namespaces
@pytest.mark.parametrize("framework", ENGINES)
def test_a_host_that_dies_mid_run_is_a_failed_row_on_the_first_within_the_timeout(framework, nothing_left_behind):
    impl = _engine(framework)
    module = impl.distributed.module
    cfg = small_config(workers=2, threads=2, steps=FAULT_STEPS)
    timeout_s = 90
    start = time.monotonic()
    with hosts.TwoHosts() as two:
        killer = _when_training(two, module, lambda: two.kill(1))
        result = run_one(impl, impl.distributed.variant, cfg, timeout_s=timeout_s, hosts=two)
        killer.join(timeout=1)
    elapsed = time.monotonic() - start
    assert result.status == "failed" and result.error, result
    assert elapsed < timeout_s + 15
    # reported before the timeout, in the harness's own words first, whichever framework's error (host 0's
    # report of its peer gone: gloo's "Connection closed by peer", TF's "Socket closed") arrived first
    assert "worker 1 of 2 was killed (SIGKILL)" in result.error.split(";")[0], result.error


@needs_namespaces
@pytest.mark.parametrize("framework", ENGINES)
def test_the_first_host_notices_by_itself_that_the_second_died(framework, tmp_path, nothing_left_behind):
    """Without the harness watching both: host 0's own launcher exits with an error of its own."""
    impl = _engine(framework)
    cfg = small_config(workers=2, threads=2, steps=FAULT_STEPS)
    args = [impl.distributed.module, "--variant", impl.distributed.variant, *config_flags(cfg), "--no-check"]
    with hosts.TwoHosts() as two:
        cmds, envs = data_parallel_launch(impl.distributed.launcher, args, tmp_path / "r.json", cfg,
                                          child_env(cfg, dict(impl.env)), two)
        first, second = (subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                         for cmd, env in zip(cmds, envs))
        _when_training(two, impl.distributed.module, lambda: two.kill(1)).join(timeout=120)
        assert second.wait(timeout=10) == -9
        code = first.wait(timeout=60)  # on its own: nothing here signals it
        stderr = first.stderr.read()
    # torchrun: its worker failed (ChildFailedError); TF: its runtime's own error (UnavailableError, the
    # collective's peer gone, when the kill lands in a step; another of tf.errors when it lands elsewhere)
    assert code not in (0, None) and ("ChildFailedError" in stderr or "errors_impl." in stderr), stderr[-2000:]


@needs_namespaces
def test_a_link_that_goes_down_mid_run_is_a_failed_row_at_the_timeout(nothing_left_behind):
    impl = _engine("torch")
    cfg = small_config(workers=2, threads=2, steps=FAULT_STEPS)
    timeout_s = 40
    start = time.monotonic()
    with hosts.TwoHosts() as two:
        cutter = _when_training(two, impl.distributed.module, lambda: two.set_link(1, up=False))
        result = run_one(impl, impl.distributed.variant, cfg, timeout_s=timeout_s, hosts=two)
        cutter.join(timeout=1)
    elapsed = time.monotonic() - start
    # No reset comes back over a dead link: the workers wait in their collective until --timeout.
    assert result.status == "failed" and f"timed out after {timeout_s:g} s" in result.error, result.error
    assert timeout_s <= elapsed < timeout_s + 15


@needs_namespaces
def test_compare_runs_the_workers_on_two_hosts_over_a_limited_link(cli, tmp_path, nothing_left_behind):
    _engine("torch")
    proc = cli("compare.py", "--frameworks", "numpy,torch,jax", "--workers", "2", "--hosts", "2", "--link-gbit", "10",
               "--dtype", "float64", "--batch", "8", "--d-in", "20", "--hidden", "6", "--d-out", "3", "--steps", "30",
               "--lr", "1e-3", "--warmup", "2", "--rounds", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    two_hosts = [r for r in runs if r["world_size"] == 2]
    assert [r["framework"] for r in two_hosts] == ["torch"] and two_hosts[0]["status"] == "ok"
    assert "over 2 hosts (1 worker(s) each), link 10 Gbit/s" in two_hosts[0]["note"]
    jax = [r for r in runs if r["framework"] == "jax"]
    assert jax and jax[0]["status"] == "skipped" and "--hosts 2: JAX's gloo" in jax[0]["error"]


def test_compare_refuses_hosts_it_cannot_make_in_one_line(cli):
    for args, message in ((["--hosts", "3"], "--hosts must be 1 (loopback) or 2"),
                          (["--hosts", "2"], "--hosts 2 needs --workers W, even and >= 2"),
                          (["--link-gbit", "1"], "--link-gbit limits the link between two hosts"),
                          (["--hosts", "2", "--workers", "2", "--link-gbit", "-1"], "--link-gbit must be > 0")):
        proc = cli("compare.py", *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, args


def _readme_command(start: str) -> list[str]:
    """The data-parallel page's multi-machine command that begins with `start`, its continuation lines joined."""
    import shlex

    text = (Path(__file__).resolve().parent.parent / "docs" / "data-parallel.md").read_text()
    begin = text.index(start)
    end = text.index("\n", text.index(" --json out.json", begin))
    return shlex.split(text[begin:end].replace("\\\n", " "))


def _option_pairs(argv: list[str]) -> set[tuple[str, str]]:
    return {(flag, value) for flag, value in zip(argv, argv[1:]) if flag.startswith("-")}


def test_the_harness_runs_readmes_multi_machine_commands(tmp_path):
    """What compare.py --hosts 2 starts on the first host is docs/data-parallel.md's command for it (plus the run's
    own flags: its config, --no-check, where the weights go)."""
    from common.config import RunConfig

    two = hosts.TwoHosts()  # not entered: no namespace is made, only the names and addresses
    cfg = RunConfig(workers=2, dtype="float64")
    args = ["implementations.pytorch_ddp", "--variant", "ddp", *config_flags(cfg), "--no-check"]
    cmds, envs = data_parallel_launch("torchrun", args, tmp_path / "out.json", cfg, {}, two)
    readme = _readme_command("torchrun --nnodes 2")
    readme = [token.replace("HOST0", two.address(0)).replace("HOST", two.address(0)) for token in readme]
    launched = cmds[0][cmds[0].index("torch.distributed.run") + 1:]
    missing = _option_pairs(readme[1:]) - _option_pairs(launched) - {("--json", "out.json")}
    assert not missing, f"the page's torchrun flags the harness does not pass: {missing}"
    assert envs[0]["GLOO_SOCKET_IFNAME"] == two.interfaces[0] and cmds[0][:4] == ["ip", "netns", "exec", two.names[0]]

    args = ["implementations.tensorflow_multiworker", "--variant", "multiworker", *config_flags(cfg), "--no-check"]
    cmds, envs = data_parallel_launch("tf_config", args, tmp_path / "out.json", cfg, {}, two)
    readme = _readme_command("TF_CONFIG='")
    tf_config = readme[0].removeprefix("TF_CONFIG=").replace("HOST0", two.address(0)).replace("HOST1", two.address(1))
    assert json.loads(tf_config) == json.loads(envs[0]["TF_CONFIG"])
    missing = _option_pairs(readme[1:]) - _option_pairs(cmds[0]) - {("--json", "out.json")}
    assert not missing and "implementations.tensorflow_multiworker" in cmds[0]
