"""The `lambda_cloud` backend: rent Lambda Cloud GPU instances for a job, run it there over
ssh, and give the instances back when it ends.

Provisioning is Lambda's REST API (api.py); running, logs and cancel are the ssh
backend's, used through its public methods on the hosts the instances got. Render asks
the ssh backend for the start request on stand-in hosts, so a dry run shows everything
but the region, instance type and addresses, which only exist once capacity is found.

No instance is left billing: a submit that fails terminates what it launched; each node
terminates itself when its job ends (the API key travels to it in a 0600 file); and the
launcher terminates the job's instances whenever status, wait or cancel sees the end,
after copying their logs into the state dir (`launch logs` works after they are gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.lambda_cloud import instances as inst
from backends.lambda_cloud import render as rendering
from backends.lambda_cloud.api import INSUFFICIENT_CAPACITY, LambdaAPI, LambdaCapacityError
from backends.lambda_cloud.render import NAME, SSH_SETTINGS
from backends.remote.nodes import log_blocks
from backends.remote.transport import Host, script
from backends.ssh import SSHBackend, placed
from launcher import config, logs
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
    Upload,
    is_job_id,
    job_name,
    shown_id,
)
from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    UsageError,
)
from launcher.retry import policy_for
from launcher.sdk import Sdk

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

SDK = Sdk(NAME, "requests", ("requests",))
# this backend's instance types and list prices; the core merges them into `launch catalog` and `plan`
CATALOG_CSV = Path(__file__).with_name("catalog.csv")


class LambdaCloudBackend(Backend):
    name: ClassVar[str] = NAME
    handle_fields: ClassVar[tuple[str, ...]] = ("instances",)
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, cancel_after_end=True, node_addresses=True)
    settings_model = LazySettings(rendering.settings_model)
    sdk = SDK
    catalog_csv = CATALOG_CSV


    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # validated here too: status/logs/cancel build the backend from the record and config
        self.settings = rendering.settings_model().model_validate(dict(settings or {})).model_dump()
        self._client = client
        self._ssh: SSHBackend | None = None
        self._launch_sent = False  # whether this process asked Lambda for an instance (one may bill)

    @classmethod
    def price_list(cls, settings: Mapping[str, Any], fetch: Any, instance_types: Sequence[str],
                   regions: Sequence[str]) -> list[Any]:
        from backends.lambda_cloud import prices

        return prices.price_list(settings, fetch, instance_types, regions)

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := SDK.readiness()) is not None:
            return absent
        missing = []
        if not (os.environ.get("LAMBDA_API_KEY") or settings.get("api_key")):
            missing.append("an API key (LAMBDA_API_KEY, or api_key in [backends.lambda_cloud] of config.toml)")
        if not settings.get("ssh_key_name"):
            missing.append("ssh_key_name (an SSH key registered at https://cloud.lambda.ai/ssh-keys)")
        if missing:
            return Readiness(True, False, "not configured", "set " + "; ".join(missing))
        return Readiness(True, True, f"regions: {', '.join(settings.get('regions') or []) or 'any'}")

    @classmethod
    def live_capacity(cls, settings: Mapping[str, Any], instance_type: str) -> dict[str, bool]:
        """For `launch plan`: which regions have this type free right now (the user's regions
        in their order, marked False where there is none; else every region with some)."""
        types = cls(settings).api.instance_types()
        available = [r["name"] for r in (types.get(instance_type) or {}).get("regions_with_capacity_available") or []]
        wanted = list(settings.get("regions") or []) or available
        return {region: region in available for region in wanted}

    # -- clients -----------------------------------------------------------------

    @property
    def api(self) -> LambdaAPI:
        SDK.require()
        if self._client is None:
            key = os.environ.get("LAMBDA_API_KEY") or self.settings.get("api_key")
            if not key:
                raise BackendUnreachable("no Lambda Cloud API key",
                                         "export LAMBDA_API_KEY, or set api_key in [backends.lambda_cloud] of "
                                         f"{config.config_path()}")
            if not inst.API_KEY.fullmatch(key):
                raise UsageError("the Lambda Cloud API key has characters no key has", "check LAMBDA_API_KEY")
            self._client = LambdaAPI(key, self.settings["api_url"],
                                     request_interval_s=self.settings["request_interval"],
                                     launch_interval_s=self.settings["launch_interval"])
        return self._client

    @property
    def ssh(self) -> SSHBackend:
        if self._ssh is None:
            self._ssh = SSHBackend({k: self.settings[k] for k in SSH_SETTINGS})
        return self._ssh

    def _host(self, instance: dict[str, Any]) -> Host:
        return Host.parse(f"{self.settings['ssh_user']}@{instance['ip']}:{self.settings['ssh_port']}",
                          instance.get("private_ip") or instance["ip"])

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Launch (or find, on a retry) one instance per node, wait until all can be reached,
        then start the job on them. Anything that fails on the way terminates what launched."""
        SDK.require()  # before the try: nothing launched, nothing to give back
        payload = request.payload
        launched: list[dict[str, Any]] = []
        try:
            self._launch_all(request.job_id, payload, launched)
            ready = self._wait_ready(launched)
            gpus = payload["ssh"]["gpus_per_node"]
            for instance in ready:
                self._wait_ssh(self._host(instance), gpus)
            described = [{"id": i["id"], "rank": int(inst.tag(i, inst.RANK_TAG) or 0), "name": i.get("name"),
                          "region": i["region"]["name"], "type": i["instance_type"]["name"], "ip": i["ip"]}
                         for i in ready]
            hosts = [self._host(i) for i in ready]
            job_dir = payload["ssh"]["job_dir"]
            extra = () if payload["keep_instances"] else (
                Upload(None, f"{job_dir}/on_exit.sh", content=inst.on_exit_hook(
                    payload["api_url"], described, payload["self_terminate_after_s"],
                    self.settings["request_interval"])),
                Upload(None, f"{job_dir}/lambda.key", content=inst.curl_config(self.api.api_key)))
            start = placed(Request("ssh", request.job_id, "ssh_start_nodes", {**payload["ssh"], "gpus_per_node": 0},
                                   request.uploads + extra), hosts)  # the GPUs were checked by _wait_ssh
            ssh_handle = self.ssh.submit(start)
        except BaseException:
            self._give_back(request.job_id, [i["id"] for i in launched])
            raise
        return Handle(self.name, request.job_id, {
            "instances": described, "ssh": ssh_handle.data, "keep_instances": payload["keep_instances"],
            "idempotency_key": payload["ssh"].get("idempotency_key"), "submitted_at": time.time()})

    def _give_back(self, job_id: str, instance_ids: list[str]) -> None:
        """After a failed submit: terminate what launched (and any instance tagged with the job
        whose launch answer was lost); if even that fails, say which instances still bill."""
        ids = list(instance_ids)
        if not ids and not self._launch_sent:  # nothing was launched: nothing bills, nothing to say
            return
        def give_back() -> None:
            self._terminate(ids + [i["id"] for i in self._tagged(job_id) if i["id"] not in ids])

        try:  # the submit is failing: no runner retries this, so it rides out a blip itself, bounded the same way
            policy_for(self).call(give_back, f"giving back the instances of {job_id}")
        except LaunchError as exc:
            logs.get().error("could not terminate Lambda instance(s) %s after the failed submit (%s); terminate "
                             "them at https://cloud.lambda.ai/instances", ", ".join(ids) or "(unknown)", exc.message)

    def _tagged(self, job_id: str) -> list[dict[str, Any]]:
        """The job's live instances. A listing that fails raises: read as "none", it would let a retried
        submit launch again beside an instance whose launch answer was lost."""
        return [i for i in self.api.instances()
                if inst.tag(i, inst.JOB_TAG) == job_id and i.get("status") in inst.LIVE]

    def _launch_all(self, job_id: str, payload: dict[str, Any], out: list[dict[str, Any]]) -> None:
        """One instance per node into `out` (kept up to date, so a failure anywhere knows what to
        terminate), all in one region: the first (region, type) with capacity. Instances a failed
        earlier attempt left are reused, never launched twice. A launch that fails is not retried
        here: the submit fails, gives back what launched (the lost-answer one included, found by
        its tag), and the runner's retry of the whole submit starts again from that listing."""
        existing = {int(inst.tag(i, inst.RANK_TAG) or 0): i for i in self._tagged(job_id)}
        if existing:
            first = next(iter(existing.values()))
            pairs = [(first["region"]["name"], first["instance_type"]["name"])]
        else:
            pairs = self._choices(payload["placement"])
        out.extend(existing.values())
        tried = []
        for region, type_name in pairs:
            launched = dict(existing)
            try:
                for rank, body in enumerate(payload["launch"]):
                    if rank not in launched:
                        full = {"region_name": region, "instance_type_name": type_name, **body}
                        launched[rank] = self._launch_one(full)
                        out.append(launched[rank])
                out[:] = [launched[r] for r in sorted(launched)]
                return
            except LambdaCapacityError as exc:
                if exc.code != INSUFFICIENT_CAPACITY:  # quota is account-wide: no region helps
                    raise
                tried.append(f"{type_name} in {region}")
                self._terminate([i["id"] for i in launched.values()])  # a job's nodes share one region
                out.clear()
                existing = {}
        raise CapacityError("Lambda Cloud has no capacity for this job; tried " + ", ".join(tried),
                            "add regions (backends.lambda_cloud.regions), allow other instance types, or retry later")

    def _launch_one(self, body: dict[str, Any]) -> dict[str, Any]:
        """Launch one instance; `_launch_all` has just listed the job's instances, so none is there."""
        self._launch_sent = True
        ids = self.api.launch(body)
        return {"id": ids[0], "status": "booting", "tags": body["tags"], "name": body["name"],
                "region": {"name": body["region_name"]}, "instance_type": {"name": body["instance_type_name"]}}

    def _choices(self, placement: dict[str, Any]) -> list[tuple[str, str]]:
        """(region, type) pairs to try; none at all is a capacity error naming what was looked for."""
        types = self.api.instance_types()
        wanted = placement["instance_type"]
        if wanted:
            if wanted not in types:
                raise BackendError(f"Lambda Cloud has no instance type {wanted!r}",
                                   f"known: {', '.join(sorted(types))}")
            names = [wanted]
        else:
            names = [n for n, item in types.items() if inst.fits(item, placement["accelerator"], placement["gpus"],
                                                                min_vcpus=placement["min_vcpus"],
                                                                min_memory_gib=placement["min_memory_gib"])]
            if not names:
                raise CapacityError(f"no Lambda Cloud instance type has {placement['accelerator']}:"
                                    f"{placement['gpus']} (with the cpus/memory asked for)",
                                    "change resources.accelerators, or set backends.lambda_cloud.instance_type")
        pairs = inst.choices(types, names, placement["regions"])
        if not pairs:
            regions = ", ".join(placement["regions"]) or "any region"
            raise CapacityError(f"Lambda Cloud has no capacity for {', '.join(names)} in {regions} right now",
                                "add regions, allow other instance types, or retry later")
        return pairs

    def _wait_ready(self, launched: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Until every instance is active with an address. One that fails first (unhealthy, gone)
        ends the wait at once: the caller gives every instance back, as each bills meanwhile."""
        deadline = time.monotonic() + self.settings["boot_timeout"]
        wanted = [i["id"] for i in launched]
        while True:
            try:
                current = self._current(wanted)
            except TransientBackendError:  # a missed poll (throttled, a blip): the boot deadline still holds
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.settings["boot_poll"])
                continue
            ready = [current.get(i) for i in wanted]
            for instance_id, instance in zip(wanted, ready, strict=True):
                if instance is not None and instance["status"] == "unhealthy":
                    raise BackendError(f"Lambda instance {instance_id} turned unhealthy while booting; launch "
                                       "gives the job's instances back instead of waiting for it",
                                       "retry; if it repeats, try another region or instance type")
                if instance is None or instance["status"] in ("terminated", "terminating", "preempted"):
                    state = instance["status"] if instance else "gone"
                    raise BackendError(f"Lambda instance {instance_id} is {state} before the job could start",
                                       "retry; if it repeats, try another region")
            if all(i is not None and i["status"] == "active" and i.get("ip") for i in ready):
                return ready  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise BackendError(f"Lambda instances not active within {self.settings['boot_timeout']}s",
                                   "raise backends.lambda_cloud.boot_timeout, or try another region")
            time.sleep(self.settings["boot_poll"])

    def _wait_ssh(self, host: Host, gpus: int) -> None:
        """An instance is `active` a little before its sshd answers. The command that finds sshd
        answering also counts the GPUs (one round trip, not two; `true` when check_gpus is off)."""
        deadline = time.monotonic() + self.settings["boot_timeout"]
        while True:
            try:
                if gpus:
                    self.ssh.check_gpus(host, gpus, timeout=30)
                else:
                    self.ssh.transport.run(host, "true", timeout=30)
                return
            except BackendUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.settings["boot_poll"])

    def _current(self, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        """These instances as Lambda shows them now: the running ones from one listing, any other
        asked for by id (the listing holds running instances only); one Lambda no longer knows
        is left out."""
        listed = {i["id"]: i for i in self.api.instances()}
        found = {}
        for instance_id in dict.fromkeys(instance_ids):
            instance = listed.get(instance_id) or self.api.instance(instance_id)
            if instance is not None:
                found[instance_id] = instance
        return found

    def _terminate(self, instance_ids: list[str], outcome: Status | None = None) -> None:
        """Terminate those still live, first writing the job's outcome into their names if known."""
        if not instance_ids:
            return
        live = {i["id"]: i for i in self.api.instances() if i.get("status") in inst.LIVE}
        ids = [i for i in dict.fromkeys(instance_ids) if i in live]
        for instance_id in ids if outcome is not None else []:
            name = live[instance_id].get("name") or ""
            renamed = inst.with_outcome(name, outcome.state.value, outcome.exit_code)
            if renamed != name:
                self.api.rename(instance_id, renamed)
        self.api.terminate(ids)

    # -- status ------------------------------------------------------------------

    def _saved(self, job_id: str) -> Path:
        """Where a job's outcome and logs are kept once its instances are gone."""
        if not is_job_id(job_id):  # ids come back from instance tags: never a path outside LAUNCH_HOME
            raise BackendError(f"refusing the Lambda job id {shown_id(job_id)}: launch never gives such ids",
                               "remove the launch-job-id tag from the instance that carries it")
        return config.home() / NAME / job_id

    def status(self, handle: Handle) -> Status:
        """Instance states and the job's own state over ssh, in one answer; a query only (the logs
        are copied and the instances given back by `finish`). Once finished, the outcome kept here."""
        result = self._saved(handle.job_id) / "result.json"
        if result.exists():
            return _status_from_json(json.loads(result.read_text()))
        nodes = handle.data["instances"]
        listed = self._current([n["id"] for n in nodes])
        ended = inst.ended(nodes, listed)
        if ended is not None:
            return ended
        states = {n["rank"]: listed[n["id"]]["status"] for n in nodes}
        gone = [n for n in nodes if states[n["rank"]] not in inst.LIVE]  # each terminated itself after exit 0
        if any(states[n["rank"]] == "booting" for n in nodes):
            return Status(JobState.STARTING, "booting", "an instance is booting")
        ssh_handle = self._ssh_handle(handle, [n["rank"] for n in nodes if n not in gone])
        status = self.ssh.status(ssh_handle)
        if status.state.is_terminal:
            return status
        unhealthy = [n["rank"] for n in nodes if states[n["rank"]] == "unhealthy"]
        if unhealthy and status.state is JobState.UNKNOWN:
            return Status(JobState.UNKNOWN, "unhealthy", f"node {unhealthy[0]}'s instance is unhealthy; "
                          f"{status.message}")
        return status

    def _ssh_handle(self, handle: Handle, ranks: list[int] | None = None) -> Handle:
        data = handle.data.get("ssh") or self._remote_handle(handle.job_id, handle.data["instances"][0])
        if data is None:
            raise BackendUnreachable(f"cannot read job {handle.job_id}'s start record from its first instance")
        if ranks is not None:
            data = {**data, "nodes": [n for n in data["nodes"] if n["rank"] in ranks]}
        return Handle("ssh", handle.job_id, data)

    def finish(self, handle: Handle, status: Status) -> None:
        """Once the job has ended: its remaining nodes stopped and its logs copied here while the
        instances answer, its outcome recorded here, and its instances terminated unless kept.
        The outcome file is written last, so a finish cut short is done again in full."""
        if (self._saved(handle.job_id) / "result.json").exists():
            return  # finished before (or cancelled): a kept instance is given back by cancel
        nodes = handle.data["instances"]
        listed = self._current([n["id"] for n in nodes])
        live = [n["rank"] for n in nodes if (listed.get(n["id"]) or {}).get("status") in inst.LIVE]
        reachable = inst.ended(nodes, listed) is None
        if reachable and live:
            with contextlib.suppress(BackendUnreachable):  # the instances are terminated below all the same
                self.ssh.finish(self._ssh_handle(handle, live), status)
        self._ended(handle, status, reachable=reachable)

    def _ended(self, handle: Handle, status: Status, *, reachable: bool = True, keep: bool | None = None) -> Status:
        """Record the outcome here (the instances and their files are about to go), copy the
        logs while the nodes answer, and terminate the instances unless they are kept."""
        saved = self._saved(handle.job_id)
        if reachable:
            with contextlib.suppress(BackendUnreachable):  # if so, the logs are lost with the instance
                self.ssh.save_logs(self._ssh_handle(handle), saved)
        saved.mkdir(parents=True, exist_ok=True, mode=0o700)
        keep = handle.data.get("keep_instances") if keep is None else keep
        if not keep:
            self._terminate([n["id"] for n in handle.data["instances"]], outcome=status)
        (saved / "handle.json").write_text(json.dumps(handle.to_json()))  # `list --sync` finds it here
        (saved / "result.json").write_text(json.dumps(_status_to_json(status)))
        return status

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """From the nodes while they run; from the copy taken at the end once they are gone
        (byte offsets, so a follow's cursor carries over from one to the other)."""
        saved = self._saved(handle.job_id)
        if not (saved / "result.json").exists():
            yield from self.ssh.logs(self._ssh_handle(handle), follow=follow, since=since, node=node)
            return
        offsets = {int(k): int(v) for k, v in (since or {}).items()}
        for rank in sorted(n["rank"] for n in handle.data["instances"]):
            path = saved / f"node-{rank}.log"
            if (node is not None and rank != node) or not path.exists():
                continue
            with path.open("rb") as log:
                log.seek(offsets.get(rank, 0))
                yield from log_blocks(iter(lambda log=log: log.read(1 << 20), b""), rank, offsets, finished=True)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """Stop the job where the nodes answer, then terminate its instances, kept or not."""
        result = self._saved(handle.job_id) / "result.json"
        if result.exists():  # ended with its instances kept: give them back now
            self._terminate([n["id"] for n in handle.data["instances"]],
                            outcome=_status_from_json(json.loads(result.read_text())))
            return
        status = Status(JobState.CANCELLED, "cancelled", "cancelled")
        try:
            self.ssh.cancel(self._ssh_handle(handle))
            after = self.ssh.status(self._ssh_handle(handle))
            status = after if after.state.is_terminal else status
            reachable = True
        except BackendUnreachable:
            reachable = False
        self._ended(handle, status, reachable=reachable, keep=False)

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The jobs running on our tagged instances (status from the instances alone, no ssh), then
        those this machine saw end: Lambda stops listing an instance soon after it is terminated,
        so an ended job is known from what it left here (its handle, outcome and logs)."""
        running = list(self._summaries(self.api.instances()))
        yield from running
        seen = {summary.handle.job_id for summary in running}
        yield from (summary for summary in self._left_behind() if summary.handle.job_id not in seen)

    def _left_behind(self) -> Iterator[Summary]:
        root = config.home() / NAME
        for saved in sorted(root.iterdir()) if root.is_dir() else ():
            if not is_job_id(saved.name):
                continue
            try:
                handle = Handle.from_json(json.loads((saved / "handle.json").read_text()))
                status = _status_from_json(json.loads((saved / "result.json").read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if handle.job_id == saved.name and handle.backend == self.name:
                yield Summary(handle, job_name(saved.name), status, handle.data.get("submitted_at"),
                              handle.data.get("idempotency_key"))

    def find(self, idempotency_key: str) -> Summary | None:
        """The job carrying this key. Instances launched for it whose job never started (the
        submitter died between launch and start) are given back, not adopted: nobody could follow
        such a job and it would bill until cancelled; the caller then submits afresh."""
        wanted = inst.tag_value(idempotency_key)
        keyed = [i for i in self.api.instances() if inst.tag(i, inst.KEY_TAG) == wanted]
        candidates = []
        for summary in self._summaries(keyed, unstarted=True):
            if summary.handle.data.get("ssh") is None and not summary.status.state.is_terminal:
                logs.get().warning("job %s: its instances were launched but the job never started; "
                                   "terminating them", summary.handle.job_id)
                self._terminate([i["id"] for i in summary.handle.data["instances"]])
            else:
                candidates.append(summary)
        # a job that ran (an exit code, cancelled, or still going) before one given back unstarted
        ran = [c for c in candidates if not c.status.state.is_terminal or c.status.exit_code is not None
               or c.status.state is JobState.CANCELLED]
        for summary in (ran or candidates)[:1]:
            return Summary(summary.handle, summary.name, summary.status, summary.created_at, idempotency_key)
        return None

    def _summaries(self, instances: list[dict[str, Any]], *, unstarted: bool = False) -> Iterator[Summary]:
        """A summary per job. Unfinished jobs with no start record on node 0 (booting, or launched by a
        submit that died) are left out unless `unstarted`: `list --sync` must not record a job nobody
        can follow; the submit still in flight records its own."""
        jobs: dict[str, list[dict[str, Any]]] = {}
        for instance in instances:
            job_id = inst.tag(instance, inst.JOB_TAG)
            if not job_id:
                continue
            if not is_job_id(job_id) or not re.fullmatch(r"[0-9]{1,4}", inst.tag(instance, inst.RANK_TAG) or "0"):
                logs.get().warning("Lambda instance %s carries the launch tags %s, which launch never gives: "
                                   "skipped", instance.get("id"), shown_id(job_id))
                continue
            jobs.setdefault(job_id, []).append(instance)
        for job_id, members in jobs.items():
            if all(i.get("status") in ("terminating", "terminated") and not inst.OUTCOME_NAME.search(
                    i.get("name") or "") for i in members):
                continue  # given back by a submit that failed before the job started: no job ran
            described = sorted(({"id": i["id"], "rank": int(inst.tag(i, inst.RANK_TAG) or 0), "name": i.get("name"),
                                 "region": i["region"]["name"], "type": i["instance_type"]["name"],
                                 "ip": i.get("ip")} for i in members), key=lambda d: d["rank"])
            states = {i.get("status") for i in members}
            status = inst.ended(described, {i["id"]: i for i in members}) or Status(
                JobState.STARTING if "booting" in states else JobState.RUNNING, ",".join(sorted(states)))
            state = status.state
            ssh_data = self._remote_handle(job_id, described[0]) if state is JobState.RUNNING else None
            if not state.is_terminal and ssh_data is None and not unstarted:
                continue
            handle = Handle(self.name, job_id, {"instances": described, "ssh": ssh_data,
                                                "keep_instances": self.settings["keep_instances"]})
            yield Summary(handle, job_name(job_id), status,
                          idempotency_key=inst.tag(members[0], inst.KEY_TAG))

    def _remote_handle(self, job_id: str, first: dict[str, Any]) -> dict[str, Any] | None:
        """The ssh start record node 0 keeps, so an adopted job can be followed and cancelled."""
        if not first.get("ip") or not is_job_id(job_id):
            return None
        root = self.settings["remote_root"].rstrip("/")
        try:
            done = self.ssh.transport.run(self._host(first), script("cat {path}",
                                                                    path=f"{root}/jobs/{job_id}/handle.json"))
            return Handle.from_json(json.loads(done.stdout)).data if done.returncode == 0 else None
        except (BackendUnreachable, ValueError, KeyError):
            return None


def _status_to_json(status: Status) -> dict[str, Any]:
    return {"state": status.state.value, "raw_state": status.raw_state, "message": status.message,
            "exit_code": status.exit_code, "started_at": status.started_at, "ended_at": status.ended_at}


def _status_from_json(value: dict[str, Any]) -> Status:
    return Status(JobState.parse(value["state"]), value.get("raw_state", ""), value.get("message", ""),
                  value.get("exit_code"), value.get("started_at"), value.get("ended_at"))
