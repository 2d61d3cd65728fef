"""How fast does `launch` answer, beside a bare interpreter and the tools users would pick instead?

Run by hand (not in CI), with the project's virtualenv:

    .venv/bin/python bench/cli_startup.py [--quick] [--with-peers]

Every command runs as a fresh subprocess through the venv's `launch` console script, the way a user
or CI runs it, against a temporary LAUNCH_HOME filled with 1,000 realistic job records. `python -c pass`
(same interpreter) is the floor. With --with-peers, SkyPilot, dstack and TorchX (bench/peers.py: each in
its own throwaway venv from the same base interpreter) are timed in the same interleaved rounds, with a
throwaway HOME so no user state of theirs is read or written.

Goals (issue 27): `launch --help` <= 2.0x `python -c pass`, `launch list` (1,000 jobs) <= 2.5x; (issue 10)
>= 10x faster than `sky --help`. The load average of the run is in its notes: the goals are to hold under load.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peers as peer_tools
import report
from timing import REPO, Case, Row, Section, Stats, clean_env, interleaved, launch_script, load_average

JOBS = 1000
HELP_GOAL = 2.0
LIST_GOAL = 2.5
PEER_GOAL = 0.1

BACKENDS = {
    "local": lambda job_id, i: {"job_dir": f"/home/me/.local/state/launch/local/{job_id}", "submitted_at": 0.0,
                                "cancel_grace_s": 10.0, "nodes": [{"rank": 0, "pid": 41000 + i, "pgid": 41000 + i,
                                "start": None, "dir": f"/home/me/.local/state/launch/local/{job_id}/node-0"}]},
    "ssh": lambda job_id, i: {"hosts": ["gpu-01.internal", "gpu-02.internal"], "remote_dir": f"/scratch/{job_id}"},
    "sagemaker": lambda job_id, i: {
        "region": "us-east-1", "name": job_id[:63],
        "arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job_id[:63]}"},
    "vertex": lambda job_id, i: {
        "project": "my-proj", "region": "us-central1",
        "name": f"projects/123456789012/locations/us-central1/customJobs/{8_000_000_000 + i}"},
    "azureml": lambda job_id, i: {"subscription": "00000000-0000-0000-0000-000000000000", "resource_group": "ml",
                                   "workspace": "ws", "name": job_id},
}
# what each job's spec says for its backend: settings its model accepts (a local job's spec once said
# `region:`, which the local backend refuses, so every `launch list` failed to refresh those jobs, warned
# and timed that failure path instead of a listing)
SETTINGS = {
    "local": {"cancel_grace": "10s"},
    "ssh": {"hosts": ["gpu-01.internal", "gpu-02.internal"]},
    "sagemaker": {"region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/Train", "bucket": "bench-bucket"},
    "vertex": {"project": "my-proj", "region": "us-central1", "staging_bucket": "gs://bench-bucket"},
    "azureml": {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "ml",
                "workspace_name": "ws", "compute": "gpu-cluster"},
}
NAMES = ("bert-finetune", "llama-8b-sft", "resnet50-imagenet", "whisper-small-ft", "gpt2-pretrain", "vit-b16",
         "quickstart")
MESSAGES = {
    "SUCCEEDED": "",
    "FAILED": "exit code 1: CUDA out of memory. Tried to allocate 2.00 GiB\nsee logs for the full traceback",
    "CANCELLED": "cancelled by user",
    "RUNNING": "",
    "PENDING": "waiting for capacity (ml.p5.48xlarge)",
}


def fill_store(home: Path, count: int, seed: int = 7, finished_only: bool = False) -> str:
    """Write `count` jobs through launcher.store; returns the id of a finished job for `launch status`.

    The mix is ~12% unfinished (running, pending), as in a history with a few live jobs; those are the
    ones `launch list` may refresh. `finished_only` gives a history where every job has ended."""
    from launcher.backend import Handle, JobState, Status
    from launcher.runner import new_job_id
    from launcher.store import JobRecord, Store

    rng = random.Random(seed)
    store = Store.open(home)
    now = time.time()
    finished = ""
    weights = [("SUCCEEDED", 60), ("FAILED", 20), ("CANCELLED", 8), ("RUNNING", 8), ("PENDING", 4)]
    states = [s for s, w in weights for _ in range(w) if not finished_only or s not in ("RUNNING", "PENDING")]
    for i in range(count):
        name = rng.choice(NAMES)
        backend = rng.choice(list(BACKENDS))
        created = now - 90 * 86400 * (count - i) / count
        job_id = new_job_id(name, created)
        nodes = rng.choice([1, 1, 1, 2, 4])
        spec = {
            "name": name, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", "code": "./src",
            "setup": "pip install -r requirements.txt", "run": f"python train.py --epochs {rng.randint(1, 20)}",
            "env": {"WANDB_PROJECT": "demo"}, "secrets": ["WANDB_API_KEY"],
            "resources": {"accelerators": rng.choice(["H100:8", "A100-80GB:8", "L4", "T4:1"]), "nodes": nodes,
                          "cpus": 16, "memory_gb": 128, "disk_gb": 200},
            "distributed": "torchrun" if nodes > 1 else None, "spot": rng.random() < 0.3, "max_runtime": "24h",
            "backends": {backend: SETTINGS[backend]},
        }
        store.reserve(JobRecord(id=job_id, name=name, backend=backend, handle=None, spec=spec,
                                state=JobState.PENDING, message="submitting", created_at=created,
                                updated_at=created, idempotency_key=f"ci-{i}" if rng.random() < 0.4 else None))
        data = BACKENDS[backend](job_id, i)
        state = JobState(rng.choice(states))
        if backend == "local":  # its files, as a local job leaves them (`list` reads them to refresh one unfinished)
            data = local_files(home, job_id, data, state)
        store.set_handle(job_id, Handle(backend, job_id, data, fast_status=backend == "local"))
        started = created + rng.uniform(5, 600)
        ended = started + rng.uniform(60, 36000) if state.is_terminal else None
        store.set_status(job_id, Status(state, state.value.title(), MESSAGES[state.value],
                                        exit_code={"SUCCEEDED": 0, "FAILED": 1}.get(state.value),
                                        started_at=started if state is not JobState.PENDING else None,
                                        ended_at=ended, url=f"https://console.example/{backend}/{job_id}"))
        if state is JobState.SUCCEEDED:
            finished = job_id
    store.close()
    assert finished, "no finished job generated"
    return finished


def local_files(home: Path, job_id: str, data: dict, state: Any) -> dict:
    """A local job's directory under LAUNCH_HOME with what its node left: an exit code once it ended, none
    while it runs (its pid is long gone, so the first `list` finds it ended without one, as it would
    find a job whose machine rebooted). Without the directory every `list` would refresh the job again
    (UNKNOWN: files gone) and time that instead of a listing."""
    node_dir = home / "local" / job_id / "node-0"
    node_dir.mkdir(parents=True)
    (node_dir / "log").write_text("done\n")
    if state.is_terminal:
        (node_dir / "exit_code").write_text("0\n" if state.value == "SUCCEEDED" else "1\n")
    if state.value == "CANCELLED":
        (node_dir.parent / "cancel_requested").touch()
    data["job_dir"], data["nodes"][0]["dir"] = str(node_dir.parent), str(node_dir)
    return data


# peer -> (label, arguments, needs SkyPilot's API server running)
PEER_COMMANDS = {"skypilot": [("sky --help", ["--help"], False), ("sky status", ["status"], True)],
                 "dstack": [("dstack --help", ["--help"], False)], "torchx": [("torchx --help", ["--help"], False)]}


def peer_cases(found: dict[str, peer_tools.Peer], home: Path, *, server: bool) -> tuple[list[Case], list[str]]:
    """The peers' commands that do (server=True) or do not need SkyPilot's API server, each checked once
    (a command that fails is noted, not timed) and run with a throwaway HOME (no user state touched)."""
    env = clean_env(HOME=str(home), SKYPILOT_DISABLE_USAGE_COLLECTION="1", DSTACK_DISABLE_USAGE="1")
    cases, notes = [], []
    for name, peer in found.items():
        if not server:  # said once, in the first phase
            notes.append(f"{name}: {peer.error}" if peer.command is None else
                         f"{name} {peer.version} (its own venv under {peer.command.parent.parent.parent})")
        if peer.command is None:
            continue
        for label, args, needs_server in PEER_COMMANDS[name]:
            if needs_server != server:
                continue
            argv = [str(peer.command), *args]
            check = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
            if check.returncode != 0:
                notes.append(f"`{label}` exited {check.returncode}, not timed: {check.stderr.strip()[-300:]}")
                continue
            cases.append(Case(label, argv, env, timeout=600))
    return cases, notes


def measure(quick: bool, found: dict[str, peer_tools.Peer]) -> Section:
    """Two phases: everything that needs no server, interleaved; then `launch list`/`status` against
    `sky status`, interleaved while SkyPilot's API server runs (it uses CPU in the background, so
    phase 1 must not share the machine with it)."""
    runs, warmups = (5, 1) if quick else (20, 3)
    launch = launch_script()
    sec = Section("CLI start-up")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
        home = Path(tmp) / "home"
        env = clean_env(LAUNCH_HOME=str(home))
        sys.path.insert(0, str(REPO))
        finished = fill_store(home, JOBS)
        listing = [Case("launch list", [launch, "list"], env), Case("launch status JOB", [launch, "status", finished],
                                                                    env)]
        cases = [Case("python -c pass", [sys.executable, "-c", "pass"], env),
                 Case("launch --help", [launch, "--help"], env), *listing]
        for case in cases:  # the first `list` refreshes stale unfinished jobs: time the steady state
            subprocess.run(case.argv, env=env, capture_output=True, timeout=120, check=True)
        peer_home = Path(tmp) / "peer-home"
        peer_home.mkdir()
        stop_sky_server(found, peer_home)
        helps, notes = peer_cases(found, peer_home, server=False) if found else ([], [])
        got = interleaved(cases + helps, runs, warmups)
        with_server: dict[str, Stats] = {}
        try:
            servers, more = peer_cases(found, peer_home, server=True) if found else ([], [])
            notes += more
            if servers:
                with_server = interleaved(listing + servers, runs, warmups)
        finally:
            stop_sky_server(found, peer_home)
    floor = got["python -c pass"]
    sec.rows += [
        Row("start-up, help", "launch --help", got["launch --help"], "python -c pass", floor, goal=f"<= {HELP_GOAL}x",
            met=got["launch --help"].median <= HELP_GOAL * floor.median),
        Row(f"list, {JOBS} jobs in the store", "launch list", got["launch list"], "python -c pass", floor,
            goal=f"<= {LIST_GOAL}x", met=got["launch list"].median <= LIST_GOAL * floor.median),
        Row("status of a finished job", "launch status JOB", got["launch status JOB"], "python -c pass", floor),
    ]
    pairs = [("launch --help", "sky --help", f"<= {PEER_GOAL}x (10x faster)", got),
             ("launch --help", "dstack --help", "", got), ("launch --help", "torchx --help", "", got),
             ("launch list", "sky status", "", with_server), ("launch status JOB", "sky status", "", with_server)]
    for ours, theirs, goal, phase in pairs:
        if theirs in phase:
            met = phase[ours].median <= PEER_GOAL * phase[theirs].median if goal else None
            sec.rows.append(Row("vs peer", ours, phase[ours], theirs, phase[theirs], goal=goal, met=met))
        elif found:
            sec.rows.append(Row("vs peer", ours, got[ours], theirs, None, goal=goal,
                                note="peer not available, see notes"))
    if not found:
        notes = ["peers not measured (run with --with-peers)"]
    sec.notes += [f"load average (1/5/15 min) at the end: {load_average()}",
                  f"{JOBS} jobs in a temporary LAUNCH_HOME (~12% unfinished, on every backend); "
                  f"{warmups} warm-up rounds, then {runs} interleaved rounds; peak RSS from GNU time", *notes]
    if with_server:
        sec.notes.append("`sky status` talks to SkyPilot's local API server (started by its first, untimed call): its "
                         "rows were timed in a second phase, interleaved with `launch list`/`status`, while that "
                         "server ran in the background; the other rows ran before it was started. It is stopped "
                         "afterwards.")
    return sec


def stop_sky_server(found: dict[str, peer_tools.Peer], home: Path) -> None:
    """`sky status` leaves SkyPilot's API server running in the background: stop the one we started."""
    sky = found.get("skypilot")
    if sky and sky.command:
        subprocess.run([str(sky.command), "api", "stop"], env=clean_env(HOME=str(home)), capture_output=True,
                       timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for checking the harness")
    parser.add_argument("--with-peers", action="store_true", help="install (or reuse) and time SkyPilot, dstack, "
                        "TorchX")
    args = parser.parse_args()
    found = {name: peer_tools.ensure(name) for name in peer_tools.PEERS} if args.with_peers else {}
    print(report.section(measure(args.quick, found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
