"""Progress on stderr: shown while a slow step runs when stderr is a terminal (a real
pseudo-terminal here), and not one byte of it when stderr is a pipe, as in CI and scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ESC = "\x1b"


def run_with_terminal(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[str, str, int]:
    """Run args with stderr on a pseudo-terminal; return (stdout, what the terminal got, exit code)."""
    master, slave = os.openpty()
    received = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                              text=True, env=env, timeout=timeout)
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return done.stdout, received.decode(errors="replace"), done.returncode


def environment(launch_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_STEP_SUMMARY")}
    return {**env, "LAUNCH_HOME": str(launch_home), "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
            "COLUMNS": "120"}


@pytest.fixture
def spec_with_code(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: tty\ncode: {code}\nrun: python train.py\n")
    return spec


def test_packing_shows_progress_on_a_terminal(spec_with_code: Path, launch_home: Path) -> None:
    out, terminal, code = run_with_terminal([sys.executable, "-m", "launcher", "run", str(spec_with_code),
                                             "--dry-run"], environment(launch_home))
    assert code == 0, terminal
    assert f"packing {spec_with_code.parent / 'code'}" in terminal
    assert '"operation"' in out and ESC not in out  # the request on stdout stays clean


def test_packing_writes_no_progress_to_a_pipe(spec_with_code: Path, launch_home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "launcher", "run", str(spec_with_code), "--dry-run"],
                          capture_output=True, text=True, env=environment(launch_home), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "packing" not in done.stderr and ESC not in done.stderr


def test_submitting_shows_progress_on_a_terminal_only(spec_with_code: Path, launch_home: Path) -> None:
    """The provider call (uploads included) can take many seconds on a cloud backend."""
    args = [sys.executable, "-m", "launcher", "run", str(spec_with_code), "--wait"]
    out, terminal, code = run_with_terminal(args, environment(launch_home))
    assert code == 0, terminal
    assert "to local (uploads included)" in terminal and "submitting tty-" in terminal
    assert ESC not in out
    piped = subprocess.run(args, capture_output=True, text=True, env=environment(launch_home), timeout=60)
    assert piped.returncode == 0, piped.stderr
    assert "uploads included" not in piped.stderr and ESC not in piped.stderr


def test_dumb_terminal_gets_no_spinner(spec_with_code: Path, launch_home: Path) -> None:
    env = {**environment(launch_home), "TERM": "dumb"}
    _, terminal, code = run_with_terminal([sys.executable, "-m", "launcher", "run", str(spec_with_code),
                                           "--dry-run"], env)
    assert code == 0, terminal
    assert "packing" not in terminal


SSH_CONNECT = textwrap.dedent("""
    from backends.remote.transport import Host, SSHTransport
    from launcher.errors import BackendUnreachable
    try:
        SSHTransport(connect_timeout=5).run(Host.parse("127.0.0.1:1"), "true")
    except BackendUnreachable as exc:
        print("unreachable:", exc.message)
""")


@pytest.mark.skipif(not any(os.access(os.path.join(d, "ssh"), os.X_OK)
                            for d in os.environ.get("PATH", "").split(os.pathsep)), reason="no ssh client")
def test_ssh_connection_wait_shows_progress_only_on_a_terminal(launch_home: Path) -> None:
    env = environment(launch_home)
    out, terminal, code = run_with_terminal([sys.executable, "-c", SSH_CONNECT], env)
    assert code == 0 and out.startswith("unreachable:"), (out, terminal)
    assert "connecting to 127.0.0.1:1 over ssh" in terminal
    piped = subprocess.run([sys.executable, "-c", SSH_CONNECT], capture_output=True, text=True, env=env, timeout=60)
    assert piped.stdout.startswith("unreachable:")
    assert "connecting" not in piped.stderr and ESC not in piped.stderr


NESTED = textwrap.dedent("""
    import threading, time
    from launcher import progress
    def worker(n):
        with progress.step(f"worker {n} [x]"):
            time.sleep(0.3)
    with progress.step("outer step"):
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads: t.start()
        for t in threads: t.join()
        time.sleep(0.3)
    print("done", progress._shown is None, progress._running == [])
""")


def test_nested_and_concurrent_steps_share_one_line(launch_home: Path) -> None:
    """A sweep packs in threads and an ssh connect runs inside a submit: steps nest without
    rich's one-live-display error, the newest running one is shown, and all end cleanly."""
    out, terminal, code = run_with_terminal([sys.executable, "-c", NESTED], environment(launch_home))
    assert code == 0, terminal
    assert out.strip() == "done True True"
    assert "outer step" in terminal and "[x]" in terminal  # markup-like text shown as written
