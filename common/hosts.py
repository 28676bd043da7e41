"""Two hosts on one Linux machine: network namespaces joined by a veth pair, optionally rate-limited.

Each namespace has its own network stack: its own interface, address and loopback, so processes
started in it reach the other host only over the veth link, as two machines reach each other
over a cable. Nothing is routed outside the pair. Needs root and iproute2 (`ip`, `tc`).

    with TwoHosts(link_gbit=1) as hosts:
        subprocess.run(hosts.command(1, ["ping", "-c1", hosts.address(0)]))

Leaving the block (normally, on an exception, on Ctrl-C) kills every process still in either
namespace and deletes both; the veth pair goes with them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time

PREFIX = "fourways-"  # every namespace this module makes; leftovers() finds them by it
SUBNET = "10.213.0"  # host i is SUBNET.(i+1)/24, inside the namespaces only
_serial = itertools.count()


def unavailable_reason() -> str | None:
    """None when this process can make network namespaces, else why not."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "network namespaces and veth pairs need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install iproute2)"
    probe = f"{PREFIX}probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def leftovers() -> list[str]:
    """Namespaces of this module that still exist (none, after every TwoHosts has closed)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(PREFIX)]


def link_name(gbit: float | None) -> str:
    """How a link's limit reads in tables and notes."""
    return "unlimited" if gbit is None else f"{gbit:g} Gbit/s"


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


def _ip(*args: str) -> None:
    _run("ip", *args)


def tbf_burst_bytes(rate_bit_s: float) -> int:
    """tc tbf's bucket: 1 ms of the rate, and never below 128 KiB, two of the 64 KiB segments
    that veth hands over whole (segmentation offload); a smaller bucket drops them."""
    return max(int(rate_bit_s / 8 * 1e-3), 128 * 1024)


class TwoHosts:
    """Namespaces host 0 and host 1, one veth end in each (SUBNET.1 and SUBNET.2), both lo up.
    `link_gbit`: each end's egress limited to that many Gbit/s by a tbf qdisc (None: unlimited)."""

    def __init__(self, link_gbit: float | None = None):
        tag = f"{os.getpid()}-{next(_serial)}"
        self.names = [f"{PREFIX}{tag}-h{i}" for i in range(2)]
        # interface names are at most 15 bytes; unique per namespace is enough, and each has its own
        self.interfaces = ["fw0", "fw1"]
        self.link_gbit = link_gbit

    def address(self, host: int) -> str:
        return f"{SUBNET}.{host + 1}"

    def __enter__(self) -> TwoHosts:
        try:
            for name in self.names:
                _ip("netns", "add", name)
            _ip("link", "add", self.interfaces[0], "netns", self.names[0], "type", "veth",
                "peer", "name", self.interfaces[1], "netns", self.names[1])
            for host, (name, interface) in enumerate(zip(self.names, self.interfaces)):
                _ip("-n", name, "addr", "add", f"{self.address(host)}/24", "dev", interface)
                _ip("-n", name, "link", "set", interface, "up")
                _ip("-n", name, "link", "set", "lo", "up")
                if self.link_gbit is not None:
                    rate = self.link_gbit * 1e9
                    _run("tc", "-n", name, "qdisc", "add", "dev", interface, "root", "tbf", "rate", f"{rate:.0f}bit",
                         "burst", str(tbf_burst_bytes(rate)), "latency", "100ms")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def command(self, host: int, cmd: list[str]) -> list[str]:
        """cmd run on `host` (ip netns exec execs it: the process is cmd itself, in that namespace)."""
        return ["ip", "netns", "exec", self.names[host], *cmd]

    def pids(self, host: int) -> list[int]:
        """Every process in host's namespace."""
        listed = subprocess.run(["ip", "netns", "pids", self.names[host]], capture_output=True, text=True).stdout
        return [int(pid) for pid in listed.split()]

    def kill(self, host: int) -> None:
        """SIGKILL every process on `host`: the machine dies, its connections with it."""
        for pid in self.pids(host):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def set_link(self, host: int, up: bool) -> None:
        """`host`'s end of the cable up or down: down, the peer's packets go nowhere and no reset comes back."""
        _ip("-n", self.names[host], "link", "set", self.interfaces[host], "up" if up else "down")

    def close(self) -> None:
        """Kill what runs in the namespaces, then delete them (and so the veth pair); idempotent."""
        existing = set(leftovers())
        for host, name in enumerate(self.names):
            if name in existing:
                self.kill(host)
        deadline = time.monotonic() + 10
        for host, name in enumerate(self.names):
            while name in existing and self.pids(host) and time.monotonic() < deadline:
                time.sleep(0.05)  # a namespace is freed once its last process has gone
            if name in existing:
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
