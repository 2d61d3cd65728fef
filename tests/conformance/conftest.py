"""Where each backend meets the conformance suite: one `World` per backend, built from its fake.

A backend joins by adding one builder to WORLDS (name -> context manager yielding a World). The
tests are parametrized over every backend the registry knows plus the test plugin (`echo`), so a
backend installed without a World fails the suite at once, naming this table.

A World says, for its backend: the spec to submit (its `run:` line is the suite's), config.toml and
environment variables that point the backend at the fake, how the fake shows what it received
(`sent`: the create payloads; `observe`: everything a side effect would change), and the few
moves only a fake can make (`show_first_lines`, `end`, `set_raw_state`). The four clouds reuse the
reliability harness's CLOUDS (fake + FaultProxy, whose request log tells reads from writes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from reliability.conftest import CLOUDS, Cloud

from launcher import registry
from launcher.backend import Handle

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "tests" / "plugin_pkg"
PLUGIN_BACKEND = "echo"  # tests/plugin_pkg: a third-party backend, installed with pip for the suite
SECRET_NAME = "CONFORMANCE_TOKEN"
SECRET_VALUE = "conformance-secret-6f1e0c"
LINE_PREFIX = "conformance-line-"
FIRST = [f"{LINE_PREFIX}{n}" for n in (1, 2, 3)]
SECOND = [f"{LINE_PREFIX}{n}" for n in (4, 5, 6)]


def run_command(flags: Path) -> str:
    """The job every backend that really runs one runs: three lines, a wait for the suite's go (a file
    named after the job, or
    `all.go` once the test is over), three more lines. Backends whose fake runs nothing get the lines from `end`."""
    first = "; ".join(f"echo {line}" for line in FIRST)
    second = "; ".join(f"echo {line}" for line in SECOND)
    wait = f'while [ ! -e "{flags}/$LAUNCH_JOB_ID.go" ] && [ ! -e "{flags}/all.go" ]; do sleep 0.1; done'
    return f"{first}; {wait}; {second}"


@dataclass
class World:
    """One backend's environment: its fake and what the suite may ask of it."""

    name: str
    spec_text: str  # the spec; its `run:` line is replaced by run_command, a secret is added
    config: str = ""  # config.toml for LAUNCH_HOME
    env: dict[str, str] = field(default_factory=dict)
    # the create payloads the provider received, in the Request's payload shape (None: nothing is sent
    # as a payload; the Request itself is what runs, e.g. local)
    sent: Callable[[], list[dict[str, Any]]] | None = None
    # the payload (and each sent body) in one comparable form, where the wire encodes it differently
    # (Vertex's REST transport: camelCase names, enums as numbers)
    wire: Callable[[dict[str, Any]], Any] = lambda payload: payload
    # dotted paths of values only the provider can fill in (ids of what the SDK uploads or registers):
    # the dry run shows a placeholder there, what was sent has the real id
    filled_by_provider: tuple[str, ...] = ()
    # what a side effect of `status` would change at the provider: its jobs/machines and the writes it got
    observe: Callable[[], Any] = lambda: None
    # make the first lines readable (fakes that run nothing write them; real runs print them)
    show_first_lines: Callable[[Handle], None] = lambda handle: None
    # print the second lines and end the job successfully (a job that runs has been given its go file);
    # returns once the provider shows it ended, without asking the backend's status (under test)
    end: Callable[[Handle], None] = lambda handle: None
    # make the provider report a state this version does not know (`raw`, or the fake's nearest: it
    # returns the raw text the backend should keep); None: the backend has no raw states of its own
    set_raw_state: Callable[[Handle, str], str] | None = None
    # the modules the backend's SDK brings (hidden for the missing-SDK check) and its extra; () when
    # the backend needs no SDK
    sdk: tuple[str, ...] = ()
    extra: str = ""
    reset: Callable[[], None] = lambda: None
    finish: Callable[[], None] = lambda: None  # after each test: give back what it left at the provider
    extra_settings: str = ""  # YAML lines added to the spec's backends.<name> section
    line_prefix: str = LINE_PREFIX  # log lines the suite counts (others are the platform's own)


def _file_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under `root` with its size and digest: what a side effect on disk would change."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                out[str(path.relative_to(root))] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
            except OSError:
                continue
    return out


def _processes_under(root: Path) -> set[int]:
    """The nodes' bootstrap processes of jobs under `root`: they live as long as the node's job, so one
    gone is a node stopped. (Other processes naming the job's files, a shell reading a file for the
    node or an ssh session ending, come and go by themselves and are no side effect of `status`.)"""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if str(root).encode() in cmdline and b"bootstrap.sh" in cmdline:
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _writes(proxy: Any, reads: str = r"$^") -> list[tuple[str, str]]:
    """The requests that reached the fake and may have changed something: all but GET/HEAD and the
    POSTs that are queries (`reads`, e.g. Cloud Logging's entries:list)."""
    with proxy.lock:
        log = list(proxy.log)
    return [(m, p) for m, p, _ in log if m not in ("GET", "HEAD") and not re.search(reads, f"{m} {p}")]


# -- the builders, one per backend ------------------------------------------------------------------------------


@contextlib.contextmanager
def _local(tmp: Path) -> Iterator[World]:
    def root() -> Path:
        return Path(os.environ["LAUNCH_HOME"]) / "local"

    def end(handle: Handle) -> None:
        _wait_for(lambda: any((root() / handle.job_id).rglob("exit_code")), f"local job {handle.job_id} to end")

    yield World("local", "name: conf-local\nrun: x\nresources:\n  accelerators: cpu\n", end=end,
                observe=lambda: (_file_state(root()), _processes_under(root())))


@contextlib.contextmanager
def _ssh(tmp: Path) -> Iterator[World]:
    from fakes.sshd import SSHServer

    with SSHServer("127.0.0.1") as sshd:
        remote = Path(sshd.remote_root)

        def end(handle: Handle) -> None:
            _wait_for(lambda: any(remote.rglob(f"{handle.job_id}/**/exit_code")), f"ssh job {handle.job_id} to end")

        def reset() -> None:
            shutil.rmtree(remote / "jobs", ignore_errors=True)

        spec = ("name: conf-ssh\nrun: x\nresources:\n  accelerators: cpu\nbackends:\n  ssh:\n"
                f"    hosts: [{sshd.host_spec}, {sshd.host_spec}]\n    ssh_config: {sshd.ssh_config}\n"
                f"    remote_root: {remote}\n    cancel_grace: 2s\n")
        yield World("ssh", spec, end=end, reset=reset,
                    observe=lambda: (_file_state(remote), _processes_under(remote)))


@contextlib.contextmanager
def _slurm(tmp: Path) -> Iterator[World]:
    """A real Slurm (tests/fakes/slurm_cluster.py); jobs' files in a work_dir the suite can read."""
    from fakes.slurm_cluster import SlurmCluster

    with SlurmCluster(tmp / "cluster") as cluster:
        work = tmp / "work"

        def state(handle: Handle) -> str:
            return cluster.run("squeue", "-h", "-t", "all", "-j", handle.data["slurm_id"], "-o", "%T",
                               check=False).stdout.strip()

        def show_first_lines(handle: Handle) -> None:  # Slurm starts a job within a scheduling cycle
            log = work / "jobs" / handle.job_id / "node-0.log"
            _wait_for(lambda: log.exists() and FIRST[-1] in log.read_text(), f"slurm job {handle.job_id} to start")

        def end(handle: Handle) -> None:  # Slurm has let it go (COMPLETING is not the end yet)
            _wait_for(lambda: state(handle) in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"),
                      f"slurm job {handle.job_id} to end")

        def reset() -> None:
            cluster.run("scancel", "--user=root", check=False)
            shutil.rmtree(work, ignore_errors=True)

        def jobs() -> str:  # what Slurm holds: every job, its state and reason
            return cluster.run("squeue", "-h", "-t", "all", "-o", "%i %T %r %k").stdout

        spec = (f"name: conf-slurm\nrun: x\nresources:\n  accelerators: cpu\nbackends:\n  slurm:\n"
                f"    work_dir: {work}\n    cancel_grace: 2s\n")
        yield World("slurm", spec, env=cluster.env, end=end, reset=reset, show_first_lines=show_first_lines,
                    observe=lambda: (_file_state(work), jobs(), _processes_under(work)))


@contextlib.contextmanager
def _plugin(tmp: Path) -> Iterator[World]:
    """The test plugin, pip-installed into a site dir the registry reads (as tests/test_plugin_backend.py does)."""
    site = tmp / "site"
    source = tmp / "plugin_pkg"
    shutil.copytree(PLUGIN, source)  # pip builds in place: keep build/ out of the repo
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    sys.path.insert(0, str(site))
    registry._entry_points.cache_clear()
    registry.backend_class.cache_clear()
    try:
        path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        yield World(PLUGIN_BACKEND, "name: conf-echo\nrun: x\n", env={"PYTHONPATH": path},
                    observe=lambda: _file_state(Path(os.environ["LAUNCH_HOME"]) / "echo"),
                    line_prefix="echo: ")
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("launch_echo_backend")]:
            del sys.modules[name]
        registry._entry_points.cache_clear()
        registry.backend_class.cache_clear()


def _cloud_world(cloud: Cloud, **kw: Any) -> World:
    return World(cloud.name, cloud.spec_text, config=cloud.config, env=cloud.env, reset=cloud.reset,
                 finish=cloud.finish, extra=cloud.name, **kw)


@contextlib.contextmanager
def _sagemaker(tmp: Path) -> Iterator[World]:
    with CLOUDS["sagemaker"]() as cloud:
        aws = cloud.fake

        def jobs() -> dict[str, Any]:
            client = aws.client("sagemaker")
            names = [j["TrainingJobName"] for j in client.list_training_jobs()["TrainingJobSummaries"]]
            described = {n: aws.describe(n) for n in names}
            return {n: (d["TrainingJobStatus"], d.get("SecondaryStatus")) for n, d in described.items()}

        def observe() -> Any:
            # AWS JSON APIs POST every call to "/": a stop or tag shows in the jobs, S3 writes as PUTs
            return jobs(), _writes(cloud.proxy, r"^POST /$")

        def set_raw_state(handle: Handle, raw: str) -> None:
            """A state SageMaker may add later: set_job_state keeps to today's enum (botocore's model),
            its transition does not; boto3 does not check the enums of what it receives."""
            from fakes.moto_sagemaker import _transition

            _transition(aws.job(handle.job_id), raw, raw, None)
            return raw

        def end(handle: Handle) -> None:
            aws.put_logs(handle.job_id, 1, SECOND)
            aws.set_job_state(handle.job_id, "Completed", "Completed")

        yield _cloud_world(cloud, sent=lambda: aws.created_requests, observe=observe,
                           show_first_lines=lambda h: aws.put_logs(h.job_id, 1, FIRST), end=end,
                           set_raw_state=set_raw_state,
                           sdk=("boto3", "botocore", "s3transfer"))


@contextlib.contextmanager
def _vertex(tmp: Path) -> Iterator[World]:
    with CLOUDS["vertex"]() as cloud:
        gcp = cloud.fake

        def name(handle: Handle) -> str:
            with gcp.lock:
                (found,) = [n for n, j in gcp.jobs.items() if j.display_name == handle.job_id]
            return found

        def observe() -> Any:
            with gcp.lock:
                states = {n: int(j.state) for n, j in gcp.jobs.items()}
            return states, _writes(cloud.proxy, r"entries:list$")

        def show(handle: Handle) -> None:
            for line in FIRST:
                gcp.add_log(name(handle), "workerpool0-0", line)

        def end(handle: Handle) -> None:
            for line in SECOND:
                gcp.add_log(name(handle), "workerpool0-0", line)
            gcp.set_state(name(handle), "JOB_STATE_SUCCEEDED")

        def sent() -> list[dict[str, Any]]:
            with gcp.lock:
                return list(gcp.created_bodies)

        def wire(payload: dict[str, Any]) -> Any:
            """Through the proto, as the backend and the fake both read it: field names and enums compare."""
            from google.cloud import aiplatform_v1
            from google.protobuf import json_format

            job = aiplatform_v1.CustomJob.pb()()
            json_format.ParseDict(payload, job)
            return json_format.MessageToDict(job, preserving_proto_field_name=True)

        def set_raw_state(handle: Handle, raw: str) -> str:
            """A state Vertex may add later: a number this version's JobState enum has no name for."""
            from google.cloud import aiplatform_v1

            with gcp.lock:
                aiplatform_v1.CustomJob.pb(gcp.job(name(handle))).state = 97
            return "97"

        yield _cloud_world(cloud, sent=sent, wire=wire, observe=observe, show_first_lines=show, end=end,
                           set_raw_state=set_raw_state, sdk=("google",))


@contextlib.contextmanager
def _azureml(tmp: Path) -> Iterator[World]:
    with CLOUDS["azureml"]() as cloud:
        azure = cloud.fake

        def observe() -> Any:
            with azure._lock:
                states = {n: j["properties"].get("status") for n, j in azure.jobs.items()}
            return states, _writes(cloud.proxy)

        def end(handle: Handle) -> None:
            for line in SECOND:
                azure.add_log(handle.job_id, line + "\n")
            azure.set_status(handle.job_id, "Completed")

        def sent() -> list[dict[str, Any]]:
            """What Azure got, less the git properties azure-ai-ml adds on its own to every job it
            creates (JobOperations.create_or_update -> get_git_properties: the repository, branch and
            commit of the directory launch runs in, as MLflow's git tags). They are the SDK's, not the
            spec's; README's Azure ML section says so. Anything else extra still fails the check."""
            from azure.ai.ml.constants._common import GitProperties

            sdk_keys = {value for key, value in vars(GitProperties).items() if key.startswith("PROP_")}
            with azure._lock:
                bodies = json.loads(json.dumps(list(azure.job_puts)))
            for body in bodies:
                extra = body.get("properties", {}).get("properties") or {}
                for key in sdk_keys & set(extra):
                    del extra[key]
            return bodies

        def show(handle: Handle) -> None:
            azure.set_status(handle.job_id, "Running")
            for line in FIRST:
                azure.add_log(handle.job_id, line + "\n")

        yield _cloud_world(cloud, sent=sent, observe=observe, show_first_lines=show, end=end,
                           filled_by_provider=("properties.codeId", "properties.environmentId"),
                           set_raw_state=lambda h, raw: azure.set_status(h.job_id, raw) or raw,
                           sdk=("azure",))


@contextlib.contextmanager
def _lambda_cloud(tmp: Path) -> Iterator[World]:
    with CLOUDS["lambda_cloud"]() as cloud:
        lam = cloud.fake
        remote = Path(re.search(r'remote_root = "([^"]+)"', cloud.config).group(1))

        def observe() -> Any:
            with lam._lock:
                instances = {i["id"]: i["status"] for i in lam._listed()}
            return instances, _writes(cloud.proxy), _file_state(remote / "jobs"), _processes_under(remote)

        def end(handle: Handle) -> None:
            _wait_for(lambda: any(remote.rglob(f"{handle.job_id}/**/exit_code")),
                      f"lambda job {handle.job_id} to end")

        # machines stay up after the job (the node gives its instance back only after an hour): what
        # gives them back is the backend's business, never a side effect of status
        def finish() -> None:
            """Give back what the test left at once (no node gives its instance back within the hour)."""
            lam.terminate_all()
            assert lam.violations == [], lam.violations

        world = _cloud_world(cloud, observe=observe, end=end, sdk=("requests",),
                             extra_settings="    self_terminate_after: 1h\n")
        world.finish = finish
        yield world


@contextlib.contextmanager
def _hf_jobs(tmp: Path) -> Iterator[World]:
    with CLOUDS["hf_jobs"]() as cloud:
        hf = cloud.fake
        from backends.hf_jobs.render import BUNDLE_TOKEN, JOB_ID_LABEL, TOKEN_SHOWN

        def observe() -> Any:
            with hf.lock:
                jobs = {j.id: (j.stage, j.process is not None and j.process.poll() is None) for j in hf.jobs.values()}
            return jobs, _writes(cloud.proxy)

        def end(handle: Handle) -> None:
            """Until one of the job's nodes has ended (the job prints its own lines and ends on its go file)."""
            _wait_for(lambda: any(j.stage not in ("SCHEDULING", "RUNNING")
                                  for j in hf.by_label(JOB_ID_LABEL, handle.job_id)), f"hf job {handle.job_id} to end")

        def set_raw_state(handle: Handle, raw: str) -> str:
            for job in hf.by_label(JOB_ID_LABEL, handle.job_id):
                hf.set_stage(job.id, raw)
            return raw

        def wire(payload: dict[str, Any]) -> Any:
            """One node's run_job body (the dry run holds each node's); the bundle token is a credential submit
            adds, shown masked in the dry run."""
            body = json.loads(json.dumps(payload["jobs"][0] if "jobs" in payload else payload))
            if BUNDLE_TOKEN in body.get("secrets", {}):
                body["secrets"][BUNDLE_TOKEN] = TOKEN_SHOWN
            return body

        def sent() -> list[dict[str, Any]]:
            with hf.lock:
                return list(hf.created_bodies)

        yield _cloud_world(cloud, sent=sent, wire=wire, observe=observe, end=end, set_raw_state=set_raw_state,
                           sdk=("huggingface_hub",))


@contextlib.contextmanager
def _pai_dlc(tmp: Path) -> Iterator[World]:
    with CLOUDS["pai_dlc"]() as cloud:
        dlc = cloud.fake

        def observe() -> Any:
            with dlc.lock:
                states = {n: j["Status"] for n, j in dlc.jobs.items()}
            return states, _writes(cloud.proxy)

        def wire(payload: dict[str, Any]) -> Any:
            """Through the SDK's model, as the fake reads it: the SDK adds empty lists of its own."""
            from alibabacloud_pai_dlc20201203 import models

            return models.CreateJobRequest().from_map(payload).to_map()

        def set_raw_state(handle: Handle, raw: str) -> str:
            dlc.set_status(dlc.job_by_name(handle.job_id)["JobId"], raw)
            return raw

        yield _cloud_world(cloud, sent=lambda: list(dlc.created_bodies), wire=wire, observe=observe,
                           end=lambda handle: dlc.wait_ended(handle.job_id) and None, set_raw_state=set_raw_state,
                           sdk=("alibabacloud_pai_dlc20201203",))


def _kubernetes_world(name: str) -> Callable[[Path], contextlib.AbstractContextManager[World]]:
    """`kubernetes` and its `coreweave` alias: the fake API server, its kubelet running the pods here."""

    @contextlib.contextmanager
    def build(tmp: Path) -> Iterator[World]:
        with CLOUDS["kubernetes"]() as cloud:
            kube = cloud.fake

            def job(handle: Handle) -> dict[str, Any]:
                return kube.get("jobs", handle.data["namespace"], handle.data["name"]) or {}

            def done(handle: Handle) -> bool:
                return any(c["type"] == "Complete" for c in job(handle).get("status", {}).get("conditions", []))

            def observe() -> Any:
                jobs = {j["metadata"]["name"]: (j["spec"].get("suspend"), j["status"]) for j in kube.objects("jobs")}
                pods = {p["metadata"]["name"]: p["status"]["phase"] for p in kube.objects("pods")}
                return jobs, pods, _writes(cloud.proxy)

            def sent() -> list[dict[str, Any]]:
                """Each Job with the objects created for it, as the payload lists them; what they own is
                checked here (each names the Job's uid) and left out of the comparison."""
                payloads: list[dict[str, Any]] = []
                with kube.lock:
                    created, requests = list(kube.created), list(kube.requests)
                for body in json.loads(json.dumps(created)):
                    meta = body["metadata"]
                    if body["kind"] == "Job":
                        patched = ("PATCH", f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}")
                        payloads.append({"namespace": meta["namespace"], "name": meta["name"],
                                         "resume": patched in requests, "manifests": [body]})
                        continue
                    (owner,) = meta.pop("ownerReferences")
                    if body["kind"] == "ConfigMap":  # the code bundle, read from its upload at submit
                        bundle = base64.b64decode(body.pop("binaryData")["bundle.tar.gz"])
                        assert bundle.startswith(b"\x1f\x8b"), "the ConfigMap's bundle is no tar.gz"
                    target = next(p for p in payloads if p["name"] == owner["name"])
                    held = kube.get("jobs", target["namespace"], target["name"])
                    assert held is None or owner["uid"] == held["metadata"]["uid"], owner
                    target["manifests"].append(body)
                return payloads

            def wire(payload: dict[str, Any]) -> Any:
                return {k: payload[k] for k in ("namespace", "name", "resume", "manifests")}

            def set_raw_state(handle: Handle, raw: str) -> str:
                kube.set_condition(handle.data["name"], raw)
                return raw

            def end(handle: Handle) -> None:
                _wait_for(lambda: done(handle), f"the Job of {handle.job_id} to complete")

            world = World(name, cloud.spec_text, config=cloud.config, env=cloud.env,
                          reset=cloud.reset, finish=cloud.finish, extra=name, sent=sent, wire=wire,
                          observe=observe, end=end, set_raw_state=set_raw_state, sdk=("kubernetes",))
            yield world

    return build


def _fine_tuning(name: str) -> Callable[[Path], contextlib.AbstractContextManager[World]]:
    """azure_openai / openai: the real `openai` clients against tests/fakes/azure_openai_fake.py. Nothing
    runs: jobs are held at running until `end` completes them, so a status read between two others
    sees the same state; the events are the log (no suite lines: any line counts)."""

    @contextlib.contextmanager
    def build(tmp: Path) -> Iterator[World]:
        from fakes.azure_openai_fake import AzureOpenAIFake

        flavour = "azure" if name == "azure_openai" else "openai"
        data = tmp / "train.jsonl"
        data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]}\n')
        with AzureOpenAIFake(api_key="conformance-key", flavour=flavour, step_s=0.01) as fake:
            fake.hold = True
            where = f'endpoint = "{fake.endpoint}"' if flavour == "azure" else f'base_url = "{fake.base_url}"'
            key = {"AZURE_OPENAI_API_KEY" if flavour == "azure" else "OPENAI_API_KEY": "conformance-key"}

            def running(handle: Handle) -> None:
                _wait_for(lambda: fake.state(fake.job_for(handle.job_id)) == "running", f"{handle.job_id} to run")

            def end(handle: Handle) -> None:
                fake.complete(fake.job_for(handle.job_id))

            def set_raw_state(handle: Handle, raw: str) -> str:
                fake.set_state(fake.job_for(handle.job_id), raw)
                return raw

            def reset() -> None:
                assert fake.violations == [], fake.violations

            yield World(name, f"name: conf-ft\nfinetune:\n  base_model: gpt-4o-mini-2024-07-18\n"
                        f"  training_file: {data}\n  seed: 7\n",
                        config=f"[backends.{name}]\n{where}\nfile_poll_s = 0.02\n", env=key,
                        sent=fake.creates, filled_by_provider=("training_file",),
                        observe=lambda: [c for c in fake.calls if c[0] == "POST"],
                        show_first_lines=running, end=end, set_raw_state=set_raw_state, sdk=("openai",),
                        extra=name, reset=reset, line_prefix="(fine-tuning events)")
            assert fake.violations == [], fake.violations

    return build


@contextlib.contextmanager
def _tione(tmp: Path) -> Iterator[World]:
    with CLOUDS["tione"]() as cloud:
        tione = cloud.fake

        def observe() -> Any:
            # every TI-ONE call is POST /: a stop shows in the tasks' states
            with tione.lock:
                states = {n: t["Status"] for n, t in tione.tasks.items()}
            return states, _writes(cloud.proxy, r"^POST /$")

        def wire(payload: dict[str, Any]) -> Any:
            """Through the SDK's request model, as the SDK serialises it for the wire."""
            from tencentcloud.tione.v20211111 import models

            request = models.CreateTrainingTaskRequest()
            request.from_json_string(json.dumps(payload))
            return json.loads(json.dumps(request._serialize()))

        def set_raw_state(handle: Handle, raw: str) -> str:
            with tione.lock:
                tione.task_by_job(handle.job_id)["Status"] = raw
            return raw

        yield _cloud_world(cloud, sent=lambda: list(tione.created_bodies), wire=wire, observe=observe,
                           end=lambda handle: tione.wait_ended(handle.job_id) and None, set_raw_state=set_raw_state,
                           sdk=("tencentcloud",))


@contextlib.contextmanager
def _aihc(tmp: Path) -> Iterator[World]:
    with CLOUDS["aihc"]() as cloud:
        aihc = cloud.fake

        def observe() -> Any:
            with aihc.lock:  # every action is a POST to "/": the fake's list of actions tells the writes
                states = {n: j["status"] for n, j in aihc.jobs.items()}
                return states, [a for a in aihc.calls if not a.startswith("Describe")]

        def set_raw_state(handle: Handle, raw: str) -> str:
            aihc.set_status(aihc.job_by_launch_id(handle.job_id)["jobId"], raw)
            return raw

        def sent() -> list[dict[str, Any]]:
            with aihc.lock:
                return json.loads(json.dumps(aihc.created))

        yield _cloud_world(cloud, sent=sent, observe=observe, set_raw_state=set_raw_state,
                           end=lambda handle: aihc.wait_ended(handle.job_id) and None, sdk=("baidubce",))


WORLDS: dict[str, Callable[[Path], contextlib.AbstractContextManager[World]]] = {
    "local": _local,
    "ssh": _ssh,
    "sagemaker": _sagemaker,
    "vertex": _vertex,
    "azureml": _azureml,
    "lambda_cloud": _lambda_cloud,
    "hf_jobs": _hf_jobs,
    "pai_dlc": _pai_dlc,
    "slurm": _slurm,
    "kubernetes": _kubernetes_world("kubernetes"),
    "coreweave": _kubernetes_world("coreweave"),
    "tione": _tione,
    "aihc": _aihc,
    "azure_openai": _fine_tuning("azure_openai"),
    "openai": _fine_tuning("openai"),
    PLUGIN_BACKEND: _plugin,
}

# backends whose state is judged from their nodes' exit codes, with no provider states to map
# slurm: a real Slurm reports only its own states (tests/test_slurm_render.py checks an unknown one)
NO_RAW_STATES = {"local", "ssh", "lambda_cloud", "slurm", PLUGIN_BACKEND}
# backends that run the nodes themselves (a node's failure is theirs to judge, its peers theirs to stop)
NODE_RUNNERS = {"local", "ssh", "lambda_cloud", "hf_jobs"}
ONLY_FOR = {"test_an_unknown_raw_state_reads_unknown": lambda name: name not in NO_RAW_STATES,
            "test_status_stops_nothing_when_one_node_failed": lambda name: name in NODE_RUNNERS}


# checks that need what a container job has, deselected for a backend that declares it runs none
# (Capabilities.container False: hosted fine-tuning), with the reason said in the run's summary
NEEDS_CONTAINER = {"test_status_stops_nothing_when_one_node_failed": "it runs no nodes that could fail apart"}
NOT_APPLICABLE: list[str] = []


def _runs_containers(name: str | None) -> bool:
    try:
        return registry.backend_class(str(name)).capabilities.container
    except Exception:  # a backend the registry cannot load fails in its own tests, not here
        return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (never skip) a check where it cannot apply: ONLY_FOR says where it does, and a backend's
    declared capabilities where a check needs a container job (NEEDS_CONTAINER; said in the summary)."""
    dropped = []
    for item in items:
        name = item.callspec.params.get("world") if hasattr(item, "callspec") else None
        if item.originalname in NEEDS_CONTAINER and not _runs_containers(name):
            dropped.append(item)
            NOT_APPLICABLE.append(f"{name}: {item.originalname} does not apply: the backend declares "
                                  f"capabilities.container=False ({NEEDS_CONTAINER[item.originalname]})")
        elif item.originalname in ONLY_FOR and not ONLY_FOR[item.originalname](name):
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in NOT_APPLICABLE:
        terminalreporter.write_line(f"conformance: {line}")


# every backend the registry knows, the plugin, and any World whose backend is gone (that fails too)
BACKENDS = sorted(set(registry.names()) | set(WORLDS))


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One backend's fake, started once per module (pytest runs one backend's tests together)."""
    name = request.param
    if name not in WORLDS:
        pytest.fail(f"backend {name!r} has no conformance environment: add a builder to WORLDS in "
                    "tests/conformance/conftest.py (its settings, env vars and fake)", pytrace=False)
    environment = dict(os.environ)
    try:
        with WORLDS[name](tmp_path_factory.mktemp(f"world-{name}")) as built:
            if name not in registry.names():
                pytest.fail(f"WORLDS has {name!r}, which the registry does not know", pytrace=False)
            yield built
    finally:
        # an SDK run in this process may set process-wide variables (azure-ai-ml sets AZUREML_CURRENT_CLOUD
        # to the fake's cloud): later tests' CLI subprocesses must not inherit a cloud that is gone
        os.environ.clear()
        os.environ.update(environment)


@dataclass
class Setup:
    """A world ready for one test: LAUNCH_HOME configured, env set, the spec written."""

    world: World
    spec_file: Path
    home: Path
    flags: Path  # this test's go files (run_command)

    def show_first_lines(self, handle: Handle) -> None:
        self.world.show_first_lines(handle)

    def end(self, handle: Handle) -> None:
        """Let the job print its second lines and end successfully; returns once it has."""
        (self.flags / f"{handle.job_id}.go").touch()
        self.world.end(handle)


@pytest.fixture
def setup(world: World, launch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    world.reset()
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(world.config)
    for key, value in {**world.env, SECRET_NAME: SECRET_VALUE}.items():
        monkeypatch.setenv(key, value)
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    flags = tmp_path / "flags"
    flags.mkdir()
    text = re.sub(r"^run: .*$", lambda _: f"run: {json.dumps(run_command(flags))}", world.spec_text,
                  flags=re.M)
    text += f"secrets: [{SECRET_NAME}]\n"
    if world.extra_settings:
        text = text.replace(f"  {world.name}:\n", f"  {world.name}:\n{world.extra_settings}", 1)
    spec_file = tmp_path / f"{world.name}.yaml"
    spec_file.write_text(text)
    yield Setup(world, spec_file, launch_home, flags)
    (flags / "all.go").touch()  # every job this test started ends now (cancelled ones already have)
    world.finish()
