"""Small helpers shared by test modules (imported as `helpers`; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def live_group_members(pgid: int) -> list[int]:
    """Pids of processes (zombies excluded) whose process group is `pgid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


JOBS = Path(__file__).parent / "jobs"


def job_script(name: str, directory: Path) -> Path:
    """Copy the job script tests/jobs/`name` (shared by the backends' multi-node tests) into a job's code dir."""
    import shutil

    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(JOBS / name, directory / name))


class BucketBackendCli:
    """The CLI against one of the bucket-backed clouds' fake stacks (PAI-DLC, TI-ONE, AIHC: a job API fake
    plus moto's S3 as the object store, tests/fakes/bucket_stack.py): LAUNCH_HOME's config.toml points at
    the stack, a ./src code dir holds a train.py, and every command carries the stack's credentials."""

    def __init__(self, backend: str, stack: Any, fake: Any, credentials: dict[str, str], *, cli: Any,
                 write_spec: Any, launch_home: Path, tmp_path: Path) -> None:
        self.backend, self.stack, self.fake, self.credentials = backend, stack, fake, credentials
        self._cli, self._write_spec = cli, write_spec
        launch_home.mkdir(parents=True, exist_ok=True)
        (launch_home / "config.toml").write_text(stack.config())
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "train.py").write_text(
            "import os\nprint('hello from node', os.environ['LAUNCH_NODE_RANK'])\n")

    def spec(self, body: str) -> Path:
        return self._write_spec(f"name: {self.backend.replace('_', '-')}-e2e\nimage: img:1\ncode: ./src\n{body}")

    def run(self, *args: str, check_rc: int | None = None, env: dict | None = None, **kw: Any) -> Any:
        return self._cli(*args, check_rc=check_rc, env={**self.credentials, **(env or {})}, **kw)

    def submit(self, spec: Path, *extra: str, env: dict | None = None) -> str:
        result = self.run("run", str(spec), "--backend", self.backend, *extra, check_rc=0, env=env)
        return re.search(rf"submitted (\S+) to {self.backend}", result.stdout)[1]

    def close(self) -> None:
        """Stop what the fake still runs; afterwards nothing the provider's definition rejects."""
        self.fake.stop_all()
        assert self.fake.violations == []


def check_golden(path: Path, shown: Any) -> None:
    """Compare what a render/plan produced with its reviewed golden file; UPDATE_GOLDEN=1 rewrites the file
    first, so an intended change is one rerun and a diff to review. A str is compared as text, anything else
    as JSON (parsed, so the file's indentation is not part of the golden)."""
    import json
    import os

    as_text = isinstance(shown, str)
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(shown if as_text else json.dumps(shown, indent=2, sort_keys=True) + "\n")
    kept = path.read_text()
    assert (shown == kept) if as_text else (shown == json.loads(kept)), (
        f"{path.name} changed; rerun with UPDATE_GOLDEN=1 and review the diff")
