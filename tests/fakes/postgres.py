"""A real PostgreSQL server for the shared-store tests: Debian's binaries (ci/test installs them),
a fresh cluster in its own temp dir on a free 127.0.0.1 port, password auth (scram), stopped after.

Not a fake: the store's exactly-once guarantees come from PostgreSQL's own locking, which only the
real server has. As root (CI containers) the server runs as `nobody`, since postgres refuses root; its
directory is then made with mkdtemp outside pytest's 0700 basetemp, which `nobody` could not enter.
Each pytest(-xdist) worker starts its own server; each test gets its own schema (`url(schema)`).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "launch"
PASSWORD = "s3cret-Pw!for:launch@test"  # URL-special characters on purpose: quoting is tested with it


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def postgres_available() -> bool:
    return bindir() is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        found = bindir()
        assert found is not None, "PostgreSQL is not installed (ci/test installs Debian's postgresql)"
        self.bin = found
        self.root = Path(tempfile.mkdtemp(prefix="launch-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            shutil.chown(self.root, "nobody")
            shutil.chown(pwfile, "nobody")
        self._call("initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                   "-E", "UTF8", "--no-sync", "--no-instructions")
        pwfile.unlink()
        self.start()

    def _call(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True,
                                timeout=120, cwd=self.root)
        if result.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}\n{log}")

    def start(self) -> None:
        """Start on the same port as before after a stop (clients reconnect to it); first on a free one."""
        for _ in range(5):
            port = self.port or _free_port()
            try:
                self._call("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "-o",
                           f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c fsync=off "
                           "-c max_connections=200 -c full_page_writes=off", "start")
            except RuntimeError:
                if self.port:  # the old port taken meanwhile: nothing else to try
                    raise
                continue
            self.port = port
            return
        raise RuntimeError("no free port for PostgreSQL after 5 tries")

    def stop(self, mode: str = "fast") -> None:
        self._call("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, schema: str = "public", *, password: bool = True) -> str:
        from urllib.parse import quote

        auth = f"{USER}:{quote(PASSWORD, safe='')}" if password else USER
        options = "" if schema == "public" else f"?options=-csearch_path%3D{schema}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/postgres{options}"

    def new_schema(self, name: str) -> str:
        """An empty schema: one test's own database, at the cost of a CREATE SCHEMA."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        return self.url(name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not come back")
