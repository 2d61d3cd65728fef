"""Running commands on hosts through the user's own OpenSSH client.

Shared by the ssh backend and the backends that provision machines and then reach
them over ssh (lambda_cloud). Using the system `ssh` keeps the user's ~/.ssh/config,
agent, ProxyJump and keys working unchanged; one ControlMaster connection per host
makes the many small calls of status and log following cheap.

Every value placed in a remote command goes through `shlex.quote`: remote commands
are built only by `script()`, never by string formatting at call sites.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from launcher import progress
from launcher.errors import BackendUnreachable, TransientBackendError

SSH_UNREACHABLE = 255  # ssh's own exit code for connection/authentication failures


@dataclass(frozen=True)
class Host:
    """`user@host[:port]` (or an alias from ~/.ssh/config) and the address other nodes use."""

    destination: str
    port: int | None = None
    internal_address: str | None = None

    @classmethod
    def parse(cls, text: str, internal_address: str | None = None) -> Host:
        # user and host from a strict set: they reach ssh's command line and, via %r/%h, ProxyCommands
        match = re.fullmatch(r"(?P<dest>(?:[A-Za-z0-9._][A-Za-z0-9._-]*@)?[A-Za-z0-9._][A-Za-z0-9._-]*)"
                             r"(?::(?P<port>\d{1,5}))?", text.strip())
        if not match:
            raise ValueError(f"{text!r} is not user@host[:port] or a host alias")
        port = int(match.group("port")) if match.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        return cls(match.group("dest"), port, internal_address)

    @property
    def hostname(self) -> str:
        return self.destination.rsplit("@", 1)[-1]

    @property
    def reachable_as(self) -> str:
        """What the other nodes connect to (master address): the internal address if given."""
        return self.internal_address or self.hostname

    def __str__(self) -> str:
        return f"{self.destination}:{self.port}" if self.port else self.destination


def script(template: str, **values: object) -> str:
    """A remote shell command with every value quoted: `script("cat {path}", path=p)`.
    Lists become space-separated quoted words."""
    quoted = {k: " ".join(shlex.quote(str(v)) for v in value) if isinstance(value, (list, tuple))
              else shlex.quote(str(value)) for k, value in values.items()}
    return template.format(**quoted)


def _listening(socket_path: Path) -> bool:
    """Whether a ControlMaster still answers on its socket (a stale file would make every call
    fall back to a fresh, slow connection)."""
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _widen_pipe(fd: int) -> None:
    """Let ssh keep writing while we turn the previous megabyte into lines (Linux: 64 KiB
    pipes by default would make the two take turns)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def _control_dir() -> Path:
    """Short and private: ControlPath sockets must fit in ~100 bytes."""
    path = Path(tempfile.gettempdir()) / f"launch-ssh-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        info = None
    if info is None or info.st_uid != os.getuid() or info.st_mode & 0o077 or not path.is_dir() or path.is_symlink():
        # someone else's socket here would receive our commands (and the env files with secrets)
        raise BackendUnreachable(f"{path} is not a private directory of yours; refusing to put ssh sockets there",
                                 "remove it (or set TMPDIR elsewhere) and retry")
    return path


class SSHTransport:
    def __init__(self, *, ssh_config: str | None = None, identity_file: str | None = None,
                 host_key_checking: str = "yes", connect_timeout: int = 10, persist_s: int = 120) -> None:
        self.ssh_config = ssh_config
        self.identity_file = identity_file
        self.host_key_checking = host_key_checking
        self.connect_timeout = connect_timeout
        self.persist_s = persist_s

    def control_path(self, host: Host) -> Path:
        """Our own socket name (not ssh's %C) so we can tell whether a master is up."""
        key = f"{host.destination}|{host.port}|{self.ssh_config}|{self.identity_file}|{self.host_key_checking}"
        return _control_dir() / hashlib.sha1(key.encode()).hexdigest()[:20]

    def ssh_args(self, host: Host, *, master: bool = False) -> list[str]:
        args = ["ssh", "-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={self.host_key_checking}",
                "-o", f"ConnectTimeout={self.connect_timeout}", "-o", f"ControlPath={self.control_path(host)}",
                "-o", f"ControlMaster={'yes' if master else 'no'}", "-o", f"ControlPersist={self.persist_s}",
                "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR"]
        if self.ssh_config:
            args += ["-F", self.ssh_config]
        if self.identity_file:
            args += ["-i", self.identity_file]
        if host.port:
            args += ["-p", str(host.port)]
        return [*args, "--", host.destination]

    def _ensure_master(self, host: Host) -> None:
        """Start the shared connection for this host once (`-N -f`: it backgrounds after login).
        Its output goes to a file: a master holding our pipes would make every call wait for it."""
        path = self.control_path(host)
        if path.exists():
            if _listening(path):
                return
            path.unlink(missing_ok=True)  # left by a master that died (reboot, kill): start a new one
        with tempfile.TemporaryFile() as errors, progress.step(f"connecting to {host} over ssh"):
            try:
                done = subprocess.run([*self.ssh_args(host, master=True)[:-2], "-N", "-f", "--", host.destination],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                      timeout=self.connect_timeout + 20)
            except FileNotFoundError:
                raise BackendUnreachable("no `ssh` command on this machine", "install OpenSSH's client") from None
            except subprocess.TimeoutExpired:
                raise BackendUnreachable(f"{host}: no answer within {self.connect_timeout + 20}s") from None
            if done.returncode != 0:
                errors.seek(0)
                reason = errors.read().decode(errors="replace").strip().splitlines()
                raise BackendUnreachable(f"cannot reach {host} over ssh: {reason[-1] if reason else 'no reason'}",
                                         f"check the address, your key and known_hosts (ssh {host.destination})")

    def run(self, host: Host, command: str, *, stdin: bytes | IO[bytes] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        """Run `command` (built with `script`) under `sh -c` on the host; raise only when ssh
        itself failed (unreachable, refused key), not when the command did."""
        self._ensure_master(host)
        remote = "sh -c " + shlex.quote(command)  # POSIX sh whatever the login shell is
        kwargs: dict[str, object] = {"capture_output": True, "timeout": timeout}
        if isinstance(stdin, bytes) or stdin is None:
            kwargs["input"] = stdin if stdin is not None else b""
        else:
            kwargs["stdin"] = stdin
        try:
            done = subprocess.run([*self.ssh_args(host), remote], **kwargs)  # type: ignore[call-overload]
        except FileNotFoundError:
            raise BackendUnreachable("no `ssh` command on this machine", "install OpenSSH's client") from None
        except subprocess.TimeoutExpired:
            raise BackendUnreachable(f"{host}: no answer within {timeout:.0f}s") from None
        if done.returncode == SSH_UNREACHABLE:
            # The host answered a moment ago (the master is up): a dropped connection is worth a
            # retry. Forget the shared connection so the next call builds a fresh one.
            self.control_path(host).unlink(missing_ok=True)
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise TransientBackendError(f"lost the ssh connection to {host}: {reason[-1] if reason else 'no reason'}")
        return done

    @contextlib.contextmanager
    def stream(self, host: Host, command: str) -> Iterator[IO[bytes]]:
        """Run `command` and read its output as it comes (a 100 MB log is never held in memory).
        A connection lost on the way raises TransientBackendError after what was read."""
        self._ensure_master(host)
        proc = subprocess.Popen([*self.ssh_args(host), "sh -c " + shlex.quote(command)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        _widen_pipe(proc.stdout.fileno())
        try:
            yield proc.stdout
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.stdout.close()
        errors = proc.stderr.read()
        if proc.wait() == SSH_UNREACHABLE:
            self.control_path(host).unlink(missing_ok=True)
            reason = errors.decode(errors="replace").strip().splitlines()
            raise TransientBackendError(f"lost the ssh connection to {host}: {reason[-1] if reason else 'no reason'}")

    def copy(self, host: Host, source: Path, remote_path: str, *, mode: str = "600") -> None:
        """Copy a local file: rsync (over this host's shared connection) when both ends have it,
        else the same stream as `put`. rsync writes to a temp file and renames, like `put`."""
        with progress.step(f"copying {source.name} to {host}"):
            self._copy(host, source, remote_path, mode=mode)

    def _copy(self, host: Host, source: Path, remote_path: str, *, mode: str) -> None:
        if not (shutil.which("rsync") and self._remote_has_rsync(host)):
            self.put(host, source, remote_path, mode=mode)
            return
        self.run(host, script("umask 077 && mkdir -p {dir}", dir=os.path.dirname(remote_path) or "."))
        shell = " ".join(shlex.quote(arg) for arg in self.ssh_args(host)[:-2])  # rsync adds the destination
        target = f"{host.destination}:{remote_path}"
        try:
            done = subprocess.run(["rsync", "--protect-args", f"--chmod=F{mode}", "-e", shell, "--", str(source),
                                   target], capture_output=True, timeout=3600)
        except subprocess.TimeoutExpired:
            raise BackendUnreachable(f"{host}: copying {source.name} took more than an hour") from None
        if done.returncode in (SSH_UNREACHABLE, 12):  # ssh gone / rsync protocol stream broken
            self.control_path(host).unlink(missing_ok=True)
            raise TransientBackendError(f"lost the connection to {host} while copying {source.name}")
        if done.returncode != 0:
            raise BackendUnreachable(f"{host}: rsync of {source.name} failed: "
                                     f"{done.stderr.decode(errors='replace').strip()}")

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one answer per host for this transport's life
    def _remote_has_rsync(self, host: Host) -> bool:
        return self.run(host, "command -v rsync >/dev/null 2>&1").returncode == 0

    def put_many(self, host: Host, files: Sequence[tuple[bytes, str, str]]) -> None:
        """Several small files (data, remote path, mode) in one ssh command instead of one each: a
        tar stream of `<path>.part` members, each renamed into place once all have arrived (atomic,
        as `put`). Paths are absolute or relative to the login directory, as `put` takes them; a mix
        of both, or a `..` in one, goes file by file."""
        kinds = {path.startswith("/") for _, path, _ in files}
        if len(kinds) != 1 or any(".." in PurePosixPath(path).parts for _, path, _ in files):
            for data, path, mode in files:
                self.put(host, data, path, mode=mode)
            return
        stream = io.BytesIO()
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as archive:
            for data, path, mode in files:
                member = tarfile.TarInfo(str(PurePosixPath(path + ".part")).lstrip("/"))
                member.size, member.mode, member.mtime = len(data), int(mode, 8), int(time.time())
                archive.addfile(member, io.BytesIO(data))
        command = script("umask 077 && mkdir -p {dirs} && tar -xf - -C {base}",
                         dirs=sorted({os.path.dirname(path) or "." for _, path, _ in files}),
                         base="/" if kinds == {True} else ".")
        command += "".join(script(" && mv -f {tmp} {path}", tmp=path + ".part", path=path) for _, path, _ in files)
        done = self.run(host, command, stdin=stream.getvalue())
        if done.returncode != 0:
            raise BackendUnreachable(f"{host}: could not write {', '.join(path for _, path, _ in files)}: "
                                     f"{done.stderr.decode(errors='replace').strip()}")

    def put(self, host: Host, data: bytes | Path, remote_path: str, *, mode: str = "600") -> None:
        """Write a file atomically with the given mode (0600 by default: env files hold secrets)."""
        command = script("umask 077 && mkdir -p {dir} && cat > {tmp} && chmod {mode} {tmp} && mv -f {tmp} {path}",
                         dir=os.path.dirname(remote_path) or ".", tmp=remote_path + ".part", mode=mode,
                         path=remote_path)
        if isinstance(data, Path):
            with data.open("rb") as handle:
                done = self.run(host, command, stdin=handle, timeout=3600)
        else:
            done = self.run(host, command, stdin=data)
        if done.returncode != 0:
            raise BackendUnreachable(f"{host}: could not write {remote_path}: "
                                     f"{done.stderr.decode(errors='replace').strip()}")
