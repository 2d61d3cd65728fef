"""The `local` backend: runs the job on this machine, one detached process group per node.

It runs every node through the same bootstrap.sh that remote nodes run, so the
quickstart exercises the real bundle -> unpack -> setup -> run -> exit-code path.
Everything about a job lives in its directory under $LAUNCH_HOME/local/<job id>,
which is how `status`, `logs` and `list --sync` find it from any later shell.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.remote.nodes import NodeReport, judge, log_blocks, tail_nodes, unreadable_node_fields
from launcher import config, durations, logs, procs
from launcher.backend import (
    Backend,
    Capabilities,
    Handle,
    JobState,
    LazySettings,
    LogLine,
    Readiness,
    Request,
    Status,
    Summary,
    job_name,
)
from launcher.errors import BackendError, UsageError
from launcher.node import Placement, job_files, master_port, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

DEFAULT_CANCEL_GRACE_S = 10.0
_READ_CHUNK = 1 << 20


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.local` in a spec: only how long cancel waits before SIGKILL."""
    from pydantic import BaseModel, ConfigDict

    from launcher.spec import Duration  # "10s" or 10, and the schema says so

    class LocalSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        cancel_grace: Duration = int(DEFAULT_CANCEL_GRACE_S)

    return LocalSettings


class LocalBackend(Backend):
    name: ClassVar[str] = "local"
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, fast_status=True, node_addresses=True)
    settings_model = LazySettings(settings_model)
    handle_fields: ClassVar[tuple[str, ...]] = ("job_dir", "nodes")

    @classmethod
    def unusable_handle_fields(cls, data: Mapping[str, Any]) -> list[str]:
        """Paths and pids are read from the record before any process is signalled."""
        return unreadable_node_fields(data, {"rank": int, "pid": int, "pgid": int, "dir": str})


    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        settings = settings or {}
        grace = settings.get("cancel_grace", DEFAULT_CANCEL_GRACE_S)
        self.cancel_grace_s = float(durations.parse_seconds(grace))
        self.root = config.home() / "local"

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        gpus = _gpu_count()
        found = f"{gpus} NVIDIA GPU(s)" if gpus else "no NVIDIA GPU (CPU jobs only)"
        return Readiness(sdk_installed=True, configured=True,
                         detail=f"runs on this machine: {os.cpu_count()} CPUs, {found}")

    @classmethod
    def machine_gpus(cls, settings: Mapping[str, Any]) -> int:
        """The GPUs every node of a local job shares: `launch plan` checks a spec against them."""
        return _gpu_count()

    # -- submit ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        job_dir = self.root / job_id
        accel = spec.resources.accelerators
        nodes = spec.resources.nodes
        here = f"{job_dir}/"  # the "uploads" are files in the job's directory, read in place
        uploads, files_env = job_files(spec, bundle, Placement(here, here, here, here))
        # the checkpoints stay with the job (README: local keeps outputs and checkpoints in its directory)
        base = {**node_environment(spec, job_id, secrets, output_dir=str(job_dir / "outputs"),
                                   checkpoint_dir=str(job_dir / "checkpoints"), workdir="",
                                   port=master_port(job_id)),
                **files_env}
        node_payloads = []
        for rank in range(nodes):  # every node is on this machine: rank from the loop, master is here
            node_dir = job_dir / f"node-{rank}"
            env = {**base, "LAUNCH_NODE_RANK": str(rank), "LAUNCH_MASTER_ADDR": "127.0.0.1",
                   "LAUNCH_NODE_ADDRS": ",".join(["127.0.0.1"] * nodes),
                   "LAUNCH_WORKDIR": str(node_dir / "work"), "LAUNCH_EXIT_FILE": str(node_dir / "exit_code"),
                   "LAUNCH_MAX_RUNTIME": str(spec.max_runtime or ""), "LAUNCH_LOG_FILE": str(node_dir / "log")}
            node_payloads.append({
                "rank": rank,
                "argv": ["/bin/sh", str(job_dir / "bootstrap.sh")],
                "cwd": str(node_dir),
                "log": str(node_dir / "log"),
                "env": env,
                "inherits_environment": True,
            })
        payload = {
            "job_dir": str(job_dir),
            "idempotency_key": idempotency_key,
            "gpus_per_node_requested": accel.count,
            "cancel_grace_s": self.cancel_grace_s,
            "nodes": node_payloads,
        }
        return Request(self.name, job_id, "spawn_process_groups", payload, tuple(uploads))

    def submit(self, request: Request) -> Handle:
        """Start every node; a repeated submit of the same job id adopts what already runs."""
        payload = request.payload
        job_dir = Path(payload["job_dir"])
        handle_file = job_dir / "handle.json"
        if handle_file.exists():
            return Handle.from_json(json.loads(handle_file.read_text()))
        _check_torchrun(payload["nodes"][0]["env"])
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # logs may hold what jobs print
        job_dir.mkdir(exist_ok=True, mode=0o700)
        for upload in request.uploads:
            if upload.source is None:
                Path(upload.destination).write_text(upload.content or "")
            else:
                _place(upload.source, Path(upload.destination))
        _warn_missing_gpus(payload["gpus_per_node_requested"])
        nodes: list[dict[str, Any]] = []
        try:
            for node in payload["nodes"]:
                nodes.append(self._start_node(node))
        except OSError as exc:  # never leave part of a job running
            import shutil

            partial = Handle(self.name, request.job_id, {"job_dir": str(job_dir), "nodes": nodes})
            self._stop(partial, grace_s=0)
            shutil.rmtree(job_dir, ignore_errors=True)
            raise BackendError(f"could not start node {len(nodes)} of {request.job_id}: {exc}") from exc
        handle = Handle(self.name, request.job_id, {
            "job_dir": str(job_dir), "nodes": nodes, "submitted_at": time.time(),
            "cancel_grace_s": payload["cancel_grace_s"], "idempotency_key": payload.get("idempotency_key"),
        })
        _write_atomic(handle_file, json.dumps(handle.to_json()))
        return handle

    def _start_node(self, node: dict[str, Any]) -> dict[str, Any]:
        import subprocess  # here, not at the top: `launch list` loads this module and never spawns

        node_dir = Path(node["cwd"])
        pid_file = node_dir / "pid.json"
        if pid_file.exists():  # started by an earlier, interrupted submit
            return json.loads(pid_file.read_text())
        node_dir.mkdir(parents=True, exist_ok=True)
        with open(node["log"], "ab") as log_file:
            proc = subprocess.Popen(
                node["argv"], cwd=node_dir, env={**os.environ, **node["env"]},
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        info = {"rank": node["rank"], "pid": proc.pid, "pgid": proc.pid,
                "start": procs.start_time(proc.pid), "dir": str(node_dir)}
        _write_atomic(pid_file, json.dumps(info))
        return info

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        """Read from the job's files and the nodes' pids; stops nothing (that is `finish`)."""
        job_dir = Path(handle.data["job_dir"])
        if not job_dir.exists():
            return Status(JobState.UNKNOWN, "missing", f"job directory {job_dir} no longer exists")
        marker = job_dir / "cancel_requested"
        cancelled = marker.exists()
        grace = float(handle.data.get("cancel_grace_s", self.cancel_grace_s))
        reports = []
        for node in handle.data["nodes"]:
            node_dir = Path(node["dir"])
            alive = procs.is_alive(node["pid"], node.get("start"))
            # the exit code is read after the liveness check: a node that writes it and ends
            # between the two reads is then seen as exited, never as vanished
            reports.append(NodeReport(node["rank"], _exit_code(node_dir), alive, _exit_mtime(node_dir)))
        return judge(reports, cancelled=cancelled, started_at=handle.data.get("submitted_at"),
                     cancel_overdue=cancelled and time.time() - marker.stat().st_mtime > grace + 5)

    def finish(self, handle: Handle, status: Status) -> None:
        """The nodes still running once the job has ended (one node failed, or the CLI that
        cancelled died before its SIGKILL) are stopped rather than left hanging at a rendezvous."""
        if Path(handle.data["job_dir"]).exists():
            self._stop(handle, grace_s=0)

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Complete lines after the cursor {rank: byte offset}; a node's last partial
        line is held back until that node has exited, so a follow never splits a line."""
        offsets = {int(k): v for k, v in (since or {}).items()}
        for info in handle.data["nodes"]:
            rank = info["rank"]
            if node is not None and rank != node:
                continue
            yield from _read_lines(Path(info["dir"]) / "log", rank, offsets, finished=_finished(info))

    def tail(self, handle: Handle, lines: int, *, node: int | None = None) -> tuple[list[LogLine], Any]:
        """The last `lines` lines of each node, read from the end of its file (a 10 GB log costs
        what its tail costs), and a cursor at the end for a follow that comes next."""
        def read(info: dict[str, Any]) -> tuple[bytes, int, bool]:
            return (*_read_tail(Path(info["dir"]) / "log", lines), _finished(info))
        return tail_nodes(handle.data["nodes"], lines, node, read)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        job_dir = Path(handle.data["job_dir"])
        if not job_dir.exists():
            return
        marker = job_dir / "cancel_requested"
        if not marker.exists() and (ended := self.status(handle)).state.is_terminal:
            self.finish(handle, ended)  # finished before the cancel: keep its real outcome
            return
        marker.touch()
        self._stop(handle, grace_s=float(handle.data.get("cancel_grace_s", self.cancel_grace_s)))

    def _stop(self, handle: Handle, grace_s: float) -> None:
        """SIGTERM every node's process group, SIGKILL what is left after the grace period."""
        live = [n for n in handle.data["nodes"] if procs.is_alive(n["pid"], n.get("start"))]
        for node in live:
            procs.signal_group(node["pgid"], signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while live and time.monotonic() < deadline:
            time.sleep(0.05)
            live = [n for n in live if procs.is_alive(n["pid"], n.get("start"))]
        for node in live:
            procs.signal_group(node["pgid"], signal.SIGKILL)
        deadline = time.monotonic() + 2.0  # SIGKILL is not instant: report the state after it
        while live and time.monotonic() < deadline:
            time.sleep(0.02)
            live = [n for n in live if procs.is_alive(n["pid"], n.get("start"))]

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        if not self.root.is_dir():
            return
        for handle_file in sorted(self.root.glob("*/handle.json")):
            try:
                handle = Handle.from_json(json.loads(handle_file.read_text()))
            except (OSError, ValueError, KeyError):
                continue
            created = handle.data.get("submitted_at")
            if since is not None and created is not None and created < since:
                continue
            name = job_name(handle.job_id)
            yield Summary(handle=handle, name=name, status=self.status(handle), created_at=created,
                          idempotency_key=handle.data.get("idempotency_key"))


def _place(source: Path, destination: Path) -> None:
    """Local "upload": a hard link when possible (bundles can be large), else a copy."""
    import shutil

    if destination.exists():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _finished(info: dict[str, Any]) -> bool:
    """The node has written its exit code, or is gone: its last partial line is final."""
    return _exit_code(Path(info["dir"])) is not None or not procs.is_alive(info["pid"], info.get("start"))


def _exit_code(node_dir: Path) -> int | None:
    try:
        return int((node_dir / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None


def _exit_mtime(node_dir: Path) -> float | None:
    try:
        return (node_dir / "exit_code").stat().st_mtime
    except OSError:
        return None

def _read_lines(path: Path, rank: int, offsets: dict[int, int], finished: bool) -> Iterator[LogLine]:
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        file.seek(offsets.get(rank, 0))
        yield from log_blocks(iter(lambda: file.read(_READ_CHUNK), b""), rank, offsets, finished=finished)


def _read_tail(path: Path, lines: int) -> tuple[bytes, int]:
    """Enough bytes from the end of `path` to hold `lines` lines (and one more to know where the
    first of them starts), and the file size they end at."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            want = 64 * 1024
            while True:
                start = max(0, size - want)
                file.seek(start)
                data = file.read(size - start)
                if start == 0 or data.count(b"\n") > lines + 1:
                    return data, size
                want *= 4
    except FileNotFoundError:
        return b"", 0


def _gpu_count() -> int:
    """NVIDIA GPUs here: `nvidia-smi -L` where installed, else the driver's /proc entries (one per GPU)."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        try:
            return len(os.listdir("/proc/driver/nvidia/gpus"))
        except OSError:
            return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _warn_missing_gpus(requested: int) -> None:
    if requested <= 0:
        return
    have = _gpu_count()
    if have < requested:
        logs.get().warning("the spec asks for %d GPU(s) per node but this machine has %d; "
                    "the local backend runs the job anyway", requested, have)


def _check_torchrun(env: Mapping[str, str]) -> None:
    """`distributed: torchrun` needs a torchrun on the PATH the job runs with; without one the job
    dies with `torchrun: not found` (exit 127). Refuse before starting anything when nothing could
    install it (no setup:); when setup: might, warn and let bootstrap.sh say it again if it did not."""
    import shutil

    if env.get("LAUNCH_DISTRIBUTED") != "torchrun":
        return
    job_path = env.get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which("torchrun", path=job_path):
        return
    problem = "distributed: torchrun, but there is no torchrun command on the PATH the job runs with"
    if env.get("LAUNCH_SETUP_FILE"):
        logs.get().warning("%s; the job fails unless its setup: installs PyTorch (%s)", problem, _torchrun_hint())
        return
    raise UsageError(problem, _torchrun_hint())


def _torchrun_hint() -> str:
    """How to get torchrun onto the job's PATH, naming launch's own environment when it has one."""
    import sys

    here = Path(sys.executable).parent
    if (here / "torchrun").exists():
        how = f"`source {here / 'activate'}`" if (here / "activate").exists() else f"add {here} to PATH"
        return f"torchrun is in {here}, the environment launch runs from, which is not on PATH: {how}, then run again"
    return ("install PyTorch into the environment the job runs in (`pip install torch`) and activate it "
            "before `launch run`, or add `pip install torch` to setup:")
