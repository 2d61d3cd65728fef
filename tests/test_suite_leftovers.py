"""The session-end check (tests/conftest.py, tests/leftovers.py): a process the suite started and
left running fails the run and is killed; processes of other sessions are left alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import leftovers

TESTS = Path(__file__).resolve().parent


def _gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in "ZX":
            return True
        time.sleep(0.05)
    return False


def _inner_suite(tmp_path: Path) -> Path:
    """A suite in tmp_path with the real conftest and what it imports (leftovers, the fakes' bug record)."""
    suite = tmp_path / "suite"
    (suite / "fakes").mkdir(parents=True)
    for name in ("conftest.py", "leftovers.py", "fakes/__init__.py", "fakes/bugs.py"):
        shutil.copy(TESTS / name, suite / name)
    return suite


def _run_inner(suite: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest on the inner suite; its end check waits 1 s, not 10, for processes to go by themselves."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(suite),
                           f"--basetemp={tmp_path / 'bt'}", "--rootdir", str(suite)],
                          capture_output=True, text=True, timeout=120, cwd=suite,
                          env={**os.environ, "LAUNCH_TEST_LEFTOVER_GRACE_S": "1"})


def test_found_by_token_or_by_temp_dir_and_nothing_else(tmp_path: Path):
    token = os.environ[leftovers.MARKER]
    marked = subprocess.Popen(["sleep", "60"], start_new_session=True)  # inherits the session's token
    in_tmp = subprocess.Popen(["sleep", "61"], cwd=tmp_path, env={"PATH": os.environ["PATH"]},
                              start_new_session=True)
    other = subprocess.Popen(["sleep", "62"], env={"PATH": os.environ["PATH"], leftovers.MARKER: "another-session"},
                             start_new_session=True)
    try:
        found = leftovers.suite_processes(token, [f"{tmp_path}{os.sep}"])
        assert marked.pid in found and "sleep 60" in found[marked.pid]
        assert in_tmp.pid in found and other.pid not in found and os.getpid() not in found
        leftovers.kill([marked.pid, in_tmp.pid])
        marked.wait(5)
        in_tmp.wait(5)
        assert not {marked.pid, in_tmp.pid} & set(leftovers.suite_processes(token, [f"{tmp_path}{os.sep}"]))
    finally:
        for proc in (marked, in_tmp, other):
            proc.kill()
            proc.wait(5)


def test_a_session_that_leaves_a_process_fails_and_the_process_is_killed(tmp_path: Path):
    suite = _inner_suite(tmp_path)
    pid_file = tmp_path / "leaked.pid"
    (suite / "test_leak.py").write_text(
        "import subprocess\n\n\ndef test_forgets_its_child():\n"
        f"    proc = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"    open({str(pid_file)!r}, 'w').write(str(proc.pid))\n")
    result = _run_inner(suite, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "processes left running" in result.stdout
    leaked = int(pid_file.read_text())
    assert f"pid {leaked}: sleep 300" in result.stdout
    assert _gone(leaked), "the check did not kill what was left"


def test_a_clean_session_passes(tmp_path: Path):
    suite = _inner_suite(tmp_path)
    (suite / "test_clean.py").write_text(
        "import subprocess\n\n\ndef test_waits_for_its_child():\n    subprocess.run(['true'], check=True)\n")
    result = _run_inner(suite, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processes left running" not in result.stdout


def test_a_worker_finds_its_own_leftovers_not_another_workers_and_the_run_fails(tmp_path: Path):
    """Under pytest-xdist each worker checks at its end: one worker's leak is killed and fails the whole run,
    while a process another worker's test is still using (same user, same suite) is left alone."""
    suite = _inner_suite(tmp_path)
    leaked_file, pid_file = tmp_path / "leaked.pid", tmp_path / "leaked.pid.tmp"
    (suite / "test_leak.py").write_text(
        "import os\nimport subprocess\n\n\ndef test_forgets_its_child(tmp_path):  # its worker has a temp dir too\n"
        "    proc = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"    open({str(pid_file)!r}, 'w').write(str(proc.pid))\n"
        f"    os.rename({str(pid_file)!r}, {str(leaked_file)!r})\n")
    (suite / "test_busy.py").write_text(
        "import subprocess\nimport time\nfrom pathlib import Path\n\n\n"
        "def _alive(pid):\n"
        "    try:\n"
        "        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] not in 'ZX'\n"
        "    except OSError:\n"
        "        return False\n\n\n"
        "def test_still_uses_its_child_while_the_other_worker_ends(tmp_path):\n"
        "    own = subprocess.Popen(['sleep', '301'], cwd=tmp_path, start_new_session=True)  # in its worker's dir\n"
        "    try:\n"
        f"        leaked, deadline = Path({str(leaked_file)!r}), time.monotonic() + 60\n"
        "        while not leaked.exists() or _alive(int(leaked.read_text())):  # the other worker's check kills it\n"
        "            assert time.monotonic() < deadline, 'the other worker never ended'\n"
        "            time.sleep(0.05)\n"
        "        assert own.poll() is None, \"another worker's end check killed this worker's process\"\n"
        "    finally:\n"
        "        own.kill()\n"
        "        own.wait()\n")
    result = _run_inner(suite, tmp_path, "-n", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "processes left running" in result.stdout, result.stdout
    leaked = int(leaked_file.read_text())
    assert f"pid {leaked}: sleep 300" in result.stdout and "sleep 301" not in result.stdout
    assert result.stdout.count("  pid ") == 1, result.stdout  # nor the workers themselves, by the controller
    assert _gone(leaked), "the check did not kill what was left"
