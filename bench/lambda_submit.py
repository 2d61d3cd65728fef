"""How much does `launch` add to a Lambda Cloud submit? The launcher against a plain requests + ssh script.

Run by hand (not in CI): .venv/bin/python bench/lambda_submit.py [--quick]

The Lambda API fake (tests/fakes/lambda_fake.py: every exchange validated against Lambda's OpenAPI spec,
its rate limits enforced: one request per 50 ms, one launch per 0.3 s; an instance boots in 0.3 s) and a
real sshd on 127.0.0.1 (tests/fakes/sshd.py) standing in for every instance. One submit of each per round,
the order rotating (bench/timing.py); instances are terminated between rounds through the fake's own hook,
outside the clock, and `keep_instances` keeps the launcher's job from calling the API when it ends.

Both sides make the same calls (issue 27: no baseline doing more or less work):
  API:  list instances (so that a retried submit never launches twice), instance types, one launch, polls until
        active (the same number on both sides: both wait for the same 0.3 s boot at the same poll interval).
  ssh:  4 commands on one multiplexed connection (ControlMaster) each: ours counts the GPUs as its sshd probe,
        writes the bundle, bootstrap.sh and run.sh in one command (a tar stream), writes the env file and starts
        the node in one command, and writes handle.json (the record `launch list --sync` finds on the host);
        the script counts the GPUs as its probe (`nvidia-smi -L`), makes the job dir, `scp`s the same three
        files and starts the run in the background with one `ssh`.
  ours also: spec, bundle, render and the store's writes, in-process (`launcher.runner.submit`).

Goal (issues 10, 27): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from launch_home import launch_home
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
KEY = "lambda-bench-key-0123456789"
REQUEST_S, LAUNCH_S, BOOT_POLL_S = 0.05, 0.3, 0.1
OURS, PLAIN = "launcher runner.submit", "plain requests + ssh/scp script"
SMI = "#!/bin/sh\nfor i in 0 1 2 3 4 5 6 7; do echo \"GPU $i: NVIDIA H100 80GB HBM3 (UUID: x)\"; done\n"


class Plain:
    """The script-equivalent, paced as Lambda asks (one request per REQUEST_S, one launch per LAUNCH_S)."""

    def __init__(self, base_url: str, srv: Any, scratch: Path) -> None:
        import requests

        self.base_url = base_url
        self.srv = srv
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {KEY}", "Accept": "application/json"})
        self.last = self.last_launch = 0.0
        self.control_dir = tempfile.mkdtemp(prefix="bench-cm-", dir="/tmp")  # short: a socket path's limit
        self.scratch = scratch

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        now = time.monotonic()
        wait = self.last + REQUEST_S - now
        if path.endswith("/launch"):
            wait = max(wait, self.last_launch + LAUNCH_S - now)
        if wait > 0:
            time.sleep(wait)
        answer = self.http.request(method, self.base_url + path, json=body, timeout=30)
        self.last = time.monotonic()
        if path.endswith("/launch"):
            self.last_launch = self.last
        answer.raise_for_status()
        return answer.json()["data"]

    def ssh(self, *args: str) -> list[str]:
        """Multiplexed, as the launcher's transport is: every fake instance is the same sshd, so both sides
        reuse one connection across submits (against real instances, both would open one per instance)."""
        return ["-F", str(self.srv.ssh_config), "-o", "ControlMaster=auto", "-o",
                f"ControlPath={self.control_dir}/%C", "-o", "ControlPersist=120", *args]

    def job(self, request: Any) -> Callable[[], None]:
        """One submit: the launcher's rendered launch body, files and run line, prepared outside the clock."""
        body = request.payload["launch"][0]
        files = []
        for upload in request.uploads:
            local = Path(tempfile.mkdtemp(dir=self.scratch)) / Path(upload.destination).name
            if upload.content is not None:
                local.write_text(upload.content)
            else:
                local.write_bytes(upload.source.read_bytes())
            files.append(str(local))
        remote = f"{self.srv.remote_root}/plain/{request.job_id}"
        target = f"{self.srv.user}@127.0.0.1"

        def go() -> None:
            self.call("GET", "/instances")  # what a retry must look at first, as the launcher does
            types = self.call("GET", "/instance-types")
            name = next(n for n, t in types.items() if t["regions_with_capacity_available"])
            region = types[name]["regions_with_capacity_available"][0]["name"]
            launched = self.call("POST", "/instance-operations/launch",
                                 {"region_name": region, "instance_type_name": name, **body})
            instance_id = launched["instance_ids"][0]
            while self.call("GET", f"/instances/{instance_id}")["status"] != "active":
                time.sleep(BOOT_POLL_S)
            port = ["-p", str(self.srv.port)]
            gpus = ["ssh", *self.ssh(*port, target, "nvidia-smi -L | grep -c '^GPU '")]
            while subprocess.run(gpus, capture_output=True).returncode:
                time.sleep(BOOT_POLL_S)
            subprocess.run(["ssh", *self.ssh(*port, target, f"mkdir -p {remote}")], check=True, capture_output=True)
            subprocess.run(["scp", "-q", *self.ssh("-P", str(self.srv.port), *files, f"{target}:{remote}/")],
                           check=True, capture_output=True)
            subprocess.run(["ssh", *self.ssh(*port, target, f"cd {remote} && nohup sh run.sh > log 2>&1 &")],
                           check=True, capture_output=True)
        return go


def measure(quick: bool) -> Section:
    runs, warmups = (3, 1) if quick else (10, 2)
    from fakes.lambda_fake import LambdaFake
    from fakes.sshd import SSHServer, sshd_available

    sec = Section("Submit overhead")
    if not sshd_available():
        sec.notes.append("Lambda Cloud: not measured: needs /usr/sbin/sshd, ssh and ssh-keygen")
        return sec
    with tempfile.TemporaryDirectory(prefix="launch-bench-lambda-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "gpus").mkdir()
        (tmp / "gpus" / "nvidia-smi").write_text(SMI)
        (tmp / "gpus" / "nvidia-smi").chmod(0o755)
        with SSHServer("127.0.0.1", env={"PATH": f"{tmp / 'gpus'}:/usr/local/bin:/usr/bin:/bin"}) as srv, \
                LambdaFake(api_key=KEY, ip="127.0.0.1", boot_s=0.3) as fake:
            fake.request_interval_s, fake.launch_interval_s = REQUEST_S, LAUNCH_S
            (tmp / "src").mkdir()
            (tmp / "src" / "train.py").write_text("print('hi')\n")
            settings = {"api_url": fake.base_url, "ssh_key_name": "bench-key", "ssh_user": srv.user,
                        "ssh_port": srv.port, "ssh_config": str(srv.ssh_config), "remote_root": str(srv.remote_root),
                        "request_interval": REQUEST_S, "launch_interval": LAUNCH_S, "boot_poll": BOOT_POLL_S,
                        "keep_instances": True}
            spec = tmp / "job.yaml"
            spec.write_text("name: lambench\ncode: ./src\nrun: python3 train.py\nresources:\n  accelerators: A10\n"
                            "backends:\n  lambda_cloud:\n"
                            + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in settings.items()))
            with launch_home(tmp / "home", LAMBDA_API_KEY=KEY) as store:
                from launcher import runner
                from launcher.spec import load_spec

                plain = Plain(fake.base_url, srv, tmp)

                def ours() -> Callable[[], None]:
                    fake.terminate_all()
                    return lambda: runner.submit(store, load_spec(str(spec)), "lambda_cloud")

                def theirs() -> Callable[[], None]:
                    fake.terminate_all()
                    return plain.job(runner.prepare(load_spec(spec), "lambda_cloud", dry_run=False)[2])

                try:
                    got = interleaved_calls({OURS: ours, PLAIN: theirs}, runs, warmups)
                finally:
                    fake.terminate_all()
                    subprocess.run(["ssh", *plain.ssh("-O", "exit", f"{srv.user}@127.0.0.1")], capture_output=True)
                    shutil.rmtree(plain.control_dir, ignore_errors=True)
            launches = sum(1 for c in fake.calls if c[1].endswith("/launch"))
            problems = list(fake.violations)
    if problems:
        raise RuntimeError(f"the Lambda fake saw requests its spec or limits reject: {problems[:3]}")
    sec.rows.append(Row("Lambda Cloud submit (API fake + sshd)", OURS, got[OURS], PLAIN, got[PLAIN], unit="s",
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"Lambda Cloud: {warmups} warm-up rounds, then {runs} interleaved rounds; {launches} launches "
                     "reached the fake, none rejected by its OpenAPI checks or rate limits; both sides wait for the "
                     "fake's 0.3 s boot and pace to its limits, which set most of the time.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
