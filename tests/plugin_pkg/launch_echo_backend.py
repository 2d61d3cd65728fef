"""A minimal third-party backend: "runs" a job by recording it and echoing its command.

It lives outside the launch repo's packages and is installed with pip by the tests,
so it proves the entry-point contract: a plugin subclasses `launcher.backend.Backend`,
imports nothing else from launch but `launcher.errors`, and everything else (store,
status, logs, wait, list --sync, find by idempotency key) works unchanged.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

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
)


def _settings_model():
    from pydantic import BaseModel, ConfigDict

    class EchoSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        exit_code: int = 0
        unreachable: bool = False

    return EchoSettings


class EchoBackend(Backend):
    name = "echo"
    capabilities = Capabilities(multi_node=False)
    settings_model = LazySettings(_settings_model)

    def __init__(self, settings, client=None):
        self.exit_code = int((settings or {}).get("exit_code", 0))
        self.unreachable = bool((settings or {}).get("unreachable", False))
        self.root = Path(os.environ["LAUNCH_HOME"]) / "echo"

    @classmethod
    def readiness(cls, settings):
        return Readiness(sdk_installed=True, configured=True, detail="echoes the run command")

    def render(self, spec, job_id, bundle, secrets, *, idempotency_key=None):
        return Request(self.name, job_id, "echo", {"run": spec.run, "exit_code": self.exit_code,
                                                   "idempotency_key": idempotency_key})

    def submit(self, request: Request) -> Handle:
        if self.unreachable:
            from launcher.errors import BackendUnreachable

            raise BackendUnreachable("echo service unreachable", "check your network")
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"job_id": request.job_id, **request.payload, "at": time.time()}
        (self.root / f"{request.job_id}.json").write_text(json.dumps(record))
        return Handle(self.name, request.job_id, {"file": str(self.root / f"{request.job_id}.json")})

    def status(self, handle: Handle) -> Status:
        record = json.loads(Path(handle.data["file"]).read_text())
        state = JobState.SUCCEEDED if record["exit_code"] == 0 else JobState.FAILED
        return Status(state, "echoed", exit_code=record["exit_code"])

    def logs(self, handle, *, follow=False, since=None, node=None):
        if since:
            return
        record = json.loads(Path(handle.data["file"]).read_text())
        yield LogLine(f"echo: {record['run']}", 0, 1)

    def cancel(self, handle):
        return None

    def finish(self, handle, status):
        """Leaves a trace per call, so the tests can count that the runner finishes a job once."""
        with open(Path(handle.data["file"]).with_suffix(".finished"), "a") as trace:
            trace.write(f"{status.state.value}\n")

    def list(self, *, since=None):
        for path in sorted(self.root.glob("*.json")):
            handle = Handle(self.name, path.stem, {"file": str(path)})
            record = json.loads(path.read_text())
            if since is not None and record["at"] < since:
                continue
            yield Summary(handle=handle, name=path.stem.split("-")[0], status=self.status(handle),
                          created_at=record["at"], idempotency_key=record.get("idempotency_key"))
