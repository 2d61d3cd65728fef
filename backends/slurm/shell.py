"""Where the Slurm commands run: this machine (no `login`), or the login node over ssh.

Both answer the same four calls with commands built by transport.`script()` (every value quoted),
run by `sh -c` in the home directory, which relative `work_dir` paths start from on either side.
The remote one is the ssh machinery of backends/remote/transport.py (ControlMaster, strict host
keys), so a warm status is one round trip on an open connection.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from backends.remote.transport import Host, SSHTransport
from launcher.errors import BackendUnreachable


class Shell(Protocol):
    where: str

    def run(self, command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[bytes]: ...

    def stream(self, command: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def put(self, data: bytes, path: str, *, mode: str = "600") -> None: ...

    def copy(self, source: Path, path: str, *, mode: str = "600") -> None: ...


class LocalShell:
    """sbatch and friends on PATH here; SLURM_CONF and the rest of the environment as the user has them."""

    where = "this machine"

    def run(self, command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(["sh", "-c", command], cwd=Path.home(), capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendUnreachable(f"a Slurm command gave no answer within {timeout:.0f}s",
                                     "is slurmctld up? (scontrol ping)") from None

    @contextlib.contextmanager
    def stream(self, command: str) -> Iterator[IO[bytes]]:
        proc = subprocess.Popen(["sh", "-c", command], cwd=Path.home(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()

    def put(self, data: bytes, path: str, *, mode: str = "600") -> None:
        target = Path.home() / path  # an absolute path stays itself
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = target.with_name(target.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(part, int(mode, 8))
        part.replace(target)

    def copy(self, source: Path, path: str, *, mode: str = "600") -> None:
        self.put(source.read_bytes(), path, mode=mode)


class LoginShell:
    """The login node, over the user's OpenSSH."""

    def __init__(self, host: Host, transport: SSHTransport) -> None:
        self.host = host
        self.transport = transport
        self.where = str(host)

    def run(self, command: str, *, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return self.transport.run(self.host, command, timeout=timeout)

    def stream(self, command: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        return self.transport.stream(self.host, command)

    def put(self, data: bytes, path: str, *, mode: str = "600") -> None:
        self.transport.put(self.host, data, path, mode=mode)

    def copy(self, source: Path, path: str, *, mode: str = "600") -> None:
        self.transport.copy(self.host, source, path, mode=mode)


def shell_for(login: str | None, *, ssh_config: str | None = None, identity_file: str | None = None,
              host_key_checking: str = "yes") -> Shell:
    if not login:
        return LocalShell()
    return LoginShell(Host.parse(login), SSHTransport(ssh_config=ssh_config, identity_file=identity_file,
                                                      host_key_checking=host_key_checking))
