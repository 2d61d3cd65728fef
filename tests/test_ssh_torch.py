"""A real two-node `distributed: torchrun` job through the ssh backend: a torch.distributed all-reduce over gloo.

Preferred hosts: two network namespaces, each with its own sshd, reached from the root namespace (where the
launcher runs) over one veth each, and linked to each other by a veth pair named `lnk0` on both sides: the
nodes' traffic (torchrun's store on host 0's `internal_address`, gloo) goes over that link only. When namespaces
cannot be made (not root, no `ip netns`), the hosts are two sshds on 127.0.0.2 and 127.0.0.3 instead. The test
prints which ran (`pytest -s`) and records it as the user property `hosts_variant`; `SSH_TORCH_HOSTS=loopback`
forces the fallback.

torch (CPU) is a hard requirement: ci/test installs it into the venv, the job runs the venv's `torchrun`.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import fakes.sshd as sshd_harness
from fakes.sshd import SSHServer, netns_available
from helpers import job_script

SUBMITTED = re.compile(r"submitted (\S+) to ssh")
VENV_BIN = Path(sys.executable).parent
LINK = "lnk0"          # the node-to-node interface, same name in both namespaces (GLOO_SOCKET_IFNAME)
NS_SSH_PORT = 2222     # not 22: known_hosts spells port 22 without brackets, the harness writes [addr]:port



def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def _free_subnet() -> str:
    """A 10.a.b.0/28 that no address or route here mentions (the addresses live only in our namespaces)."""
    used = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
    for _ in range(100):
        prefix = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}."
        if prefix not in used:
            return prefix
    raise RuntimeError("no free 10.x subnet")


class NetnsSSHServer(SSHServer):
    """The harness's sshd, started inside network namespace `netns` (`ip netns exec` execs, so the pid the
    harness holds is sshd's own and its stop() works unchanged). The readiness probe runs from the root
    namespace, which reaches `address` over a veth."""

    def __init__(self, netns: str, address: str, **kwargs: object) -> None:
        super().__init__(address, port=NS_SSH_PORT, **kwargs)
        self.netns = netns

    def _launch_and_wait(self) -> str | None:
        wrapper = self.dir / "sshd-in-netns"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {self.netns} {sshd_harness.SSHD} "$@"\n')
        wrapper.chmod(0o700)
        real, sshd_harness.SSHD = sshd_harness.SSHD, str(wrapper)
        try:
            return super()._launch_and_wait()
        finally:
            sshd_harness.SSHD = real


@contextmanager
def _netns_pair() -> Iterator[list[tuple[str, str, str]]]:
    """Two namespaces; yields [(netns, address for ssh from here, internal address on lnk0)] per host.

    root --veth /30--> ns0 (.2)     root --veth /30--> ns1 (.6)     ns0 lnk0 (.9) <--veth /30--> ns1 lnk0 (.10)
    """
    tag = f"{os.getpid() % 100000}{random.randint(0, 99)}"
    names = [f"launch-t{tag}-0", f"launch-t{tag}-1"]
    roots = [f"lt{tag}r0", f"lt{tag}r1", f"lt{tag}x"]  # veth ends made in the root ns (<= 15 characters)
    made: list[str] = []
    try:
        net = _free_subnet()
        for index, ns in enumerate(names):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", roots[index], "type", "veth", "peer", "name", "h0", "netns", ns)
            _ip("addr", "add", f"{net}{4 * index + 1}/30", "dev", roots[index])
            _ip("link", "set", roots[index], "up")
            _ip("-n", ns, "addr", "add", f"{net}{4 * index + 2}/30", "dev", "h0")
            for dev in ("lo", "h0"):
                _ip("-n", ns, "link", "set", dev, "up")
        link = roots[2]
        _ip("link", "add", link, "type", "veth", "peer", "name", LINK, "netns", names[1])
        _ip("link", "set", link, "netns", names[0])
        _ip("-n", names[0], "link", "set", link, "name", LINK)
        for index, ns in enumerate(names):
            _ip("-n", ns, "addr", "add", f"{net}{9 + index}/30", "dev", LINK)
            _ip("-n", ns, "link", "set", LINK, "up")
        yield [(ns, f"{net}{4 * index + 2}", f"{net}{9 + index}") for index, ns in enumerate(names)]
    finally:
        for ns in made:  # the job's processes (detached by setsid) may outlive the sshd: they hold the namespace
            for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for dev in roots:
            _ip("link", "del", dev, check=False)
        for ns in made:
            _ip("netns", "delete", ns, check=False)


@contextmanager
def _two_hosts() -> Iterator[tuple[str, list[SSHServer], list[str], str]]:
    """(variant, servers, internal addresses, gloo interface)."""
    forced = os.environ.get("SSH_TORCH_HOSTS", "")
    with ExitStack() as stack:
        hosts = None
        if forced != "loopback" and (forced == "netns" or netns_available()):
            try:
                hosts = stack.enter_context(_netns_pair())
            except RuntimeError as exc:  # e.g. no veth support: namespaces cannot be wired up here
                if forced == "netns":
                    raise
                print(f"\nssh torch test: network namespaces unusable ({exc}); falling back to loopback")
        if hosts is not None:
            servers = [stack.enter_context(NetnsSSHServer(ns, address)) for ns, address, _ in hosts]
            yield "netns", servers, [internal for _, _, internal in hosts], LINK
        else:
            servers = [stack.enter_context(SSHServer(address)) for address in ("127.0.0.2", "127.0.0.3")]
            yield "loopback", servers, [s.address for s in servers], "lo"


def test_torchrun_allreduce_across_two_ssh_hosts(cli, write_spec, tmp_path, record_property):
    assert (VENV_BIN / "torchrun").exists(), f"no torchrun in {VENV_BIN}: ci/test installs torch==2.13.0"
    code = tmp_path / "src"
    code.mkdir()
    job_script("allreduce.py", code)
    t0 = time.monotonic()
    with _two_hosts() as (variant, servers, internal, iface):
        setup_s = time.monotonic() - t0
        record_property("hosts_variant", variant)
        print(f"\nssh torch test: hosts = {variant} "
              f"({', '.join(f'{s.host_spec} internal {a}' for s, a in zip(servers, internal, strict=True))}), "
              f"gloo over {iface}; set up in {setup_s:.1f}s")
        both = tmp_path / "both.config"
        both.write_text("".join(f"Include {s.ssh_config}\n" for s in servers))
        hosts = "".join(f"      - address: {s.host_spec}\n        internal_address: {a}\n"
                        for s, a in zip(servers, internal, strict=True))
        spec = write_spec(
            "name: allreduce\nresources:\n  nodes: 2\ndistributed: torchrun\ncode: ./src\n"
            "run: python allreduce.py\n"
            f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n  GLOO_SOCKET_IFNAME: {iface}\n"
            f"backends:\n  ssh:\n    hosts:\n{hosts}    ssh_config: {both}\n"
            f"    remote_root: {servers[0].remote_root}\n    cancel_grace: 2s\n")
        t1 = time.monotonic()
        result = cli("run", str(spec), "--backend", "ssh", "--follow", timeout=120)
        run_s = time.monotonic() - t1
        print(f"ssh torch test ({variant}): launch run --follow took {run_s:.1f}s")
        context = (f"[hosts: {variant}] launch run exited {result.returncode}\n"
                   f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        assert result.returncode == 0, context
        for rank in (0, 1):
            assert re.search(rf"^\[node {rank}\] allreduce ok sum=3 rank={rank} node={rank} "
                             rf"master={re.escape(internal[0])}$", result.stdout, re.M), context
        job = SUBMITTED.search(result.stdout).group(1)
        record = json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)
        assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0, f"[hosts: {variant}] {record}"
