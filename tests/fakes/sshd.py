"""A real OpenSSH ``sshd`` for tests: throwaway keys, its own config, key-only auth, on a loopback address.

Import it from tests as ``from fakes.sshd import SSHServer`` (pytest puts ``tests/`` on ``sys.path``)::

    with SSHServer() as srv:                      # 127.0.0.1:<free port>, ready when the block starts
        srv.run("echo ok").stdout                 # ssh -F srv.ssh_config srv.alias 'echo ok'
        ["ssh", *srv.ssh_args(), srv.alias, "true"]            # alias from the generated ssh_config
        ["ssh", *srv.ssh_args(), "-p", str(srv.port), f"{srv.user}@{srv.address}", "true"]  # plain address
        ["ssh", *srv.ssh_options(), srv.address, "true"]       # no -F: only -o options (port/user included)
        srv.host_spec                             # "root@127.0.0.1:40123", as backends.ssh.hosts takes it
        srv.remote_root                           # a fresh empty dir per server: point the backend's remote root here
        srv.kill_connections()                    # drop every live connection (ControlMaster too), keep listening

    SSHServer(address="127.0.0.2")                # a second "host" (Linux routes all of 127/8 to lo)

Needs ``/usr/sbin/sshd`` and ``ssh`` (Debian: openssh-server, openssh-client). Run as root, sshd needs its
privilege-separation dir ``/run/sshd``, which is created if missing; no other system file is touched. The client
side never reads ``~/.ssh``: everything goes through the generated ``ssh_config`` (``-F``) or explicit ``-o``.

Facts for the backend author (checked against OpenSSH 9.2p1, Debian 12):

- The login directory is always the passwd home of the user (``/root`` here): sshd ``chdir``s to ``pw_dir``
  before running the command, whatever ``HOME`` the session gets (``SetEnv HOME=`` in sshd_config, or
  ``environment="HOME=..."`` in authorized_keys with ``PermitUserEnvironment``) - those change ``$HOME`` and ``~``
  in the remote shell but not the cwd. So paths relative to the login dir cannot be made hermetic without a
  ForceCommand wrapper or chroot. Instead the backend takes an absolute remote root (per host); tests pass
  ``srv.remote_root``. Two servers on one machine share a filesystem, so per-host roots also keep the "hosts" of a
  multi-node test apart.
- As a safety net the session's ``HOME`` is set to ``remote_root`` too (``isolate_home=True``), so anything that
  writes to ``~`` or ``$HOME`` on the "remote" lands in the temp dir, not in the real home.
- The ssh *client* takes ``~/.ssh/config`` from the passwd home, not from ``$HOME``: tests cannot point it at a fake
  config by setting HOME; the backend needs a way to pass ``-F``/``-o`` options (``ssh_args()``/``ssh_options()``).
- Remote sessions get sshd's default environment (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin),
  not the test process's; pass ``env={"PATH": ...}`` to add ``SetEnv`` entries (e.g. to put .venv/bin first).
- ``scp`` (SFTP protocol by default since OpenSSH 9.0) is served by ``internal-sftp``; rsync runs through the shell.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
_alias_numbers = itertools.count(1)


def sshd_available() -> bool:
    """True when this machine has sshd, ssh and ssh-keygen (use for ``pytest.mark.skipif``)."""
    return os.access(SSHD, os.X_OK) and shutil.which("ssh") is not None and shutil.which("ssh-keygen") is not None


def netns_available() -> bool:
    """True when network namespaces can be created here (root, ``ip netns add``/``exec``/``delete`` all work)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = f"launch-probe-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
    try:
        added = subprocess.run(["ip", "netns", "add", name], capture_output=True, timeout=10).returncode == 0
        if not added:
            return False
        try:
            probe = subprocess.run(["ip", "netns", "exec", name, "true"], capture_output=True, timeout=10)
            return probe.returncode == 0
        finally:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _q(value: str | os.PathLike[str]) -> str:
    """Quote one argument for sshd_config / ssh_config (both split on whitespace, honour double quotes)."""
    text = str(value)
    if '"' in text or "\n" in text:
        raise ValueError(f"cannot put {text!r} in an ssh config file")
    return f'"{text}"' if not text or any(c.isspace() for c in text) else text


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, comm, starttime) for every process visible in /proc."""
    table: dict[int, tuple[int, str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), comm, int(fields[19]))  # fields[0] is state; ppid, ..., starttime
    return table


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2:].split()[0]


def _descendants(root: int, table: dict[int, tuple[int, str, int]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _comm, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


class SSHServer:
    """One sshd on ``address``:``port`` with its own keys and config; a context manager (``start``/``stop``)."""

    def __init__(self, address: str = "127.0.0.1", port: int | None = None, user: str | None = None, *,
                 isolate_home: bool = True, env: dict[str, str] | None = None, ready_timeout: float = 10.0) -> None:
        self.address = address
        self.port = port or 0
        self.user = user or pwd.getpwuid(os.geteuid()).pw_name
        self.alias = f"launch-test-{next(_alias_numbers)}"
        self.isolate_home = isolate_home
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.startup_seconds: float | None = None
        self._fixed_port = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._orphans: list[tuple[int, int]] = []  # (pid, starttime) of session commands cut off by kill_connections
        self.dir = Path(tempfile.mkdtemp(prefix="lsshd-"))
        self.remote_root = self.dir / "remote"
        self.host_key = self.dir / "host_ed25519"
        self.identity_file = self.dir / "client_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.sshd_config = self.dir / "sshd_config"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_config = self.dir / "ssh_config"
        self.log_path = self.dir / "sshd.log"
        self.pid_file = self.dir / "sshd.pid"

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def __enter__(self) -> SSHServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SSHServer:
        if self._proc is not None:
            raise RuntimeError("sshd already started")
        t0 = time.monotonic()
        try:
            self._make_keys()
            self.remote_root.mkdir()
            if os.geteuid() == 0:
                os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep dir; the only system change
            for attempt in range(5):  # a free port can be taken between probing and sshd's bind: retry
                if not self._fixed_port:
                    self.port = _free_port(self.address)
                self._write_configs()
                error = self._launch_and_wait()
                if error is None:
                    break
                if self._fixed_port or "Address already in use" not in error or attempt == 4:
                    raise RuntimeError(f"sshd on {self.address}:{self.port} did not become ready: {error}\n"
                                       f"sshd stderr:\n{self.log_text()}")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            for pid in _descendants(proc.pid, _proc_table()):  # live sessions would outlive the listener
                _kill(pid)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._orphans:
            table = _proc_table()
            for pid, start in self._orphans:
                if pid in table and table[pid][2] == start:
                    _kill(pid)
            self._orphans.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("sshd not started")
        return self._proc.pid

    # -- using it --------------------------------------------------------------------------------------------------

    @property
    def host_spec(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    def ssh_args(self) -> list[str]:
        """Client options for this server: ``-F ssh_config``. The config matches both the alias and the plain
        address (with Port/User set), so ``ssh -F cfg 127.0.0.1`` and ``ssh -F cfg -p PORT user@127.0.0.1`` work."""
        return ["-F", str(self.ssh_config)]

    def ssh_options(self) -> list[str]:
        """The same settings as ``-o`` options only (no ``-F``), for callers that keep their own config file."""
        options = {"Port": str(self.port), "User": self.user, **self._client_options()}
        return [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]

    def run(self, command: str, *, timeout: float = 30, extra_args: list[str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """``ssh -F ssh_config ALIAS COMMAND`` (the command goes through the remote login shell, as with ssh)."""
        return subprocess.run(["ssh", *self.ssh_args(), *(extra_args or []), self.alias, command],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def kill_connections(self) -> int:
        """SIGKILL every per-connection sshd process (not the listener): all live connections drop at once, as
        on a network failure; new connections are accepted as before. Commands those sessions ran are not
        signalled (like a real drop they die on their next write to the lost connection); ``stop()`` kills any
        left. Returns how many sshd processes were killed."""
        table = _proc_table()
        killed = 0
        for pid in _descendants(self.pid, table):
            if table[pid][1].startswith("sshd"):
                killed += _kill(pid)
            else:
                self._orphans.append((pid, table[pid][2]))
        return killed

    def connection_count(self) -> int:
        """Per-connection sshd processes (direct children of the listener) now alive."""
        table = _proc_table()
        return sum(1 for pid, (ppid, comm, _start) in table.items()
                   if ppid == self.pid and comm.startswith("sshd") and _state(pid) != "Z")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- internals -------------------------------------------------------------------------------------------------

    def _make_keys(self) -> None:
        for path, comment in ((self.host_key, "launch-test-host"), (self.identity_file, "launch-test-client")):
            subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-C", comment, "-f", str(path)],
                           check=True, capture_output=True, timeout=30)
        self.authorized_keys.write_text(self.identity_file.with_suffix(".pub").read_text())
        self.authorized_keys.chmod(0o600)

    def _client_options(self) -> dict[str, str]:
        return {
            "IdentityFile": str(self.identity_file),
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "BatchMode": "yes",
            "LogLevel": "ERROR",
        }

    def _write_configs(self) -> None:
        session_env = dict(self.env)
        if os.environ.get("LAUNCH_TEST_SESSION"):  # what sessions start is the suite's (tests/leftovers.py)
            session_env.setdefault("LAUNCH_TEST_SESSION", os.environ["LAUNCH_TEST_SESSION"])
        if self.isolate_home:
            session_env.setdefault("HOME", str(self.remote_root))
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.address}",
            f"HostKey {_q(self.host_key)}",
            f"AuthorizedKeysFile {_q(self.authorized_keys)}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            f"PidFile {_q(self.pid_file)}",
            "PermitRootLogin prohibit-password",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel ERROR",
            "MaxStartups 50",
            "MaxSessions 50",
            # No AcceptEnv line: sshd then accepts no client environment at all.
            "Subsystem sftp internal-sftp",
        ]
        if session_env:
            lines.append("SetEnv " + " ".join(_q(f"{k}={v}") for k, v in session_env.items()))
        self.sshd_config.write_text("\n".join(lines) + "\n")

        host_pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{self.address}]:{self.port} {host_pub[0]} {host_pub[1]}\n")

        client = "".join(f"    {k} {_q(v)}\n" for k, v in self._client_options().items())
        self.ssh_config.write_text(
            f"Host {self.alias} {self.address}\n"
            f"    HostName {self.address}\n"
            f"    Port {self.port}\n"
            f"    User {self.user}\n" + client)

    def _launch_and_wait(self) -> str | None:
        """Start sshd and wait until a real login works; None when ready, else why not (sshd is then stopped)."""
        with self.log_path.open("ab") as log:  # a file, not a pipe: nobody has to drain it
            self._proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.sshd_config)], stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        error = "timed out"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                error = f"sshd exited with code {self._proc.returncode}: {self.log_text().strip()}"
                self._proc = None
                return error
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.01)
                continue
            try:
                probe = self.run("true", timeout=max(1.0, deadline - time.monotonic()),
                                 extra_args=["-o", "ConnectTimeout=5"])
            except subprocess.TimeoutExpired:
                break
            if probe.returncode == 0:
                return None
            error = f"ssh probe exited {probe.returncode}: {probe.stderr.strip()}"
            time.sleep(0.05)
        proc, self._proc = self._proc, None
        proc.kill()
        proc.wait(timeout=5)
        return error
