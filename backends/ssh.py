"""The `ssh` backend: run the spec on Linux hosts you can already ssh into.

This is how users reach CoreWeave, Lambda or on-prem GPU nodes they have. Node i
runs on host i through the same bootstrap.sh as every backend, detached with
`setsid` so it outlives the ssh session; everything about the job lives in
<remote_root>/jobs/<job id>/ on each host, which is how status, logs and cancel
find it from any later shell. Values reach the remote shell only through
`script()` of backends/remote/transport.py (shlex-quoted); the environment, secrets included, travels
in a 0600 file, never on a command line.
"""

from __future__ import annotations

import functools
import json
import shlex
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from backends.remote.nodes import NodeReport, judge, log_blocks, tail_nodes, unreadable_node_fields
from backends.remote.transport import Host, SSHTransport, script
from launcher import config
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
    job_name,
)
from launcher.errors import BackendError, BackendUnreachable, SpecError, UsageError
from launcher.node import Placement, job_files, master_port, node_environment

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

DEFAULT_CANCEL_GRACE_S = 10
SMALL_FILE = 256 * 1024  # bytes: sending a file this size costs less than a round trip asking if the host has it
LOG_CHUNK = 1 << 20


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.ssh`: the hosts (or a pool of them from config.toml) and how to reach them."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

    from launcher.spec import Duration  # "10s" or 10, and the schema says so

    class HostSetting(BaseModel):
        model_config = ConfigDict(extra="forbid")
        address: str = Field(description="user@host[:port] or an alias from ~/.ssh/config")
        internal_address: str | None = Field(None, description="what the other nodes use to reach this one")

        @field_validator("address")
        @classmethod
        def _parses(cls, value: str) -> str:
            Host.parse(value)
            return value

    def _host(value: Any) -> Any:
        return {"address": value} if isinstance(value, str) else value

    HostEntry = Annotated[HostSetting, BeforeValidator(_host, json_schema_input_type=str | HostSetting)]

    class Pool(BaseModel):
        model_config = ConfigDict(extra="forbid")
        hosts: list[HostEntry] = Field(min_length=1)

    class SSHSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        hosts: list[HostEntry] = Field(default_factory=list)
        pool: str | None = Field(None, description="a pool from config.toml: [backends.ssh.pools.<name>]")
        pools: dict[str, Pool] = Field(default_factory=dict)
        check_gpus: bool = True
        host_key_checking: Literal["yes", "accept-new"] = "yes"
        ssh_config: str | None = None
        identity_file: str | None = None
        remote_root: str = Field(".launch", pattern=r"^(/|[A-Za-z0-9._])", examples=[".launch", "/scratch/launch"],
                                 description="job files on the hosts; absolute, or relative to the login dir "
                                 "(no leading - or ~)")
        cancel_grace: Duration = DEFAULT_CANCEL_GRACE_S

    return SSHSettings


class SSHBackend(Backend):
    name: ClassVar[str] = "ssh"
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, node_addresses=True)
    settings_model = LazySettings(settings_model)
    handle_fields: ClassVar[tuple[str, ...]] = ("job_dir", "nodes")

    @classmethod
    def unusable_handle_fields(cls, data: Mapping[str, Any]) -> list[str]:
        """Hosts, paths and pids are read from the record into ssh commands (quoted) before any call."""
        return unreadable_node_fields(data, {"rank": int, "pid": int, "host": str, "dir": str})

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        self._raw = dict(settings or {})
        # status/logs/cancel need only these three and the handle: no pydantic on that path
        self.transport = client or SSHTransport(
            ssh_config=self._raw.get("ssh_config"), identity_file=self._raw.get("identity_file"),
            host_key_checking="accept-new" if self._raw.get("host_key_checking") == "accept-new" else "yes")

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """Validated on first use (render, list): settings from config.toml alone are checked too."""
        return settings_model().model_validate(self._raw).model_dump()

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        import shutil

        if not shutil.which("ssh"):
            return Readiness(False, False, "no ssh client", "install OpenSSH's client (apt-get install openssh-client)")
        if not settings.get("hosts") and not settings.get("pools"):
            return Readiness(True, False, "no hosts", "list hosts in backends.ssh.hosts, or pools in config.toml "
                             "under [backends.ssh.pools.<name>]")
        pools = ", ".join(sorted(settings.get("pools") or {}))
        return Readiness(True, True, f"{len(settings.get('hosts') or [])} host(s)"
                         + (f"; pools: {pools}" if pools else ""))

    def _hosts(self) -> list[Host]:
        why = self._pool_problem()
        if why:
            raise UsageError(*why)
        return self._host_list()

    def _pool_problem(self) -> tuple[str, str] | None:
        """A `pool:` that names no pool: the message and what to do."""
        pool = self.settings.get("pool")
        if pool and pool not in (self.settings.get("pools") or {}):
            return (f"no ssh pool named {pool!r}",
                    f"define [backends.ssh.pools.{pool}] hosts = [...] in {config.config_path()}")
        return None

    def _host_list(self) -> list[Host]:
        pool = self.settings.get("pool")
        pools = self.settings.get("pools") or {}
        entries = pools[pool]["hosts"] if pool in pools else self.settings["hosts"]
        return [Host.parse(e["address"], e.get("internal_address")) for e in entries]

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        nodes = spec.resources.nodes
        pool_problem = self._pool_problem()  # each of these three rules out checking the next
        if pool_problem:
            raise SpecError([spec.problem("backends.ssh.pool", f"{pool_problem[0]}: {pool_problem[1]}")])
        hosts = self._host_list()
        if not hosts:
            raise SpecError([spec.problem("backends.ssh.hosts", "no hosts: list them, e.g. hosts: "
                                          "[ubuntu@gpu-node-0], or set pool: <name> from config.toml")])
        if nodes > len(hosts):
            raise SpecError([spec.problem("resources.nodes", f"{nodes} nodes asked for but backends.ssh lists "
                                          f"{len(hosts)} host(s); add hosts or lower nodes")])
        root = str(PurePosixPath(self.settings["remote_root"]))
        job_dir = f"{root}/jobs/{job_id}"
        where = Placement(job_dir + "/", job_dir + "/", f"{root}/bundles/", f"{root}/bundles/")
        uploads, files_env = job_files(spec, bundle, where)
        base = {**node_environment(spec, job_id, secrets, output_dir=f"{job_dir}/outputs",
                                   checkpoint_dir=spec.checkpoint_dir or f"{job_dir}/checkpoints", workdir="",
                                   port=master_port(job_id)),
                **files_env}
        node_payloads = []
        for rank in range(nodes):
            node_dir = f"{job_dir}/node-{rank}"
            env = {**base, "LAUNCH_NODE_RANK": str(rank), "LAUNCH_MASTER_ADDR": hosts[0].reachable_as,
                   "LAUNCH_NODE_ADDRS": node_addresses(hosts[:nodes]),
                   "LAUNCH_WORKDIR": f"{node_dir}/work", "LAUNCH_EXIT_FILE": f"{node_dir}/exit_code",
                   "LAUNCH_LOG_FILE": f"{node_dir}/log", "LAUNCH_MAX_RUNTIME": str(spec.max_runtime or "")}
            node_payloads.append({"rank": rank, "host": str(hosts[rank]), "dir": node_dir, "env": env})
        payload = {
            "hosts": [{"address": str(h), "internal_address": h.internal_address} for h in hosts[:nodes]],
            "job_dir": job_dir,
            "gpus_per_node": spec.resources.accelerators.count if self.settings["check_gpus"] else 0,
            "cancel_grace_s": self.settings["cancel_grace"],
            "idempotency_key": idempotency_key,
            "nodes": node_payloads,
        }
        return Request(self.name, job_id, "ssh_start_nodes", payload, tuple(uploads))

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Check GPUs and copy files to every host first; start nodes only when all are ready,
        and stop the started ones if a later start fails (never half a job)."""
        payload = request.payload
        hosts = [Host.parse(h["address"], h.get("internal_address")) for h in payload["hosts"]]
        for host in dict.fromkeys(hosts):
            self.check_gpus(host, payload["gpus_per_node"])
            self._upload_all(host, request.uploads)
        started: list[dict[str, Any]] = []
        try:
            for node in payload["nodes"]:
                host = hosts[node["rank"]]
                env_text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in node["env"].items())
                started.append({**self._start(host, node, payload["job_dir"], env_text.encode()), "rank": node["rank"],
                                "host": str(host), "internal_address": host.internal_address, "dir": node["dir"]})
        except Exception:
            self._stop_started(hosts, payload["nodes"])
            raise
        handle = Handle(self.name, request.job_id, {
            "job_dir": payload["job_dir"], "nodes": started, "submitted_at": time.time(),
            "cancel_grace_s": payload["cancel_grace_s"], "idempotency_key": payload.get("idempotency_key")})
        self.transport.put(hosts[0], json.dumps(handle.to_json()).encode(), f"{payload['job_dir']}/handle.json")
        return handle

    def _stop_started(self, hosts: list[Host], nodes: list[dict[str, Any]]) -> None:
        """After a failed submit, kill every node that did start, known or not: the pid files on
        the hosts say which (a start whose answer was lost is in them too)."""
        for rank, node in enumerate(nodes):
            pidfile = f"{node['dir']}/pid"
            try:
                self.transport.run(hosts[rank], script(
                    # and forget the start, so a retried submit starts the node afresh
                    "[ -s {pidfile} ] && kill -KILL -$(cut -d' ' -f1 {pidfile}) 2>/dev/null; "
                    "rm -f {pidfile} {env}; rmdir {lock} 2>/dev/null; true",
                    pidfile=pidfile, env=f"{node['dir']}/env.sh", lock=f"{node['dir']}/started"))
            except BackendUnreachable:
                continue

    def check_gpus(self, host: Host, wanted: int, *, timeout: float = 120) -> None:
        """At least `wanted` NVIDIA GPUs on the host (one ssh command; none when `wanted` is 0)."""
        if wanted <= 0:
            return
        done = self.transport.run(host, "nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true", timeout=timeout)
        have = int((done.stdout.decode().strip() or "0").splitlines()[-1] or 0)
        if have < wanted:
            raise BackendError(f"{host} has {have} NVIDIA GPU(s); the spec asks for {wanted} per node",
                               "pick other hosts, lower resources.accelerators, or "
                               "--set backends.ssh.check_gpus=false")

    def _upload_all(self, host: Host, uploads: tuple[Upload, ...]) -> None:
        """The job's files in one ssh command (each round trip costs more than a small file's
        bytes); a big file goes on its own, skipped when the host has it (a content-addressed bundle)."""
        small: list[tuple[bytes, str, str]] = []
        for upload in uploads:
            if upload.content is not None:
                small.append((upload.content.encode(), upload.destination, "600"))
            elif upload.source is not None and upload.source.stat().st_size <= SMALL_FILE:
                small.append((upload.source.read_bytes(), upload.destination,
                              "700" if upload.destination.endswith(".sh") else "600"))
            else:
                self._upload(host, upload)
        if small:
            self.transport.put_many(host, small)

    def _upload(self, host: Host, upload: Upload) -> None:
        if upload.content is not None:
            self.transport.put(host, upload.content.encode(), upload.destination)
            return
        assert upload.source is not None
        if "/bundles/" in upload.destination:  # content-addressed: skip when the host has it
            present = self.transport.run(host, script("test -f {path}", path=upload.destination))
            if present.returncode == 0:
                return
        self.transport.copy(host, upload.source, upload.destination,
                            mode="700" if upload.destination.endswith(".sh") else "600")

    def _start(self, host: Host, node: dict[str, Any], job_dir: str, env: bytes) -> dict[str, Any]:
        """Write the node's env file (from stdin: secrets never on a command line) and start the
        bootstrap detached in its own session (it outlives this ssh connection), from the login
        directory that the job's relative paths start from; answer its pid and kernel start time
        (so a reused pid is never mistaken for the job). One ssh command for both."""
        # The env file is written as `put` writes it (0600, complete or not at all: its size is checked
        # before the rename). `mkdir started` is atomic: a retried start (its first answer lost) reads the
        # pid file instead of starting the node a second time. The env file (secrets) is deleted once read.
        command = script(
            "mkdir -p {dir} && (umask 077 && cat > {env_part}) && [ $(wc -c < {env_part}) -eq {size} ] "
            "&& mv -f {env_part} {env} || exit 1; "
            "if mkdir {lock} 2>/dev/null; then "
            "setsid sh -c '. \"$1\" && rm -f \"$1\"; exec sh \"$2\"' launch-node {env} {bootstrap} > {log} 2>&1 "
            "< /dev/null & "
            "pid=$!; echo \"$pid $(cut -d' ' -f22 /proc/$pid/stat 2>/dev/null)\" > {pidfile}; "
            "else rm -f {env}; fi; "  # already started: the env file just rewritten must not linger
            "i=0; while [ ! -s {pidfile} ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; cat {pidfile}",
            dir=node["dir"], lock=f"{node['dir']}/started", env=f"{node['dir']}/env.sh",
            env_part=f"{node['dir']}/env.sh.part", size=len(env),
            bootstrap=f"{job_dir}/bootstrap.sh", log=f"{node['dir']}/log", pidfile=f"{node['dir']}/pid")
        done = self.transport.run(host, command, stdin=env)
        words = done.stdout.decode().split()
        if done.returncode != 0 or not words:
            raise BackendError(f"{host}: could not start node {node['rank']}: "
                               f"{done.stderr.decode(errors='replace').strip()}")
        return {"pid": int(words[0]), "start": words[1] if len(words) > 1 else None}

    # -- status ------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        """One ssh call per host, stopping nothing (that is `finish`). An unreachable host gives
        UNKNOWN with the reason, never FAILED."""
        reports: list[NodeReport] = []
        cancelled = overdue = False
        grace = float(handle.data.get("cancel_grace_s", DEFAULT_CANCEL_GRACE_S))
        for host, nodes in _by_host(handle).items():
            try:
                done = self.transport.run(host, _status_script(handle.data["job_dir"], nodes), timeout=60)
            except BackendUnreachable as exc:
                return Status(JobState.UNKNOWN, "unreachable", exc.message)
            lines = done.stdout.decode(errors="replace").splitlines()
            for line in lines:
                words = line.split()
                if words[:1] == ["cancel"]:
                    cancelled = True
                    overdue = overdue or float(words[1]) > grace + 5
                elif words[:1] == ["node"] and len(words) >= 3:
                    code = int(words[3]) if words[2] == "exit" and len(words) > 3 else None
                    exited = float(words[4]) if code is not None and len(words) > 4 else None
                    reports.append(NodeReport(int(words[1]), code, words[2] == "running", exited))
        if not reports:
            return Status(JobState.UNKNOWN, "missing", "the job's files are gone from its hosts")
        reports.sort(key=lambda r: r.rank)
        return judge(reports, cancelled=cancelled, cancel_overdue=overdue, started_at=handle.data.get("submitted_at"))

    def finish(self, handle: Handle, status: Status) -> None:
        """The nodes still running once the job has ended (one node failed, or the CLI that
        cancelled died before its KILL) are stopped rather than left hanging at a rendezvous.
        A host that does not answer raises, so the runner tries again later."""
        unreachable = self._signal(handle, grace_s=0, only_live=True)
        if unreachable:
            raise BackendUnreachable(f"could not reach {', '.join(sorted(set(unreachable)))} to stop the job's "
                                     "remaining nodes there", "`launch status` tries again")

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Complete lines after the byte offset of each node ({rank: offset}); a node's last
        partial line waits until the node has exited, so a resumed follow never splits,
        loses or repeats a line."""
        offsets = {int(k): int(v) for k, v in (since or {}).items()}
        for info in handle.data["nodes"]:
            rank = info["rank"]
            if node is not None and rank != node:
                continue
            host = Host.parse(info["host"], info.get("internal_address"))
            command = script("test -f {exit} && echo done || echo running; tail -c +{start} {log} 2>/dev/null",
                             exit=f"{info['dir']}/exit_code", start=offsets.get(rank, 0) + 1,
                             log=f"{info['dir']}/log")
            with self.transport.stream(host, command) as out:
                finished = out.readline().strip() == b"done"
                yield from log_blocks(iter(lambda out=out: out.read(LOG_CHUNK), b""), rank, offsets,
                                      finished=finished)

    def tail(self, handle: Handle, lines: int, *, node: int | None = None) -> tuple[list[LogLine], Any]:
        """The last `lines` lines of each node with `tail` on the host, and a cursor at the end."""
        def read(info: dict[str, Any]) -> tuple[bytes, int, bool]:
            host = Host.parse(info["host"], info.get("internal_address"))
            command = script("test -f {exit} && s=done || s=running; n=$(wc -c < {log} 2>/dev/null || echo 0); "
                             "echo \"$s $n\"; head -c \"$n\" {log} 2>/dev/null | tail -n {count}",
                             exit=f"{info['dir']}/exit_code", log=f"{info['dir']}/log", count=lines + 1)
            header, _, data = self.transport.run(host, command, timeout=600).stdout.partition(b"\n")
            state, _, size = header.decode().partition(" ")
            return data, int(size.strip() or 0), state == "done"
        return tail_nodes(handle.data["nodes"], lines, node, read)

    def save_logs(self, handle: Handle, directory: Path) -> None:
        """Copy each node's whole log to `directory`/node-<rank>.log, byte for byte (so a log
        cursor stays valid on the copy): for machines that are about to be given back."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for info in handle.data["nodes"]:
            host = Host.parse(info["host"], info.get("internal_address"))
            target = directory / f"node-{info['rank']}.log"
            with self.transport.stream(host, script("cat {log} 2>/dev/null; true", log=f"{info['dir']}/log")) as out, \
                    open(target.with_suffix(".part"), "wb") as copy:
                for chunk in iter(lambda out=out: out.read(LOG_CHUNK), b""):
                    copy.write(chunk)
            target.with_suffix(".part").replace(target)

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """Stop every node we can reach even when one host is down; then say which were not."""
        if (ended := self.status(handle)).state.is_terminal:
            self.finish(handle, ended)  # finished before the cancel: keep its real outcome
            return
        unreachable = []
        for host in _by_host(handle):
            try:
                self.transport.run(host, script("touch {marker}", marker=f"{handle.data['job_dir']}/cancel_requested"))
            except BackendUnreachable:
                unreachable.append(str(host))
        unreachable += self._signal(handle, grace_s=float(handle.data.get("cancel_grace_s", DEFAULT_CANCEL_GRACE_S)))
        if unreachable:
            raise BackendUnreachable(f"could not reach {', '.join(sorted(set(unreachable)))} to stop the job there; "
                                     "the other nodes were stopped", "run `launch cancel` again when it is back")

    def _signal(self, handle: Handle, grace_s: float, *, only_live: bool = False) -> list[str]:
        """TERM each node's process group, KILL what is left after the grace period (on the host,
        so a dropped connection cannot leave the job half-stopped). Answers the unreachable hosts.
        `only_live`: only the groups whose leader is still the node's own process (after the end, a
        node's pid may since have been given to someone else's process)."""
        unreachable = []
        for host, nodes in _by_host(handle).items():
            if only_live:
                pick = "; ".join(script("[ \"$(cut -d' ' -f22 /proc/{pid}/stat 2>/dev/null)\" = {start} ] && "
                                        "g=\"$g {pid}\"", pid=n["pid"], start=n.get("start") or "none")
                                 for n in nodes)
            else:
                pick = script("g={groups}", groups=" ".join(str(n["pid"]) for n in nodes))
            command = "g=; " + pick + "; " + script(
                # `kill -SIG -PGID`: the one spelling dash, bash and busybox all take for a group
                "for p in $g; do kill -TERM -$p 2>/dev/null; done; i=0; "
                "while [ $i -lt {ticks} ]; do alive=; for p in $g; do kill -0 -$p 2>/dev/null && alive=1; "
                "done; [ -z \"$alive\" ] && break; sleep 0.1; i=$((i+1)); done; "
                "for p in $g; do kill -KILL -$p 2>/dev/null; done; true",
                ticks=int(grace_s * 10))
            try:
                self.transport.run(host, command, timeout=grace_s + 60)
            except BackendUnreachable:
                unreachable.append(str(host))
        return unreachable

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        root = str(PurePosixPath(self.settings["remote_root"]))
        seen: set[str] = set()
        for host in dict.fromkeys(self._hosts()):
            done = self.transport.run(host, script("for f in {root}/jobs/*/handle.json; do [ -f \"$f\" ] && "
                                                   "cat \"$f\" && echo; done; true", root=root))
            for line in done.stdout.decode(errors="replace").splitlines():
                try:
                    handle = Handle.from_json(json.loads(line))
                except (ValueError, KeyError):
                    continue
                created = handle.data.get("submitted_at")
                if handle.job_id in seen or (since is not None and created is not None and created < since):
                    continue
                seen.add(handle.job_id)
                yield Summary(handle=handle, name=job_name(handle.job_id), status=self.status(handle),
                              created_at=created, idempotency_key=handle.data.get("idempotency_key"))


def node_addresses(hosts: list[Host]) -> str:
    """LAUNCH_NODE_ADDRS: what each node is reached at, in rank order (TF_CONFIG lists them all)."""
    return ",".join(host.reachable_as for host in hosts)


def placed(request: Request, hosts: list[Host]) -> Request:
    """The same start request on other hosts (same count): for backends that rent the machines
    after render, which renders on stand-in hosts so the dry run shows everything else as sent."""
    import dataclasses

    payload = request.payload
    if len(hosts) != len(payload["nodes"]):
        raise ValueError(f"{len(payload['nodes'])} nodes need as many hosts, got {len(hosts)}")
    nodes = [{**node, "host": str(hosts[node["rank"]]),
              "env": {**node["env"], "LAUNCH_MASTER_ADDR": hosts[0].reachable_as,
                      "LAUNCH_NODE_ADDRS": node_addresses(hosts)}} for node in payload["nodes"]]
    return dataclasses.replace(request, payload={
        **payload, "nodes": nodes,
        "hosts": [{"address": str(h), "internal_address": h.internal_address} for h in hosts]})


def _by_host(handle: Handle) -> dict[Host, list[dict[str, Any]]]:
    grouped: dict[Host, list[dict[str, Any]]] = {}
    for node in handle.data["nodes"]:
        grouped.setdefault(Host.parse(node["host"], node.get("internal_address")), []).append(node)
    return grouped


def _status_script(job_dir: str, nodes: list[dict[str, Any]]) -> str:
    """Prints `cancel <age s>` if cancelled, then per node `node <rank> exit <code> <mtime>`,
    `node <rank> running` or `node <rank> gone` (a reused pid is told apart by its start time)."""
    parts = [script("now=$(date +%s); m={marker}; [ -f \"$m\" ] && echo \"cancel $((now - $(date -r \"$m\" +%s)))\"",
                    marker=f"{job_dir}/cancel_requested")]
    for node in nodes:
        parts.append(script(
            "e={dir}/exit_code; if [ -f \"$e\" ]; then echo \"node {rank} exit $(cat \"$e\") $(date -r \"$e\" +%s)\"; "
            "elif [ \"$(cut -d' ' -f22 /proc/{pid}/stat 2>/dev/null)\" = {start} ] && "
            "[ \"$(cut -d' ' -f3 /proc/{pid}/stat)\" != Z ]; then echo \"node {rank} running\"; "
            # it may have written its exit code and ended between the two checks above
            "elif [ -f \"$e\" ]; then echo \"node {rank} exit $(cat \"$e\") $(date -r \"$e\" +%s)\"; "
            "else echo \"node {rank} gone\"; fi",
            dir=node["dir"], rank=node["rank"], pid=node["pid"], start=node.get("start") or ""))
    return "; ".join(parts)

