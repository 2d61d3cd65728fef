"""Small helpers shared by test modules (imported as `helpers`; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path


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
