"""The real-sshd harness (tests/fakes/sshd.py) does what the SSH backend tests rely on."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.sshd import SSHServer, netns_available, sshd_available

pytestmark = pytest.mark.skipif(not sshd_available(), reason="needs openssh-server + openssh-client (see ci/test)")


@pytest.fixture(scope="module")
def server() -> Iterator[SSHServer]:
    with SSHServer() as srv:
        yield srv


def ssh(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_login_by_alias_plain_address_and_options(server: SSHServer) -> None:
    result = server.run("echo ok")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
    by_alias = ssh(*server.ssh_args(), server.alias, "echo ok")
    assert by_alias.stdout == "ok\n", by_alias.stderr
    plain = ssh(*server.ssh_args(), "-p", str(server.port), f"{server.user}@{server.address}", "echo ok")
    assert plain.stdout == "ok\n", plain.stderr
    no_config = ssh("-F", "/dev/null", *server.ssh_options(), server.address, "echo ok")
    assert no_config.stdout == "ok\n", no_config.stderr
    assert server.host_spec == f"{server.user}@127.0.0.1:{server.port}"


def test_startup_is_fast(server: SSHServer) -> None:
    assert server.startup_seconds is not None
    print(f"sshd ready (keys + config + sshd + first login) in {server.startup_seconds:.3f} s")
    assert server.startup_seconds < 5


def test_session_home_is_remote_root_but_cwd_is_passwd_home(server: SSHServer) -> None:
    result = server.run('echo "$HOME"; pwd; touch ~/marker')
    home, cwd = result.stdout.splitlines()
    assert home == str(server.remote_root)
    assert (server.remote_root / "marker").exists()
    assert cwd == pwd.getpwnam(server.user).pw_dir  # sshd always chdirs to the passwd home


def test_wrong_or_unknown_host_key_is_refused(server: SSHServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(other)], check=True)
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[{server.address}]:{server.port} {key_type} {key}\n")
    result = ssh(*server.ssh_args(), "-o", f"UserKnownHostsFile={wrong}", server.alias, "echo ok")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert "ok" not in result.stdout

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    result = ssh(*server.ssh_args(), "-o", f"UserKnownHostsFile={empty}", server.alias, "echo ok")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert empty.read_text() == ""  # StrictHostKeyChecking=yes never adds the key


def test_second_server_on_another_loopback_address(server: SSHServer, tmp_path: Path) -> None:
    with SSHServer(address="127.0.0.2") as second:
        print(f"second sshd ready in {second.startup_seconds:.3f} s")
        assert second.alias != server.alias and second.remote_root != server.remote_root
        result = second.run("echo ok from $SSH_CONNECTION")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-2:] == ["127.0.0.2", str(second.port)]
        # One client config for both "hosts" (as a user's ~/.ssh/config would have them):
        combined = tmp_path / "ssh_config"
        combined.write_text(f"Include {server.ssh_config} {second.ssh_config}\n")
        for srv in (server, second):
            out = ssh("-F", str(combined), srv.alias, "echo $HOME")
            assert out.stdout.strip() == str(srv.remote_root), out.stderr


def test_scp_and_rsync_reach_remote_root(server: SSHServer, tmp_path: Path) -> None:
    src = tmp_path / "payload.txt"
    src.write_text("payload\n")
    scp = subprocess.run(["scp", "-q", *server.ssh_args(), str(src), f"{server.alias}:{server.remote_root}/by_scp"],
                         capture_output=True, text=True, timeout=30)
    assert scp.returncode == 0, scp.stderr
    assert (server.remote_root / "by_scp").read_text() == "payload\n"
    if shutil.which("rsync") is None:
        pytest.skip("rsync not installed")
    rsync = subprocess.run(["rsync", "-a", "-e", f"ssh -F {server.ssh_config}", str(src),
                            f"{server.alias}:{server.remote_root}/by_rsync"], capture_output=True, text=True,
                           timeout=30)
    assert rsync.returncode == 0, rsync.stderr
    assert (server.remote_root / "by_rsync").read_text() == "payload\n"


def test_kill_connections_drops_live_session_but_keeps_listening(server: SSHServer) -> None:
    proc = subprocess.Popen(["ssh", *server.ssh_args(), server.alias, "echo started; sleep 5; echo late"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"  # the remote command is running
        assert server.connection_count() == 1
        t0 = time.monotonic()
        assert server.kill_connections() >= 1
        out, err = proc.communicate(timeout=4)
        assert proc.returncode == 255, (proc.returncode, err)  # ssh's "connection lost" code
        assert "late" not in out
        assert time.monotonic() - t0 < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    again = server.run("echo again")
    assert (again.returncode, again.stdout) == (0, "again\n"), again.stderr


def test_control_master_with_short_control_path(server: SSHServer) -> None:
    ctl_dir = tempfile.mkdtemp(prefix="ls", dir="/tmp")  # unix socket paths must stay under ~104 chars
    control = ["-o", f"ControlPath={ctl_dir}/%C"]
    try:
        # A backgrounded master keeps the std streams it was given: hand it none, or run() waits for it.
        master = subprocess.run(["ssh", *server.ssh_args(), *control, "-o", "ControlMaster=yes",
                                 "-o", "ControlPersist=30", "-f", "-N", server.alias],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=15)
        assert master.returncode == 0, master.stderr
        assert ssh(*server.ssh_args(), *control, "-O", "check", server.alias).returncode == 0
        for i in range(5):
            out = ssh(*server.ssh_args(), *control, "-o", "ControlMaster=no", server.alias, f"echo mux{i}")
            assert out.stdout == f"mux{i}\n", out.stderr
        assert server.connection_count() == 1  # all five went over the one master connection
        # A dropped connection takes the master with it; the next check says so.
        server.kill_connections()
        deadline = time.monotonic() + 3
        while ssh(*server.ssh_args(), *control, "-O", "check", server.alias).returncode == 0:
            assert time.monotonic() < deadline, "master survived kill_connections()"
            time.sleep(0.05)
    finally:
        ssh(*server.ssh_args(), *control, "-O", "exit", server.alias)
        shutil.rmtree(ctl_dir, ignore_errors=True)


def _namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def test_netns_probe_says_whether_a_namespace_can_be_made_and_leaves_none() -> None:
    """The probe's answer matches trying it by hand (a fresh namespace that has only its own loopback),
    and the probe cleans up after itself."""
    can_try = os.geteuid() == 0 and shutil.which("ip") is not None
    before = _namespaces() if can_try else set()
    available = netns_available()
    print(f"network namespaces available: {available}")
    name = f"launch-check-{os.getpid()}"
    made = can_try and subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=10).returncode == 0
    try:
        links = subprocess.run(["ip", "netns", "exec", name, "ip", "-o", "link"], capture_output=True, text=True,
                               timeout=10) if made else None
        isolated = links is not None and links.returncode == 0 and \
            [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    finally:
        if made:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)
    assert available == isolated, (available, links.stdout if made and links else "could not add a namespace")
    if can_try:
        assert _namespaces() == before, "the probe left a namespace behind"
