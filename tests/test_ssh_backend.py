"""The ssh backend against real OpenSSH sshds on 127.0.0.1 and 127.0.0.2 (tests/fakes/sshd.py),
through the real CLI and the system ssh client. Jobs' files go to each server's throwaway
`remote_root` (sshd always logs in to the passwd home, so the tests point the backend there)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.sshd import SSHServer

SUBMITTED = re.compile(r"submitted (\S+) to ssh")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    first, second = SSHServer("127.0.0.1"), SSHServer("127.0.0.2")
    with first, second:
        both = tmp_path_factory.mktemp("ssh") / "both.config"
        both.write_text(f"Include {first.ssh_config}\nInclude {second.ssh_config}\n")
        yield first, second, str(both)


@pytest.fixture
def ssh(servers, cli, write_spec, tmp_path):
    first, _, both = servers

    class Helper:
        remote_root = first.remote_root

        @staticmethod
        def spec(body: str, *, hosts: list[str] | None = None, extra: str = "") -> Path:
            hosts = hosts or [first.host_spec]
            host_lines = "".join(f"      - {h}\n" for h in hosts)
            return write_spec(f"{body}backends:\n  ssh:\n    hosts:\n{host_lines}    ssh_config: {both}\n"
                              f"    remote_root: {first.remote_root}\n    cancel_grace: 2s\n{extra}")

        @staticmethod
        def run(*args: str, check_rc: int | None = None, **kw):
            return cli(*args, check_rc=check_rc, **kw)

        @staticmethod
        def submit(spec: Path, *extra: str) -> str:
            out = Helper.run("run", str(spec), "--backend", "ssh", *extra, check_rc=0).stdout
            return SUBMITTED.search(out).group(1)

    return Helper


def test_job_runs_on_the_host_and_reports_success(ssh, tmp_path):
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("import os\nprint('rank', os.environ['LAUNCH_NODE_RANK'], 'cwd-ok', "
                                   "os.path.exists('train.py'))\n")
    spec = ssh.spec("name: sshjob\ncode: ./src\nsetup: echo setup-done\nrun: python3 train.py\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--follow", check_rc=0)
    assert "setup-done" in result.stdout and "rank 0 cwd-ok True" in result.stdout
    job = SUBMITTED.search(result.stdout).group(1)
    record = json.loads(ssh.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0
    node_dir = Path(ssh.remote_root) / "jobs" / job / "node-0"
    assert not (node_dir / "env.sh").exists()  # read once at start, then removed: no secrets left on disk


def test_failing_node_fails_the_job_with_its_code(ssh):
    spec = ssh.spec("name: sshfail\nrun: echo about to fail; exit 7\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--wait")
    assert result.returncode == 1, result.stderr
    assert "node 0 exited with code 7" in result.stderr and "about to fail" in result.stderr


def test_two_hosts_two_ranks_master_is_host_zero(ssh, servers):
    first, second, _ = servers
    spec = ssh.spec("name: twohost\nresources:\n  nodes: 2\n"
                    "run: echo rank=$LAUNCH_NODE_RANK of=$LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR\n",
                    hosts=[first.host_spec, second.host_spec])
    result = ssh.run("run", str(spec), "--backend", "ssh", "--follow", check_rc=0)
    assert "[node 0] rank=0 of=2 master=127.0.0.1" in result.stdout
    assert "[node 1] rank=1 of=2 master=127.0.0.1" in result.stdout
    job = SUBMITTED.search(result.stdout).group(1)
    node_one = ssh.run("logs", job, "--node", "1", check_rc=0).stdout.splitlines()
    assert "rank=1 of=2 master=127.0.0.1" in node_one and not any("rank=0" in line for line in node_one)


def test_cancel_stops_the_remote_process_tree(ssh):
    spec = ssh.spec("name: sshcancel\nrun: sleep 300 & sleep 300; wait\n")
    job = ssh.submit(spec)
    handle = _handle(ssh, job)
    pid = handle["data"]["nodes"][0]["pid"]
    _wait_until(lambda: _group_members(pid), "the job's processes to start")
    assert "CANCEL" in ssh.run("cancel", job, check_rc=0).stdout
    _wait_until(lambda: not _group_members(pid), "the job's process group to disappear")
    assert ssh.run("wait", job).returncode == 3
    ssh.run("cancel", job, check_rc=0)  # again: harmless


def test_hostile_strings_arrive_literally(ssh, tmp_path):
    marker = tmp_path / "pwned"
    nasty = [
        f"$(touch {marker})", f"`touch {marker}`", f"; touch {marker}", f"' ; touch {marker} ; '",
        f"\" ; touch {marker} ; \"", f"\n touch {marker}", f"| touch {marker}", f"&& touch {marker}",
        f"$(touch {marker}) *", "*", "~root", "$HOME", "a\\b", "--flag=$(id)", f"> {marker}",
        "${IFS}touch${IFS}" + str(marker), "%s%n", "\t tab",
    ]
    env_lines = "".join(f"  V{i}: {json.dumps(value)}\n" for i, value in enumerate(nasty))
    checks = "; ".join(f'printf "%s\\n" "$V{i}"' for i in range(len(nasty)))
    # setup/run are command lines the user means to run; quoted inside them, a payload must stay text
    setup = f"printf '%s\\n' '$(touch {marker})' '`touch {marker}`'"
    spec = ssh.spec(f"name: hostile\nenv:\n{env_lines}run: {json.dumps(checks)}\nsetup: {json.dumps(setup)}\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--follow")
    assert not marker.exists(), "a value was executed by a shell"
    printed = result.stdout
    for value in nasty:
        for piece in value.split("\n"):
            assert piece in printed, (value, printed)
    assert f"$(touch {marker})" in printed and f"`touch {marker}`" in printed  # setup's quoted text


def test_unreachable_host_exits_4_and_records_nothing(ssh):
    spec = ssh.spec("name: nohost\nrun: echo hi\n", hosts=["nobody@127.0.0.1:1"])
    result = ssh.run("run", str(spec), "--backend", "ssh")
    assert result.returncode == 4, result.stderr
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(ssh.run("list", "-o", "json", check_rc=0).stdout) == []


def test_host_without_gpus_is_refused_before_anything_starts(ssh):
    spec = ssh.spec("name: gpus\nrun: echo hi\nresources:\n  accelerators: H100:8\n")
    result = ssh.run("run", str(spec), "--backend", "ssh")
    assert result.returncode == 1 and "has 0 NVIDIA GPU(s)" in result.stderr
    assert "check_gpus=false" in result.stderr
    assert not list((Path(ssh.remote_root) / "jobs").glob("gpus-*/node-0/log"))
    ssh.run("run", str(spec), "--backend", "ssh", "--set", "backends.ssh.check_gpus=false", "--wait", check_rc=0)


def test_follow_survives_a_dropped_connection_without_loss_or_repeats(ssh, servers):
    first = servers[0]
    spec = ssh.spec("name: drop\nrun: 'for i in $(seq 1 40); do echo line-$i; sleep 0.1; done'\n")
    job = ssh.submit(spec)
    follower = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ})
    time.sleep(1.5)
    assert first.kill_connections() >= 1  # the shared connection (and any transfer) really dropped
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    job_lines = [line for line in out.splitlines() if not line.startswith("[launch]")]
    assert job_lines == [f"line-{i}" for i in range(1, 41)]


def test_list_sync_recovers_jobs_from_the_hosts(ssh, servers, launch_home):
    first, _, both = servers
    job = ssh.submit(ssh.spec("name: syncme\nrun: echo hi\n"), "--idempotency-key", "k-1")
    ssh.run("wait", job, check_rc=0)
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    # the history is gone; the user's config still says where their hosts are
    (launch_home / "config.toml").write_text(
        f'[backends.ssh]\nhosts = ["{first.host_spec}"]\nssh_config = "{both}"\nremote_root = "{first.remote_root}"\n')
    out = ssh.run("list", "--sync", "--backend", "ssh", "-o", "json", check_rc=0).stdout
    found = {r["id"]: r for r in json.loads(out)}
    assert found[job]["state"] == "SUCCEEDED" and found[job]["idempotency_key"] == "k-1"


def _handle(ssh, job: str) -> dict:
    return json.loads(ssh.run("status", job, "-o", "json", check_rc=0).stdout)["handle"]


def _group_members(pgid: int) -> list[int]:
    from helpers import live_group_members

    return live_group_members(pgid)


def _wait_until(condition, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_unknown_host_key_is_refused_by_default(ssh, servers, tmp_path):
    first = servers[0]
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    strict = tmp_path / "strict.config"
    strict.write_text(Path(first.ssh_config).read_text().replace(str(first.known_hosts), str(empty_known_hosts)))
    spec = ssh.spec("name: hostkey\nrun: echo hi\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--set", f"backends.ssh.ssh_config={strict}")
    assert result.returncode == 4, result.stderr
    assert "Host key verification failed" in result.stderr
    assert empty_known_hosts.read_text() == ""  # nothing was accepted on the user's behalf


def test_hosts_from_a_named_pool_in_the_config(ssh, servers, launch_home, write_spec):
    first, _, both = servers
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.ssh]\nssh_config = "{both}"\nremote_root = "{first.remote_root}"\n'
        f'[backends.ssh.pools.lab]\nhosts = ["{first.host_spec}"]\n')
    spec = write_spec("name: pooled\nrun: echo from-the-pool\n", "pooled.yaml")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--set", "backends.ssh.pool=lab", "--follow", check_rc=0)
    assert "from-the-pool" in result.stdout
    missing = ssh.run("run", str(spec), "--backend", "ssh", "--set", "backends.ssh.pool=nope")
    assert missing.returncode == 2 and "no ssh pool named 'nope'" in missing.stderr


def test_a_retried_submit_starts_each_node_once(servers, launch_home):
    """The runner retries a submit whose answer was lost: the node must not start twice."""
    from backends.ssh import SSHBackend
    from launcher.spec import parse_spec

    first, _, both = servers
    backend = SSHBackend({"hosts": [first.host_spec], "ssh_config": both, "remote_root": str(first.remote_root)})
    spec = parse_spec("name: retry\nrun: sleep 30\n", "spec.yaml")
    request = backend.render(spec, "retry-20260101-000000-abcdef", None, {})
    once = backend.submit(request)
    twice = backend.submit(request)
    assert once.data["nodes"][0]["pid"] == twice.data["nodes"][0]["pid"]
    assert len(_group_members(once.data["nodes"][0]["pid"])) >= 1
    backend.cancel(once)
    _wait_until(lambda: not _group_members(once.data["nodes"][0]["pid"]), "the node to stop")


def test_cancel_stops_reachable_nodes_when_a_host_is_down(ssh, servers, tmp_path):
    first, _, _ = servers
    with SSHServer("127.0.0.3") as third:
        config = tmp_path / "three.config"
        config.write_text(f"Include {first.ssh_config}\nInclude {third.ssh_config}\n")
        spec = ssh.spec("name: halfdown\nresources:\n  nodes: 2\nrun: sleep 300\n",
                        hosts=[first.host_spec, third.host_spec])
        spec.write_text(spec.read_text().replace(servers[2], str(config)))
        job = ssh.submit(spec)
        nodes = _handle(ssh, job)["data"]["nodes"]
        third.stop()  # its node keeps running (same machine), but the host no longer answers
        status = json.loads(ssh.run("status", job, "-o", "json", check_rc=0).stdout)
        assert status["state"] == "UNKNOWN" and "cannot reach" in status["message"]  # never FAILED
        result = ssh.run("cancel", job)
        assert result.returncode == 4 and "could not reach" in result.stderr
        _wait_until(lambda: not _group_members(nodes[0]["pid"]), "node 0 on the reachable host to stop")
        os.killpg(nodes[1]["pid"], 9)  # tidy up what the unreachable host left


@pytest.mark.parametrize("address", ["$(touch /tmp/x)@127.0.0.1", "root@127.0.0.1;id", "-oProxyCommand=x",
                                     "root@`id`", "a b@127.0.0.1"])
def test_hostile_host_addresses_are_refused(ssh, address):
    spec = ssh.spec("name: badhost\nrun: echo hi\n", hosts=[json.dumps(address)])
    result = ssh.run("run", str(spec), "--backend", "ssh")
    assert result.returncode == 2 and "backends.ssh.hosts" in result.stderr, result.stderr


@pytest.mark.parametrize("root", ["-vx", "~/.launch"])
def test_remote_root_that_a_shell_would_misread_is_refused(ssh, root):
    spec = ssh.spec("name: badroot\nrun: echo hi\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--set", f"backends.ssh.remote_root={root}")
    assert result.returncode == 2 and "remote_root" in result.stderr, result.stderr


def test_secrets_reach_the_job_but_stay_off_command_lines_and_disk(ssh, launch_home):
    import hashlib

    digest = hashlib.sha256(b"canary-ssh-42").hexdigest()  # the job checks the value without naming it
    check = f'[ "$(printf %s "$MY_TOKEN" | sha256sum | cut -d" " -f1)" = {digest} ] && echo token-ok'
    spec = ssh.spec(f"name: secret\nsecrets: [MY_TOKEN]\nrun: {json.dumps(check)}\n")
    result = ssh.run("run", str(spec), "--backend", "ssh", "--follow", env={"MY_TOKEN": "canary-ssh-42"},
                     check_rc=0)
    assert "token-ok" in result.stdout and "canary-ssh-42" not in result.stdout + result.stderr
    job = SUBMITTED.search(result.stdout).group(1)
    for path in [*Path(ssh.remote_root, "jobs", job).rglob("*"), *launch_home.rglob("*")]:
        if path.is_file():
            assert b"canary-ssh-42" not in path.read_bytes(), path


@pytest.mark.parametrize("with_rsync", [True, False])
def test_file_copy_keeps_hostile_remote_paths_literal(servers, tmp_path, monkeypatch, with_rsync):
    """rsync (--protect-args) when both ends have it, else the ssh stream: the same result."""
    from backends.remote import transport as ssh_transport
    from backends.remote.transport import Host, SSHTransport

    first, _, both = servers
    if not with_rsync:
        monkeypatch.setattr(ssh_transport.shutil, "which", lambda name: None)
    marker = tmp_path / "pwned"
    source = tmp_path / "bundle.tar.gz"
    source.write_bytes(b"\x1f\x8b payload")
    remote = f"{first.remote_root}/odd dir/$(touch {marker})/`id`;x/b.tar.gz"
    SSHTransport(ssh_config=both).copy(Host.parse(first.host_spec), source, remote, mode="600")
    assert Path(remote).read_bytes() == b"\x1f\x8b payload"
    assert oct(Path(remote).stat().st_mode & 0o777) == "0o600"
    assert not marker.exists()


def test_tail_runs_on_the_host(ssh):
    spec = ssh.spec("name: sshtail\nrun: 'for i in $(seq 1 500); do echo row-$i; done'\n")
    job = ssh.submit(spec)
    ssh.run("wait", job, check_rc=0)
    lines = ssh.run("logs", job, "--tail", "2", check_rc=0).stdout.splitlines()
    assert lines == ["row-500", "[launch] exit code 0"]


def test_a_submit_retried_after_a_lost_start_answer_runs_the_node(servers, launch_home, monkeypatch):
    """The start ran but its answer was lost: the runner retries, and the job still runs to success
    (not adopted dead, not started twice), with no env file left behind."""
    from backends.remote.transport import SSHTransport
    from backends.ssh import SSHBackend
    from launcher.errors import TransientBackendError
    from launcher.spec import parse_spec

    first, _, both = servers
    real_run = SSHTransport.run
    dropped = []

    def flaky(self, host, command, **kw):
        done = real_run(self, host, command, **kw)
        if "setsid" in command and not dropped:
            dropped.append(command)
            raise TransientBackendError("lost the ssh connection (test)")
        return done

    monkeypatch.setattr(SSHTransport, "run", flaky)
    backend = SSHBackend({"hosts": [first.host_spec], "ssh_config": both, "remote_root": str(first.remote_root)})
    spec = parse_spec("name: lost\nrun: echo survived\n", "spec.yaml")
    request = backend.render(spec, "lost-20260101-000000-abcdef", None, {})
    with pytest.raises(TransientBackendError):
        backend.submit(request)
    handle = backend.submit(request)  # what the runner's retry policy does next
    _wait_until(lambda: backend.status(handle).state.is_terminal, "the job to end")
    assert backend.status(handle).state.value == "SUCCEEDED"
    node_dir = Path(first.remote_root) / "jobs" / "lost-20260101-000000-abcdef" / "node-0"
    assert not (node_dir / "env.sh").exists()


def test_a_stale_control_socket_is_replaced(servers, tmp_path):
    """A master that died (reboot, kill -9) leaves its socket file: the next call starts a new one."""
    import socket

    from backends.remote.transport import Host, SSHTransport

    first, _, both = servers
    transport = SSHTransport(ssh_config=both)
    host = Host.parse(first.host_spec)
    path = transport.control_path(host)
    subprocess.run([*transport.ssh_args(host)[:-2], "-O", "exit", "--", host.destination], capture_output=True)
    path.unlink(missing_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # a socket file nobody listens on
    stale.close()
    assert transport.run(host, "echo fine").stdout == b"fine\n"
    probe = socket.socket(socket.AF_UNIX)
    probe.connect(str(path))  # a live master answers there again
    probe.close()


def test_status_stops_no_straggler_and_finish_does(servers, launch_home):
    """Node 1 fails while node 0 sleeps on: status says FAILED and stops nothing, however often it is
    asked; `finish` (which the runner calls once) stops node 0, and is harmless to repeat."""
    from backends.ssh import SSHBackend
    from launcher.spec import parse_spec

    first, second, both = servers
    backend = SSHBackend({"hosts": [first.host_spec, second.host_spec], "ssh_config": both,
                          "remote_root": str(first.remote_root)})
    spec = parse_spec("name: straggle\nresources:\n  nodes: 2\n"
                      "run: '[ \"$LAUNCH_NODE_RANK\" = 1 ] && exit 7; sleep 300'\n", "spec.yaml")
    handle = backend.submit(backend.render(spec, "straggle-20260101-000000-abcdef", None, {}))
    node0 = handle.data["nodes"][0]["pid"]
    try:
        _wait_until(lambda: backend.status(handle).state.is_terminal, "node 1 to fail")
        for _ in range(3):
            status = backend.status(handle)
            assert (status.state.value, status.exit_code, status.message) == ("FAILED", 7, "node 1 exited with code 7")
        assert _group_members(node0), "status stopped node 0: it must be a query"
        backend.finish(handle, status)
        _wait_until(lambda: not _group_members(node0), "finish to stop node 0")
        backend.finish(handle, status)  # again (a finish the runner retries): nothing left, no error
        assert backend.status(handle).state.value == "FAILED"
    finally:
        if _group_members(node0):
            os.killpg(node0, 9)


@pytest.fixture
def commands(monkeypatch) -> list[str]:
    """Every command SSHTransport.run sends from now on, in order (the calls still run)."""
    from backends.remote.transport import SSHTransport

    sent: list[str] = []
    real_run = SSHTransport.run

    def counted(self, host, command, **kw):
        sent.append(command)
        return real_run(self, host, command, **kw)

    monkeypatch.setattr(SSHTransport, "run", counted)
    return sent


def test_several_files_go_in_one_command_with_their_modes_and_hostile_names_literal(servers, tmp_path, commands):
    """put_many: one ssh command (a tar stream) for the job's small files; each lands under its exact
    name (spaces, quotes, `$(...)`, newlines) with its mode, and no `.part` is left behind."""
    from backends.remote.transport import Host, SSHTransport

    first, _, both = servers
    transport = SSHTransport(ssh_config=both)
    host = Host.parse(first.host_spec)
    base = Path(first.remote_root) / "many"
    names = ["plain.sh", "it's $(touch pwned) `x`.txt", "new\nline;rm -rf ~", "sub dir/deep/\u00e9t\u00e9 \"q\""]
    files = [(f"content {i}\n".encode() * (i + 1), str(base / name), "700" if name.endswith(".sh") else "600")
             for i, name in enumerate(names)]
    transport.put_many(host, files)
    assert len(commands) == 1
    for data, path, mode in files:
        assert Path(path).read_bytes() == data
        assert oct(Path(path).stat().st_mode & 0o777) == oct(int(mode, 8))
    assert not list(base.rglob("*.part")) and not (Path.home() / "pwned").exists()
    # a relative path next to absolute ones: file by file, each still exact
    commands.clear()
    mixed = [(b"a", str(base / "abs.txt"), "600"), (b"b", "launch-test-relative.txt", "600")]
    transport.put_many(host, mixed)
    assert len(commands) == 2 and (base / "abs.txt").read_bytes() == b"a"


def test_a_submit_uses_one_command_for_files_and_one_to_start_each_node(servers, launch_home, commands):
    """GPU check, the job's files (one tar stream, however many), env file + start (one command; the
    secrets on stdin, never on its command line), handle.json: four ssh commands for a one-node job."""
    from backends.ssh import SSHBackend
    from launcher.spec import parse_spec

    first, _, both = servers
    backend = SSHBackend({"hosts": [first.host_spec], "ssh_config": both, "remote_root": str(first.remote_root),
                          "check_gpus": False})
    spec = parse_spec("name: count\nsecrets: [TOKEN]\nrun: test \"$TOKEN\" = 's3cr3t value'\n", "spec.yaml")
    job = "count-20260101-000000-abcdef"
    request = backend.render(spec, job, None, {"TOKEN": "s3cr3t value"})
    handle = backend.submit(request)
    assert len(commands) == 3, commands  # no GPU check asked for: files, env + start, handle.json
    assert "tar -xf -" in commands[0] and "bootstrap.sh" in commands[0] and "run.sh" in commands[0]
    assert "setsid" in commands[1] and all("s3cr3t" not in c for c in commands)
    _wait_until(lambda: backend.status(handle).state.is_terminal, "the job to end")
    assert backend.status(handle).state.value == "SUCCEEDED"
    assert not (Path(first.remote_root) / "jobs" / job / "node-0" / "env.sh").exists()
