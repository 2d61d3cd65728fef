"""The README's "A short tour" block, run as printed, line after line, in one shell.

A new user copies these lines in order; each must work after the ones before it
(the tour used to name jobs by a prefix its own earlier runs made ambiguous).
`launch` is a small script on PATH that runs this checkout's CLI.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# lines that need a cloud account; everything else runs here, on the local backend
NEEDS_A_PROVIDER = re.compile(r"--backend +(vertex|sagemaker|azureml|lambda_cloud|ssh)")


def tour_lines() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## A short tour\n\n```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no tour block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_tour_runs_as_printed(launch_home: Path, tmp_path: Path) -> None:
    lines = tour_lines()
    skipped = [line for line in lines if NEEDS_A_PROVIDER.search(line)]
    assert len(skipped) == 1, skipped  # only the failover example needs accounts
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "launch").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m launcher \"$@\"\n")
    (bin_dir / "launch").chmod(0o755)
    work = tmp_path / "work"  # the tour writes launch-spec.schema.json into the current directory
    work.mkdir()
    (work / "job_specs").symlink_to(REPO / "job_specs")
    rc_file = tmp_path / "rcs"
    script = ["set -u"]
    for number, line in enumerate(lines):
        if line in skipped:
            continue
        script += [f"echo '>>> {number}' >&2", line, f"echo {number} $? >> {shlex.quote(str(rc_file))}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_"))}
    env.update({"LAUNCH_HOME": str(launch_home), "PATH": f"{bin_dir}:{env['PATH']}",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))})
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True,
                            timeout=300)
    codes = dict(line.split() for line in rc_file.read_text().splitlines())
    failed = {lines[int(n)]: rc for n, rc in codes.items() if rc != "0"}
    assert not failed, f"{failed}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert len(codes) == len(lines) - len(skipped)
    # the commands without a JOB said which job they meant
    assert result.stderr.count("(no JOB given: the newest job, quickstart-") == 4, result.stderr
    assert "final accuracy" in result.stdout  # logs -f followed the first job to its end
    assert (work / "launch-spec.schema.json").stat().st_size > 0
    # the sweep's two jobs were listed by their point, then cancelled by the group's prefix
    assert re.search(r"^quickstart-\S+ +lr=1e-3 ", result.stdout, re.M), result.stdout
    assert re.search(r"^quickstart-\S+ +lr=3e-4 ", result.stdout, re.M), result.stdout
