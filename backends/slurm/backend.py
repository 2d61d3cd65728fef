"""The `slurm` backend: the spec as one sbatch job, on this machine's Slurm or through a login node.

Everything about a job lives in `<work_dir>/jobs/<job id>/` (a directory every node sees): the batch
script, bootstrap.sh and the commands, one log and one exit file per node, and `handle.json` for
`list --sync`. Slurm's own answers (squeue while it lives, sacct or scontrol once it has ended) give
the state; the nodes' exit files say which node failed and why, as on every backend that runs
bootstrap.sh. Each question is one shell command on the login node (one round trip on a warm ssh
connection), every value quoted by `script()`.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from backends.remote.nodes import NodeReport, judge, log_blocks
from backends.remote.transport import script
from backends.slurm import render as rendering
from backends.slurm.shell import Shell, shell_for
from backends.slurm.states import ENDED_BECAUSE, STATES, pending_message
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
    map_state,
    shown_id,
)
from launcher.errors import BackendError, BackendUnreachable

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

LOG_CHUNK = 1 << 20
SLURM_ID = re.compile(r"[0-9]{1,12}")
MAX_NODES = 512  # the spec's own bound
COMMAND_NOT_FOUND = 127  # the shell's exit code for a missing command
LIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
        "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD")


class SlurmBackend(Backend):
    name: ClassVar[str] = "slurm"
    handle_fields: ClassVar[tuple[str, ...]] = ("slurm_id", "job_dir", "nodes")

    @classmethod
    def unusable_handle_fields(cls, data: Mapping[str, Any]) -> list[str]:
        """The job id goes into squeue/scancel and the node count into log paths: both checked first."""
        nodes = data.get("nodes")
        shapes = {"slurm_id": bool(SLURM_ID.fullmatch(str(data.get("slurm_id", "")))),
                  "job_dir": isinstance(data.get("job_dir"), str),
                  "nodes": isinstance(nodes, int) and not isinstance(nodes, bool) and 1 <= nodes <= MAX_NODES}
        return [name for name, fits in shapes.items() if not fits]
    capabilities: ClassVar[Capabilities] = Capabilities(spot=False, log_poll_s=0.2, node_addresses=True)
    settings_model = LazySettings(rendering.settings_model)
    machines_label: ClassVar[str] = "(your cluster)"

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        self._raw = dict(settings or {})
        self._client = client

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        return rendering.settings_model().model_validate(self._raw).model_dump()

    def shell(self, login: str | None = None) -> Shell:
        """Where the Slurm commands run: the handle's login (a job is asked where it was submitted)."""
        if self._client is not None:
            return self._client
        return _shell(login if login is not None else self._raw.get("login"), self._raw.get("ssh_config"),
                      self._raw.get("identity_file"), self._raw.get("host_key_checking") or "yes")

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if settings.get("login"):
            if not shutil.which("ssh"):
                return Readiness(False, False, "no ssh client", "install OpenSSH's client")
            return Readiness(True, True, f"sbatch on {settings['login']}")
        if not shutil.which("sbatch"):
            return Readiness(True, False, "no sbatch on this machine",
                             "set backends.slurm.login: user@login-node, or install slurm-client here")
        return Readiness(True, True, "sbatch on this machine")

    @classmethod
    def live_capacity(cls, settings: Mapping[str, Any], instance_type: str) -> Mapping[str, bool] | None:
        """Partition -> whether it has an idle or partly used (mix) node now, from `sinfo` on the login
        node (for `launch plan`). None when sinfo cannot answer."""
        shell = _shell(settings.get("login"), settings.get("ssh_config"), settings.get("identity_file"),
                       settings.get("host_key_checking") or "yes")
        done = shell.run("sinfo -h -N -o '%P|%t' 2>/dev/null", timeout=30)
        if done.returncode != 0:
            return None
        free: dict[str, bool] = {}
        for line in done.stdout.decode(errors="replace").splitlines():
            partition, _, state = line.partition("|")
            name = partition.strip().rstrip("*")
            if name:
                free[name] = free.get(name, False) or state.strip().rstrip("*~#!%$@^-") in ("idle", "mix")
        return free or None

    @classmethod
    def dry_run_document(cls, request: Request) -> str | None:
        """The batch script itself, as sbatch will read it, under a header naming where it goes and the
        sbatch line that submits it (`-o json` gives the whole request, uploads included)."""
        import shlex

        payload = request.payload
        where = f"over ssh to {payload['login']}" if payload.get("login") else "on this machine"
        return (f"# launch dry run: {request.job_id} on slurm, submitted {where} as\n"
                f"#   {shlex.join(payload['sbatch'])}\n"
                f"# with the job's files in {payload['job_dir']}; the batch script:\n"
                + payload["script"])

    # -- render / submit -------------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        if spec.image and self.settings["container"] == "none":
            from launcher import logs

            logs.get().warning("backends.slurm.container is none: the job runs on the nodes' own software and "
                               "image %s is ignored (container: pyxis runs it with srun --container-image)",
                               spec.image)
        return rendering.render(self.settings, spec, job_id, bundle, secrets, idempotency_key=idempotency_key)

    def submit(self, request: Request) -> Handle:
        """Copy the files, then sbatch once: `mkdir submitted` is the lock, so a retried submit (its
        first answer lost) reads the Slurm id the first one wrote instead of submitting again."""
        payload = request.payload
        shell = self.shell(payload.get("login"))
        job_dir = payload["job_dir"]
        first = shell.run(script("test -d {lock}", lock=f"{job_dir}/submitted"))
        if first.returncode != 0:  # a retry after sbatch took the job uploads nothing (the secrets file least)
            for upload in request.uploads:
                _upload(shell, upload)
        # the secrets are unset for sbatch: it hands its whole environment to slurmctld, which keeps it on disk
        unset = "unset {secret_names}; " if payload.get("secret_names") else ""
        done = shell.run(script(
            "if mkdir {lock} 2>/dev/null; then "
            "if out=$(" + unset + "{sbatch}); then printf '%s\\n' \"$out\" > {tmp} && mv -f {tmp} {id}; "
            "else rc=$?; rmdir {lock}; rm -f {secrets}; exit $rc; fi; fi; "  # refused: a retry may submit afresh
            "i=0; while [ ! -s {id} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat {id}",
            sbatch=payload["sbatch"], secret_names=payload.get("secret_names") or [], lock=f"{job_dir}/submitted",
            tmp=f"{job_dir}/slurm_id.part", id=f"{job_dir}/slurm_id", secrets=f"{job_dir}/secrets.env"), timeout=300)
        if done.returncode == COMMAND_NOT_FOUND:
            raise BackendUnreachable(f"no sbatch on {shell.where}", "install Slurm's client commands there, or set "
                                     "backends.slurm.login: user@login-node to submit through the login node")
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().replace("sbatch: error: ", "")
            raise BackendError(f"sbatch on {shell.where} refused the job: {reason or 'no reason given'}",
                               _refusal_hint(reason))
        slurm_id = done.stdout.decode().strip().split(";")[0]
        if not SLURM_ID.fullmatch(slurm_id):
            raise BackendError(f"sbatch on {shell.where} answered {shown_id(slurm_id)}, not a job id")
        handle = Handle(self.name, request.job_id, {
            "slurm_id": slurm_id, "job_dir": job_dir, "login": payload.get("login"), "nodes": payload["nodes"],
            "submitted_at": time.time(), "cancel_grace_s": payload["cancel_grace_s"],
            "idempotency_key": payload.get("idempotency_key")})
        shell.put(json.dumps(handle.to_json()).encode(), f"{job_dir}/handle.json")
        return handle

    # -- status ----------------------------------------------------------------------------------

    def status(self, handle: Handle) -> Status:
        """squeue while Slurm runs the job; sacct, else `sacct -c` (job completion file), else
        `scontrol show job` once it ended; the nodes' exit files say which node failed. One command."""
        data = handle.data
        try:
            done = self.shell(data.get("login")).run(_status_script(data["slurm_id"], data["job_dir"]), timeout=60)
        except BackendUnreachable as exc:  # the login node is down: not known, never FAILED
            return Status(JobState.UNKNOWN, "unreachable", exc.message)
        return _judged(done.stdout.decode(errors="replace"), data)

    # -- logs ------------------------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Each node's log from its byte offset ({rank: offset}); a node's last partial line waits for
        the node's exit file (or the job's end), so a follow never splits a line."""
        data = handle.data
        offsets = {int(k): int(v) for k, v in (since or {}).items()}
        shell = self.shell(data.get("login"))
        for rank in range(int(data["nodes"])):
            if node is not None and rank != node:
                continue
            base = f"{data['job_dir']}/node-{rank}"
            command = script("if [ -f {exit} ] || ! squeue -h -j {id} -o %T 2>/dev/null | grep -q .; then echo done; "
                             "else echo running; fi; tail -c +{start} {log} 2>/dev/null; true",
                             exit=f"{base}.exit", id=data["slurm_id"], start=offsets.get(rank, 0) + 1,
                             log=f"{base}.log")
            with shell.stream(command) as out:
                finished = out.readline().strip() == b"done"
                yield from log_blocks(iter(lambda out=out: out.read(LOG_CHUNK), b""), rank, offsets,
                                      finished=finished)

    # -- cancel ----------------------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """scancel (Slurm sends TERM to every task), KILL what is left after cancel_grace; an ended job
        keeps its result. Waits, on the login node, until Slurm has let the job go."""
        if self.status(handle).state.is_terminal:
            return
        data = handle.data
        grace = float(data.get("cancel_grace_s", rendering.DEFAULT_CANCEL_GRACE_S))
        live = "squeue -h -j \"$id\" -o %T 2>/dev/null | grep -q ."
        command = script(
            "id={id}; touch {marker}; scancel \"$id\" 2>/dev/null; i=0; "
            f"while [ $i -lt {{ticks}} ] && {live}; do sleep 0.1; i=$((i+1)); done; "
            f"if {live}; then scancel --full --signal=KILL \"$id\" 2>/dev/null; i=0; "
            f"while [ $i -lt 300 ] && {live}; do sleep 0.1; i=$((i+1)); done; fi; true",
            id=data["slurm_id"], marker=f"{data['job_dir']}/cancel_requested", ticks=int(grace * 10))
        self.shell(data.get("login")).run(command, timeout=grace + 90)

    # -- list / find -----------------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The jobs launch left in work_dir (handle.json), and live ones squeue shows by their comment
        whose handle was never written (a submit that died after sbatch)."""
        for handle, key in self._found():
            created = handle.data.get("submitted_at")
            if since is not None and created is not None and created < since:
                continue
            yield Summary(handle=handle, name=job_name(handle.job_id), status=self.status(handle),
                          created_at=created, idempotency_key=key)

    def find(self, idempotency_key: str) -> Summary | None:
        digest = rendering.key_digest(idempotency_key)
        for handle, key in self._found():
            if key == idempotency_key or handle.data.get("key_digest") == digest:
                return Summary(handle=handle, name=job_name(handle.job_id), status=self.status(handle),
                               created_at=handle.data.get("submitted_at"), idempotency_key=idempotency_key)
        return None

    def _found(self) -> Iterator[tuple[Handle, str | None]]:
        root = self.settings["work_dir"].rstrip("/") or "/"
        login = self.settings.get("login")
        done = self.shell(login).run(script(
            "squeue -h -o '%i|%k' 2>/dev/null | sed 's/^/q|/'; "
            "for f in {root}/jobs/*/handle.json; do [ -f \"$f\" ] && printf 'h|%s\\n' \"$(cat \"$f\")\"; done; true",
            root=root), timeout=120)
        seen: set[str] = set()
        live: dict[str, tuple[str, str | None]] = {}
        for line in done.stdout.decode(errors="replace").splitlines():
            kind, _, rest = line.partition("|")
            if kind == "h":
                try:
                    handle = Handle.from_json(json.loads(rest))
                except (ValueError, KeyError, TypeError):
                    continue
                if handle.backend != self.name or not is_job_id(handle.job_id) or handle.job_id in seen \
                        or self.unusable_handle_fields(handle.data):
                    continue
                seen.add(handle.job_id)
                key = handle.data.get("idempotency_key")
                # where the job's files are and which login answers for it: where it was found, not what
                # a file in a shared directory claims
                handle = Handle(self.name, handle.job_id, {**handle.data, "job_dir": f"{root}/jobs/{handle.job_id}",
                                                           "login": login})
                yield handle, key if isinstance(key, str) else None
            elif kind == "q":
                slurm_id, _, text = rest.partition("|")
                parsed = rendering.parse_comment(text)
                if parsed and SLURM_ID.fullmatch(slurm_id) and is_job_id(parsed[0]):
                    live[parsed[0]] = (slurm_id, parsed[1])
        for job_id, (slurm_id, digest) in live.items():
            if job_id not in seen:
                yield Handle(self.name, job_id, {"slurm_id": slurm_id, "job_dir": f"{root}/jobs/{job_id}",
                                                 "login": login, "nodes": 1, "key_digest": digest}), None


@functools.cache
def _shell(login: str | None, ssh_config: str | None, identity_file: str | None, checking: str) -> Shell:
    """One per login for this process: its ssh master connection is reused by every call."""
    return shell_for(login, ssh_config=ssh_config, identity_file=identity_file, host_key_checking=checking)


def _upload(shell: Shell, upload: Upload) -> None:
    mode = "700" if upload.destination.endswith(".sh") and not upload.destination.endswith("/env.sh") else "600"
    if upload.content is not None:
        shell.put(upload.content.encode(), upload.destination, mode=mode)
        return
    assert upload.source is not None
    present = "/bundles/" in upload.destination and \
        shell.run(script("test -f {path}", path=upload.destination)).returncode == 0
    if present:  # content-addressed: copied once
        return
    shell.copy(upload.source, upload.destination, mode=mode)


def _refusal_hint(reason: str) -> str:
    if "node configuration is not available" in reason or "Node count specification invalid" in reason:
        return "the cluster has fewer or smaller nodes than asked for: lower resources.nodes / accelerators " \
               "or pick another partition (sinfo shows them)"
    if "Invalid partition" in reason or "invalid partition" in reason:
        return "set backends.slurm.partition to one sinfo lists"
    return "check backends.slurm settings and sbatch_args"


def _status_script(slurm_id: str, job_dir: str) -> str:
    """Lines `q|rc|STATE|REASON` (squeue), then only when squeue has no live answer `a|...` (sacct),
    `c|...` (sacct -c), `s|...` (scontrol) and `b|...` (the batch log's last two lines), then
    `x|rank|code|mtime` per exit file, `cancel`."""
    return script(
        "id={id}; d={dir}; q=$(squeue -h -j \"$id\" -o '%T|%r' 2>&1); echo \"q|$?|$q\"; "
        "case $q in PENDING*|CONFIGURING*|RUNNING*|COMPLETING*|SUSPENDED*|REQUEUED*|RESIZING*|SIGNALING*|STAGE_OUT*"
        "|STOPPED*|REQUEUE_*|RESV_DEL_HOLD*) ;; *) "
        "a=$(sacct -n -P -X -j \"$id\" -o State,ExitCode 2>&1 | head -n 1); echo \"a|$a\"; "
        "case $a in *disabled*|'') echo \"c|$(sacct -c -n -P -j \"$id\" -o State,ExitCode 2>/dev/null | tail -n 1)\"; "
        "echo \"s|$(scontrol show job \"$id\" -o 2>/dev/null | head -n 1)\";; esac; "
        "echo \"b|$(grep -v '^\\[launch\\]' \"$d/batch.log\" 2>/dev/null | tail -n 2 | cut -c1-200 "
        "| tr '\\n' ' ')\";; esac; "
        "for f in \"$d\"/node-*.exit; do [ -f \"$f\" ] && r=${{f##*/node-}} && "
        "echo \"x|${{r%.exit}}|$(cat \"$f\")|$(stat -c %.3Y \"$f\" 2>/dev/null || date -r \"$f\" +%s)\"; done; "
        "[ -f \"$d/cancel_requested\" ] && echo cancel; true",
        id=slurm_id, dir=job_dir)


def _judged(output: str, data: Mapping[str, Any]) -> Status:
    """The job's Status from what _status_script printed."""
    started = data.get("submitted_at")
    live_state = reason = ""
    squeue_error = ""
    ended: tuple[str, str] | None = None  # (raw state, exit code "a:b")
    reports: dict[int, NodeReport] = {}
    cancelled = False
    batch_error = ""  # the batch script's last lines of output (srun's or pyxis' own errors land there)
    for line in output.splitlines():
        kind, _, rest = line.partition("|")
        fields = rest.split("|")
        if kind == "q":
            rc, text = fields[0], "|".join(fields[1:])
            if rc == "0" and text.strip():
                live_state, _, reason = text.strip().partition("|")
            elif rc != "0" and "Invalid job id" not in text:
                squeue_error = text.strip().splitlines()[-1] if text.strip() else f"squeue exited {rc}"
        elif kind in ("a", "c") and ended is None and len(fields) >= 2 and fields[0].strip() \
                and "disabled" not in rest:
            ended = (fields[0].split()[0], fields[1])
        elif kind == "s" and ended is None and "JobState=" in rest:
            words = dict(w.split("=", 1) for w in rest.split() if "=" in w)
            ended = (words.get("JobState", ""), words.get("ExitCode", ""))
        elif kind == "x" and len(fields) >= 3 and fields[0].isdigit() and fields[1].strip().lstrip("-").isdigit():
            rank = int(fields[0])
            reports[rank] = NodeReport(rank, int(fields[1]), False, _number(fields[2]))
        elif kind == "b":
            batch_error = rest.strip()
        elif kind == "cancel":
            cancelled = True
    if live_state and live_state in LIVE:
        state = map_state(STATES, live_state)
        if state == JobState.PENDING:
            return Status(state, live_state, pending_message(reason), started_at=started)
        return Status(state, live_state, ENDED_BECAUSE.get(live_state, ""), started_at=started)
    if ended is None:
        if squeue_error:
            return Status(JobState.UNKNOWN, "unreachable", f"squeue: {squeue_error}")
        return _from_exit_files(reports, int(data.get("nodes") or 1), cancelled, started)
    raw, exit_code = ended
    state = map_state(STATES, raw)
    node_codes = _nodes_judged(reports, int(data.get("nodes") or 1))
    if state == JobState.FAILED:
        if node_codes is not None and node_codes.state == JobState.FAILED and raw == "FAILED":
            return Status(JobState.FAILED, raw, node_codes.message, exit_code=node_codes.exit_code,
                          started_at=started, ended_at=node_codes.ended_at)
        if node_codes is not None and node_codes.exit_code == 124:  # bootstrap.sh's max_runtime watchdog
            return Status(JobState.FAILED, raw, node_codes.message, exit_code=124, started_at=started,
                          ended_at=node_codes.ended_at)
        code = _exit_code(exit_code)
        why = ENDED_BECAUSE.get(raw) or (f"the batch script exited with code {code}" if code else f"Slurm {raw}")
        if batch_error and raw not in ENDED_BECAUSE:
            why += f": {batch_error}"
        return Status(JobState.FAILED, raw, why, exit_code=code, started_at=started)
    if state == JobState.SUCCEEDED:
        return Status(state, raw, exit_code=0, started_at=started,
                      ended_at=node_codes.ended_at if node_codes else None)
    if state == JobState.CANCELLED:
        return Status(state, raw, "cancelled", started_at=started)
    return Status(state, raw, f"Slurm state {raw}" if state == JobState.UNKNOWN else "", started_at=started)


def _nodes_judged(reports: Mapping[int, NodeReport], nodes: int) -> Status | None:
    if not reports:
        return None
    return judge([reports.get(r, NodeReport(r, None, False)) for r in range(nodes)], cancelled=False)


def _from_exit_files(reports: Mapping[int, NodeReport], nodes: int, cancelled: bool,
                     started: float | None) -> Status:
    """Slurm no longer knows the job (purged after MinJobAge, no accounting): what its nodes left."""
    if cancelled:
        return Status(JobState.CANCELLED, "gone", "cancelled", started_at=started)
    if not reports:
        return Status(JobState.UNKNOWN, "gone", "Slurm no longer knows this job and its nodes left no exit "
                      "files (enable accounting, or raise MinJobAge, to keep ended jobs)", started_at=started)
    judged = judge([reports.get(r, NodeReport(r, None, False)) for r in range(nodes)], cancelled=False,
                   started_at=started)
    return judged


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _exit_code(text: str) -> int | None:
    """Slurm's `code:signal`: the code, or 128+signal when a signal ended it."""
    code, _, signal = text.strip().partition(":")
    if not code.isdigit():
        return None
    if int(code) == 0 and signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code)
