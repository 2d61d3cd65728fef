"""A real two-node `distributed: paddle` job on the local backend: bootstrap.sh starts each node through
`python -m paddle.distributed.launch` with the flags it derived (--nnodes, --rank, --master, --host,
--nproc_per_node), paddle's own rendezvous joins the two nodes, and the job's script all-reduces over
paddle's CPU (gloo) collectives with no launcher-specific code.

paddlepaddle (CPU) is a hard requirement: the `test` extra installs it. Paddle's launcher writes its whole
environment (the job's secrets with it) to backup_env.<rank>.json next to the workers' logs, which its
workers read while they run; bootstrap.sh deletes those files when the launcher ends, and the test checks
that no file the job leaves holds the secret.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from helpers import job_script

SUBMITTED = re.compile(r"submitted (\S+) to local")
VENV_BIN = Path(sys.executable).parent
SECRET = "s3cret-paddle-value"


def test_paddle_all_reduce_across_two_local_nodes(cli, write_spec, tmp_path, launch_home):
    job_script("paddle_sum.py", tmp_path / "src")
    spec = write_spec("name: paddlesum\nresources:\n  nodes: 2\ndistributed: paddle\ncode: ./src\n"
                      "run: python paddle_sum.py\nsecrets: [PADDLE_TEST_SECRET]\n"
                      f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n")
    result = cli("run", str(spec), "--backend", "local", "--follow", env={"PADDLE_TEST_SECRET": SECRET},
                 timeout=180)
    context = f"launch run exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, context
    for rank in (0, 1):
        assert re.search(rf"^\[node {rank}\] paddle sum=3 rank={rank} world=2 node={rank}$", result.stdout,
                         re.M), context
    job = SUBMITTED.search(result.stdout).group(1)
    record = json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0, record
    job_dir = launch_home / "local" / job
    logs = sorted(p.name for p in (job_dir / "node-1" / "work" / ".paddle-log").iterdir())
    assert "workerlog.0" in logs and not any(name.startswith("backup_env") for name in logs), logs
    holding = [str(p) for p in job_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert holding == [], f"the secret is in {holding}"
    assert SECRET not in result.stdout + result.stderr
