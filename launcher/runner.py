"""load -> render -> bundle -> submit -> record; then wait, follow and cancel.

The one place that polls, backs off, follows logs and keeps the store in step
with providers, so every backend only answers single questions.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import ci_env, config, logs, registry, settings_cache
from launcher.backend import (
    Handle,
    JobState,
    LogLine,
    Readiness,
    Request,
    Status,
    Summary,
    is_job_id,
    new_job_id,
    shown_id,
)
from launcher.errors import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_UNREACHABLE,
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    Problem,
    SpecError,
    TransientBackendError,
    UsageError,
)
from launcher.node import NEEDS_NODE_ADDRESSES
from launcher.retry import policy_for
from launcher.store import JobRecord, JobStore

if TYPE_CHECKING:  # pydantic is imported only by commands that read a spec
    from launcher.backend import Backend
    from launcher.spec import JobSpec
MASK = "****"


@dataclass(frozen=True)
class Submission:
    record: JobRecord
    request: Request | None
    existing: bool = False


def exit_code_for(state: JobState) -> int:
    return {JobState.SUCCEEDED: EXIT_SUCCEEDED, JobState.FAILED: EXIT_FAILED,
            JobState.CANCELLED: EXIT_CANCELLED}.get(state, EXIT_UNREACHABLE)


def merged_settings(name: str, spec_settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Backend `name`'s settings as written: config.toml < spec (the spec already holds --set).
    The one place the two are merged."""
    return {**config.backend_settings(name), **settings_cache.backend_settings(spec_settings)}


_checked: dict[tuple[str, Any, str], dict[str, Any]] = {}  # (backend, its class, what was set) -> settings
_checked_lock = threading.Lock()  # a sweep builds its points' backends from several threads


def checked_settings(name: str, spec_settings: Mapping[str, Any] | None, origin: str = "") -> dict[str, Any]:
    """The merged settings as written (config < spec), once the backend's settings model has passed
    them (config.toml's own lines first). A check is a pure function of the model and what config.toml
    and the spec hold, so each distinct set is checked once per process (submit, a failover's lookups,
    a retried submit and the wait that follows build the same backend), and a set that passed this
    code before, in any command, is not checked again (launcher/settings_cache.py: digests, never
    values): `launch status`/`logs` then import no pydantic. Without spec settings (`list --sync`),
    config.toml's are used as written. Only passing checks are kept: a refusal is raised, naming its
    file and line, every time. Backends get the settings as written either way (as `list --sync` gives
    them), so a remembered check and a fresh one build the same backend."""
    from_config = config.backend_settings(name)
    written = json.dumps([from_config, spec_settings], sort_keys=True, default=repr)
    key = (name, registry.backend_class(name), written)  # the class, not its model: building that imports pydantic
    with _checked_lock:
        if key not in _checked:
            _checked[key] = _check(name, from_config, spec_settings, origin)
        return copy.deepcopy(_checked[key])


def _check(name: str, from_config: dict[str, Any], spec_settings: Mapping[str, Any] | None,
           origin: str) -> dict[str, Any]:
    merged = {**from_config, **settings_cache.backend_settings(spec_settings)}
    digest = settings_cache.key(name, ["checked", from_config, spec_settings], registry.entry_point(name))
    if digest is not None and settings_cache.passed(digest):
        return merged
    check_config(name)
    if spec_settings is not None:
        from launcher.spec import validate_settings

        validate_settings(name, merged, origin)
    if digest is not None:
        settings_cache.remember(digest)
    return merged


def backend_for(name: str, spec_settings: Mapping[str, Any] | None = None, origin: str = "") -> Backend:
    """The backend with its checked settings (config < spec)."""
    return registry.create(name, checked_settings(name, spec_settings, origin))


def check_config(name: str) -> dict[str, Any]:
    """config.toml's settings for backend `name`, checked by its settings model: a SpecError
    names the config file's lines (unknown keys anywhere in the file included)."""
    from launcher.spec import validate_settings

    from_config = config.backend_settings(name)
    validate_settings(name, from_config, config.source_map(), str(config.config_path()))
    return from_config


def readiness(name: str) -> Readiness:
    """Whether backend `name` can be used here (SDK, config.toml, credentials). A config.toml the
    settings model refuses reads as not configured, naming the first problem, so `launch backends`
    never says "ready" for a backend every real call would refuse."""
    ready = registry.backend_class(name).readiness(config.backend_settings(name))
    try:
        check_config(name)
    except SpecError as exc:
        count = len(exc.problems)
        return dataclasses.replace(ready, configured=False, hint=str(exc.problems[0]),
                                   detail=f"{count} problem{'s' if count != 1 else ''} in {config.config_path()}")
    return ready


def preflight(spec: JobSpec | None, names: list[str]) -> list[SpecError]:
    """The SpecErrors a dry run on each backend of `names` would raise, all of them, storing and
    sending nothing (`launch validate --backend`). When the spec itself does not load (None), its
    render cannot be tried: config.toml's problems for those backends are still found."""
    found = []
    for name in names:
        try:
            if spec is not None:
                prepare(spec, name, dry_run=True)
            else:
                check_config(name)
        except SpecError as exc:
            found.append(exc)
    return found


def backend_and_spec(name: str, user_spec: JobSpec) -> tuple[Backend, JobSpec]:
    """The backend for `name` and the spec as its render sees it: `backends.<name>` holding the
    effective settings (config < spec), checked."""
    settings = user_spec.backends.get(name, {})
    backend = backend_for(name, settings, origin=user_spec.file)
    return backend, user_spec.for_backend(name).with_backend_settings(name, merged_settings(name, settings))


def read_secrets(names: list[str], *, masked: bool) -> dict[str, str]:
    """Secret values from the submitter's environment; masked ones for dry runs."""
    missing = [n for n in names if n not in os.environ]
    if missing and not masked:
        raise UsageError(f"secret {', '.join(missing)} is not set in your environment",
                         "export it before `launch run`, or remove it from secrets:")
    for name in missing:
        logs.get().warning("secret %s is not set in your environment; a real run would stop here", name)
    return {n: MASK if masked else os.environ[n] for n in names}


def prepare(user_spec: JobSpec, backend_name: str, *, dry_run: bool,
            idempotency_key: str | None = None) -> tuple[JobSpec, Backend, Request, str]:
    """Everything up to the request, with no side effect but the bundle cache. `user_spec` is the
    loaded spec (a sweep point's, `${name}` filled in), as the CLI read it once."""
    return _prepare(user_spec, backend_name, dry_run=dry_run, idempotency_key=idempotency_key)[:4]


def _prepare(user_spec: JobSpec, backend_name: str, *, dry_run: bool,
             idempotency_key: str | None = None) -> tuple[JobSpec, Backend, Request, str, dict[str, Any]]:
    """`prepare`, plus the request as a dry run shows it (secrets masked): what the store keeps."""
    backend_class = registry.backend_class(backend_name)
    kind = _kind_problems(backend_class, user_spec)
    if kind:  # the other kind of job: nothing below applies to it
        raise SpecError(kind)
    backend, spec = backend_and_spec(backend_name, user_spec)
    problems = _capability_problems(backend_class, user_spec)
    unused = sorted(IGNORED_BY_FINETUNE & user_spec.model_fields_set) if user_spec.finetune is not None else []
    if unused:  # said, not silently dropped: a hosted fine-tuning job has no process or machine for them
        logs.get().warning("a finetune: job runs no process of yours; %s %s ignored", ", ".join(unused),
                           "is" if len(unused) == 1 else "are")
    elsewhere = sorted(set(user_spec.backends) - {backend_name})
    if elsewhere and backend_name not in user_spec.backends:
        logs.get().warning("this spec has settings for %s but runs on %s (use --backend %s?)",
                           ", ".join(elsewhere), backend_name, elsewhere[0])
    bundle = None
    if spec.code:
        from launcher import progress
        from launcher.bundle import pack, prune

        cache = config.home() / "bundles"
        with progress.step(f"packing {spec.code}"):
            bundle, warnings = pack(Path(spec.code), cache, store=not dry_run)  # a dry run stores nothing
        if not dry_run:
            prune(cache)  # keeps what this and any other running `launch` packed
        for warning in warnings:
            logs.get().warning("%s", warning)
    job_id = new_job_id(spec.name)
    try:
        request = backend.render(spec, job_id, bundle, read_secrets(spec.secrets, masked=dry_run),
                                 idempotency_key=idempotency_key)
        shown = request if dry_run or not spec.secrets else \
            backend.render(spec, job_id, bundle, read_secrets(spec.secrets, masked=True),
                           idempotency_key=idempotency_key)
    except SpecError as exc:  # with what the capability check found: every problem in one round
        raise SpecError([*problems, *exc.problems]) from None
    if problems:
        raise SpecError(problems)
    return user_spec, backend, request, job_id, shown.to_display()


IGNORED_BY_FINETUNE = {"env", "secrets", "spot", "max_runtime", "retries", "outputs"}


def _kind_problems(backend_class: type[Backend], spec: Any) -> list[Problem]:
    """A fine-tuning spec on a backend that runs containers, or the reverse: one error, from the
    backend's declared capabilities, before any backend code sees the spec."""
    caps = backend_class.capabilities
    if spec.finetune is not None and not caps.finetune:
        able = ", ".join(backends_able("finetune")) or "none is installed"
        return [spec.problem("finetune", f"the {backend_class.name} backend runs container jobs, not hosted "
                             f"fine-tuning; run this spec with --backend on one that fine-tunes ({able})")]
    if spec.finetune is None and not caps.container:
        return [spec.problem("run", f"the {backend_class.name} backend fine-tunes hosted models and runs no "
                             "container: give a finetune: section (base_model, training_file) instead of run:")]
    accel = spec.resources.accelerators
    if spec.finetune is None and accel.is_tpu and not caps.tpu:
        return [spec.problem("resources.accelerators", no_tpu_message(backend_class.name, accel))]
    return []


def no_tpu_message(name: str, accel: Any) -> str:
    """Why a TPU spec cannot run on `name`, naming the backends that run TPU slices."""
    able = ", ".join(backends_able("tpu")) or "none is installed"
    return (f"the {name} backend has no TPUs ({accel} is a TPU slice); run it with --backend on one that "
            f"has them ({able}), or ask for GPUs instead (e.g. H100:8)")


def backends_able(capability: str) -> list[str]:
    """The installed backends whose capabilities say `capability` (finetune, tpu, ...)."""
    names = []
    for name in registry.names():
        try:
            if getattr(registry.backend_class(name).capabilities, capability):
                names.append(name)
        except LaunchError:  # a broken plugin is reported where it is used
            continue
    return names


def _capability_problems(backend_class: type[Backend], spec: Any) -> list[Problem]:
    """What a backend cannot do is said before anything is submitted, not silently dropped."""
    caps = backend_class.capabilities
    problems = []
    if spec.resources.nodes > 1 and not caps.multi_node:
        problems.append(spec.problem("resources.nodes", f"the {backend_class.name} backend runs single-node jobs "
                                     f"only; this spec asks for {spec.resources.nodes} nodes: set resources.nodes: 1"))
    if spec.distributed in NEEDS_NODE_ADDRESSES and spec.resources.nodes > 1 and not caps.node_addresses:
        able = ", ".join(backends_able("node_addresses"))
        problems.append(spec.problem("distributed", f"{spec.distributed} on {spec.resources.nodes} nodes lists every "
                                     f"node's address (TF_CONFIG), but {backend_class.name} tells a node only the "
                                     "master's; use nodes: 1, another framework (jax, paddle, torchrun), or a backend "
                                     f"that tells every node's: {able}"))
    if spec.spot and not caps.spot:
        logs.get().warning("the %s backend has no spot capacity; spot: true is ignored", backend_class.name)
    return problems


def _same_request(record: JobRecord, spec: Any, backend_name: str) -> bool:
    return record.backend == backend_name and (not record.spec or record.spec == spec.to_record())


def submit(store: JobStore, user_spec: JobSpec, backend_name: str, idempotency_key: str | None = None, *,
           params: dict[str, str] | None = None, group_id: str | None = None) -> Submission:
    """Submit once. The record is reserved before the provider call, so a crash leaves a
    trace `list --sync` can reconcile; a submit that fails cleanly leaves no record. `params`
    (a sweep point's, already filled into `user_spec`) are recorded with the job."""
    spec, backend, request, job_id, shown = _prepare(user_spec, backend_name, dry_run=False,
                                                     idempotency_key=idempotency_key)
    now = time.time()
    user, host, ci_url = ci_env.submitter(os.environ)
    reserved = store.reserve(JobRecord(
        id=job_id, name=spec.name, backend=backend_name, handle=None, spec=spec.to_record(),
        state=JobState.PENDING, raw_state=_submitter(), message="submitting", created_at=now, updated_at=now,
        idempotency_key=idempotency_key, group_id=group_id, params=params or None,
        submitted_by=user, submitted_host=host, ci_url=ci_url, est_cost_usd=_estimate(backend_name, spec),
    ), request=shown)
    if reserved.id != job_id:
        if _abandoned(reserved) and _same_request(reserved, spec, backend_name):
            settled = _settle_abandoned(store, reserved, backend, backend_name, idempotency_key)
            if settled is not None:
                return Submission(settled, None, existing=True)
            store.delete(reserved.id)  # the provider never got it: submit afresh under the same key
            return submit(store, user_spec, backend_name, idempotency_key, params=params, group_id=group_id)
        if not _same_request(reserved, spec, backend_name):
            logs.get().warning("idempotency key %r was first used for a different spec or backend; "
                               "returning that job, not running this one", idempotency_key)
        return Submission(reserved, None, existing=True)
    if idempotency_key:  # a CI re-run on a fresh machine has an empty store: ask the provider too
        try:
            found = policy_for(backend).call(lambda: find_at_provider(backend, idempotency_key),
                                             f"looking up {idempotency_key}")
        except BaseException:
            store.delete(job_id)
            raise
        if found is not None:
            store.delete(job_id)
            adopted = _adopt(store, found, backend_name, spec.to_record(), backend, idempotency_key)
            return Submission(adopted, None, existing=True)
    unconfirmed: list[TransientBackendError] = []  # attempts that ended where the create may have landed

    def attempt() -> Handle:
        try:
            return backend.submit(request)
        except TransientBackendError as exc:
            unconfirmed.append(exc)
            raise

    try:
        from launcher import progress

        with progress.step(f"submitting {job_id} to {backend_name} (uploads included)"):
            handle = policy_for(backend).call(attempt, f"submitting {job_id}")
    except Exception as exc:
        if not unconfirmed:  # refused or invalid at once: nothing was created, nothing is recorded
            store.delete(job_id)
            raise
        # a timeout or reset on any attempt may have come after the create landed, whatever the last
        # attempt then met (a refusal, a lost connection during a re-upload): keep the trace, and say so
        reason = exc.message if isinstance(exc, LaunchError) else repr(exc)
        store.set_status(job_id, Status(JobState.UNKNOWN, "unconfirmed",
                                        f"submit not confirmed ({reason}); `launch list --sync` checks "
                                        f"whether {backend_name} has it"))
        if not isinstance(exc, LaunchError):
            raise
        raise _may_exist(exc, job_id, backend_name) from exc
    except BaseException:
        store.set_status(job_id, Status(JobState.UNKNOWN, "interrupted",
                                        "interrupted while submitting; `launch list --sync` checks the provider"))
        raise
    handle = dataclasses.replace(handle, fast_status=backend.capabilities.fast_status)
    record = store.set_submitted(job_id, handle, Status(JobState.PENDING, "submitted"))
    assert record is not None
    return Submission(record, request)


def _estimate(backend_name: str, spec: JobSpec) -> float | None:
    """The catalog estimate recorded with the job; none rather than a failed submit."""
    from launcher import plan

    try:
        return plan.submit_estimate(backend_name, spec)
    except Exception:
        return None


def _may_exist(exc: LaunchError, job_id: str, backend_name: str) -> LaunchError:
    """The error of a submit whose create may have landed all the same: it says so plainly, and it is
    no CapacityError, since failing over to the next backend could run the job twice."""
    kind = BackendUnreachable if exc.exit_code == EXIT_UNREACHABLE else BackendError
    hint = f"`launch list --sync --backend {backend_name}` records it if it exists, then `launch cancel {job_id}` " \
           "stops it if you do not want it"
    return kind(f"{exc.message}; job {job_id} may have been created at {backend_name} all the same",
                f"{hint}; {exc.hint}" if exc.hint else hint)


def submit_first(store: JobStore, spec: JobSpec, backend_names: list[str],
                 idempotency_key: str | None = None, *, params: dict[str, str] | None = None,
                 group_id: str | None = None, on_skip: Callable[[str, CapacityError], None] | None = None
                 ) -> Submission:
    """Submit to the first backend of `backend_names` that has capacity. Only a CapacityError
    (raised before anything was created) moves on; any other error stops, so a job is never
    created twice. With a key, every listed backend is asked first whether it already has the
    job: a CI re-run must not create on backend 1 what an earlier attempt created on backend 2."""
    if idempotency_key and len(backend_names) > 1 and store.by_key(idempotency_key) is None:
        found = _find_anywhere(store, spec, backend_names[1:], idempotency_key)
        if found is not None:
            return found
    refusals: list[str] = []
    for name in backend_names:
        try:
            return submit(store, spec, name, idempotency_key, params=params, group_id=group_id)
        except CapacityError as exc:
            refusals.append(f"{name}: {exc.message}")
            if name == backend_names[-1]:
                if len(backend_names) == 1:
                    raise
                raise CapacityError(f"no capacity on any of {', '.join(backend_names)}: " + "; ".join(refusals),
                                    "try later, another region or accelerator, or more backends "
                                    "(`launch plan SPEC` lists them)") from exc
            if on_skip is not None:
                on_skip(name, exc)
    raise AssertionError("unreachable")


def _find_anywhere(store: JobStore, spec: JobSpec, names: list[str], idempotency_key: str) -> Submission | None:
    for name in names:
        backend = backend_for(name, spec.backends.get(name, {}), origin=spec.file)
        found = policy_for(backend).call(lambda b=backend: find_at_provider(b, idempotency_key),
                                       f"looking up {idempotency_key}")
        if found is not None:
            return Submission(_adopt(store, found, name, spec.to_record(), backend, idempotency_key), None,
                              existing=True)
    return None


def _submitter() -> str:
    """Who is submitting a reserved job, so a later run with the same key can tell a submit
    still in flight from one whose process died (kill -9, a lost CI runner)."""
    import socket

    return f"submitting pid {os.getpid()} on {socket.gethostname()}"


def _abandoned(record: JobRecord) -> bool:
    """A reservation nobody will confirm: its submit failed unconfirmed, `sync` found it was never
    created, or the process submitting it is gone (on this host; elsewhere, after a grace time)."""
    if record.handle is not None:
        return False
    if record.state in (JobState.UNKNOWN, JobState.FAILED):
        return True
    parts = record.raw_state.split()
    if len(parts) == 5 and parts[:2] == ["submitting", "pid"] and parts[4] == _submitter().split()[4]:
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
        return False
    return time.time() - record.created_at > SUBMIT_GRACE_S


def _settle_abandoned(store: JobStore, record: JobRecord, backend: Backend, backend_name: str,
                      idempotency_key: str | None) -> JobRecord | None:
    """The provider's job for an abandoned reservation, recorded; None when it has none."""
    if not idempotency_key:
        return None
    found = policy_for(backend).call(lambda: find_at_provider(backend, idempotency_key),
                                     f"looking up {idempotency_key}")
    if found is None:
        return None
    if found.handle.job_id != record.id:  # created under another id (another machine's run)
        store.delete(record.id)
    return _adopt(store, found, backend_name, record.spec, backend, idempotency_key)


def find_at_provider(backend: Backend, idempotency_key: str) -> Summary | None:
    """The provider's job carrying this idempotency key (recent ones), if any; its id checked."""
    found = backend.find(idempotency_key)
    if found is not None:
        _check_found_id(found, backend.name)
    return found


def _check_found_id(summary: Summary, backend_name: str) -> None:
    """A job id read back from a provider (a tag anyone with access to the account can set) must be
    one launch could have given before it reaches the store or a path under LAUNCH_HOME."""
    if not is_job_id(summary.handle.job_id):
        raise BackendError(f"{backend_name} has a job tagged with the id {shown_id(summary.handle.job_id)}, which "
                           "launch never gives; it was not recorded",
                           f"remove or fix that tag at {backend_name} (launch's own ids look like "
                           "name-20260101-120000-abc123)")


def _record_found(store: JobStore, summary: Summary, backend_name: str, *, spec: dict[str, Any],
                  idempotency_key: str | None, fast_status: bool) -> JobRecord:
    """Put a job the provider has into the store, state, exit code and times included. One the
    store holds without a handle (its submit never heard back) gets the provider's handle and
    state; one already complete is returned as it is. The id came from the provider: checked first."""
    _check_found_id(summary, backend_name)
    handle = dataclasses.replace(summary.handle, fast_status=fast_status)
    known = store.get(handle.job_id)
    if known is not None:
        if known.handle is None:
            store.set_handle(known.id, handle)
            store.set_status(known.id, summary.status)
            return store.get(known.id) or known
        return known
    now = time.time()
    record = store.reserve(JobRecord(
        id=handle.job_id, name=summary.name, backend=backend_name, handle=handle, spec=spec,
        state=summary.status.state, raw_state=summary.status.raw_state, message=summary.status.message,
        created_at=summary.created_at or now, updated_at=now, idempotency_key=idempotency_key,
    ))
    if record.id == handle.job_id:
        store.set_status(record.id, summary.status)
        record = store.get(record.id) or record
    return record


def _adopt(store: JobStore, summary: Summary, backend_name: str, spec: dict[str, Any], backend: Backend,
           idempotency_key: str) -> JobRecord:
    """Record the provider's job under the user's key (providers may store a normalised form)."""
    record = _record_found(store, summary, backend_name, spec=spec, idempotency_key=idempotency_key,
                           fast_status=backend.capabilities.fast_status)
    logs.get().warning("job %s already exists at %s for this idempotency key; not submitting again",
                       record.id, backend_name)
    return record


def _backend(record: JobRecord) -> Backend:
    """The job's backend with the settings it was submitted with (spec over config). Every call on an
    existing job comes through here, so its SDK is asked for first: without it the answer is the
    install line (exit 2), before anything reads the job's record or settings."""
    if record.local_elsewhere:
        raise UsageError(f"job {record.id} runs on {record.submitted_host} ({record.backend} backend): its "
                         f"processes and log files are local to that machine",
                         f"run `launch logs {record.id}` or `launch cancel {record.id}` on "
                         f"{record.submitted_host}; the shared store shows its last known state here")
    sdk = registry.backend_class(record.backend).sdk
    if sdk is not None:
        sdk.require()
    from_spec = (record.spec.get("backends") or {}).get(record.backend) or {}
    return backend_for(record.backend, from_spec, origin=f"the spec of job {record.id}")


SUBMIT_GRACE_S = 120.0


def await_handle(store: JobStore, record: JobRecord) -> JobRecord:
    """A job another `launch` process is still submitting (same idempotency key) gets a
    moment to be confirmed; one whose submit died says so."""
    deadline = time.monotonic() + SUBMIT_GRACE_S
    while record.handle is None and record.message == "submitting" and time.monotonic() < deadline \
            and time.time() - record.created_at < SUBMIT_GRACE_S:
        time.sleep(0.2)
        record = store.get(record.id) or record
    if record.handle is None:
        raise UsageError(f"job {record.id} was never confirmed by {record.backend} (its submit did not finish)",
                         "`launch list --sync` checks whether the provider has it")
    return record


def _require_handle(record: JobRecord, backend_class: type[Backend] | None = None) -> Handle:
    """The handle a call to the provider will use. A record whose handle lacks what its backend reads (written
    by another launch version, or edited by hand) is one clear error here, not a KeyError inside the call; a
    missing SDK is said first, as for every call on an existing job."""
    if record.handle is None:
        raise UsageError(f"job {record.id} was never confirmed by {record.backend} (its submit did not finish)",
                         "`launch list --sync` checks whether the provider has it")
    backend_class = backend_class or registry.backend_class(record.backend)
    if backend_class.sdk is not None:
        backend_class.sdk.require()
    missing = backend_class.unusable_handle_fields(record.handle.data)
    if missing:
        raise UsageError(f"job {record.id}'s record lacks {', '.join(missing)} (or holds it in a shape it cannot "
                         f"read), which the {record.backend} backend needs to find the job (a record from another "
                         "launch version, or edited by hand)",
                         "`launch list --sync` finds launch's jobs at the provider and records them again")
    return record.handle


def refresh(store: JobStore, record: JobRecord, backend: Backend | None = None) -> JobRecord:
    """Ask the provider for the job's state and keep the store in step; terminal states stick.
    A job seen ended is then finished (see `finish`): every path that learns a job ended comes here."""
    handle = record.handle
    if handle is None or record.local_elsewhere:  # another machine's local job: only it can tell
        return record
    if not record.state.is_terminal:
        backend = backend or _backend(record)
        _require_handle(record, type(backend))
        status = policy_for(backend).call(lambda: backend.status(handle), f"status of {record.id}")
        if (status.state, status.raw_state, status.message) != (record.state, record.raw_state, record.message):
            store.set_status(record.id, status)
            record = store.get(record.id) or record
    return finish(store, record, backend)


def finish(store: JobStore, record: JobRecord, backend: Backend | None = None) -> JobRecord:
    """Run the backend's `finish` (give machines back, save logs, stop stragglers) once for a job
    that has ended. Its state is stored first and the store marks `finish` done only after it
    returned, so a crash or a failure in between means the next refresh runs it again (backends
    make it safe to repeat). A failure is a warning, never the command's error: the outcome stands."""
    handle = record.handle
    if not record.needs_finish or handle is None:
        return record
    try:
        used = backend or _backend(record)
        policy_for(used).call(lambda: used.finish(handle, record.status), f"finishing {record.id}")
    except Exception as exc:
        if logs.get().isEnabledFor(10):  # DEBUG, i.e. --debug/--verbose: show the traceback
            raise
        logs.get().warning("job %s has ended, but %s could not finish it (%s); `launch status %s` tries again",
                           record.id, record.backend, getattr(exc, "message", None) or repr(exc), record.id)
        return record
    store.set_finished(record.id)
    return store.get(record.id) or record


def refresh_active(store: JobStore, records: list[JobRecord], *, all_backends: bool) -> list[JobRecord]:
    """Bring unfinished jobs up to date for `list`: always where status is a local file
    read (the handle says so), and on every backend when asked (that costs a provider call
    per job). One job that cannot be refreshed never hides the others."""
    out = []
    for record in records:
        if record.needs_refresh(all_backends=all_backends):
            try:
                record = refresh(store, record)
            except Exception as exc:
                if logs.get().isEnabledFor(10):  # DEBUG, i.e. --debug/--verbose: show the traceback
                    raise
                logs.get().warning("could not refresh %s: %s", record.id, getattr(exc, "message", None) or repr(exc))
        out.append(record)
    return out


def wait(store: JobStore, record: JobRecord, *, timeout_s: float | None = None,
         on_change: Callable[[JobRecord], None] | None = None) -> JobRecord:
    """Poll with backoff until the job ends, the timeout passes, or the backend has
    answered UNKNOWN for longer than UNKNOWN_LIMIT_S (then the caller exits 4)."""
    record = await_handle(store, record)
    backend = _backend(record)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    unknown_since: float | None = None
    delay = 0.2
    while True:
        previous = record.state
        record = refresh(store, record, backend)
        if on_change and record.state != previous:
            on_change(record)
        if record.state.is_terminal or (deadline is not None and time.monotonic() >= deadline):
            return record
        if _unknown_too_long(record, unknown_since):
            return record
        unknown_since = (unknown_since or time.monotonic()) if record.state is JobState.UNKNOWN else None
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


UNKNOWN_LIMIT_S = 120.0


def _unknown_too_long(record: JobRecord, since: float | None) -> bool:
    return record.state is JobState.UNKNOWN and since is not None and time.monotonic() - since > UNKNOWN_LIMIT_S


def follow(store: JobStore, record: JobRecord, emit: Callable[[LogLine], None], *,
           node: int | None = None, cursor: Any = None, stop: Callable[[], bool] | None = None) -> JobRecord:
    """Stream logs (after `cursor`, if given) until the job ends, then drain what is left;
    no line shown twice. `stop` says the reader went away (a dashboard's closed page): the
    follow returns at its next poll instead of reading on until the job ends."""
    record = await_handle(store, record)
    handle = _require_handle(record)
    backend = _backend(record)
    unknown_since: float | None = None
    settle_until: float | None = None
    delay = 0.1
    while True:
        if stop is not None and stop():
            return record
        if settle_until is None:
            record = refresh(store, record, backend)
        ended = record.state.is_terminal or _unknown_too_long(record, unknown_since)
        unknown_since = (unknown_since or time.monotonic()) if record.state is JobState.UNKNOWN else None
        got = False

        def drain() -> None:
            """Emit as read (a big log never sits in memory whole); a retry resumes after the
            last line shown, so nothing is repeated."""
            nonlocal cursor, got
            lines = iter(backend.logs(handle, since=cursor, node=node))
            while True:
                try:
                    line = next(lines)
                except StopIteration as end:  # a read that moved on without a line returns its cursor
                    cursor = cursor if end.value is None else end.value
                    return
                emit(line)
                cursor = line.cursor
                got = True

        policy_for(backend).call(drain, f"logs of {record.id}")
        if ended:
            # services that ingest logs asynchronously (CloudWatch, Cloud Logging) may still deliver
            # the last lines: keep reading until they have been quiet for the backend's settle time
            settle = backend.capabilities.log_settle_s
            if settle_until is None or got:
                settle_until = time.monotonic() + settle
            if time.monotonic() >= settle_until:
                return record
            time.sleep(max(min(1.0, settle), backend.capabilities.log_poll_s))
            continue
        if got:  # more may be waiting: read again at once, unless the API's quota says otherwise
            delay = 0.1
            if backend.capabilities.log_poll_s > delay:
                time.sleep(backend.capabilities.log_poll_s)
        else:
            time.sleep(max(delay, backend.capabilities.log_poll_s))
            delay = min(delay * 1.5, 2.0)


def tail(record: JobRecord, lines: int = 10, *, node: int | None = None) -> tuple[list[LogLine], Any]:
    """The last lines of a job's logs and a cursor after them (for a follow that comes next).
    Backends that can read from the end do (`tail`); otherwise the logs are read through.
    Lines are shown, never stored: a job may print what it should not."""
    from collections import deque

    backend = _backend(record)
    handle = _require_handle(record)
    from_end = backend.tail(handle, lines, node=node)
    if from_end is not None:
        return from_end
    last: deque[LogLine] = deque(maxlen=lines)
    cursor = None
    for block in backend.logs(handle, node=node):
        last.extend(LogLine(text, block.node, block.cursor) for text in block.lines()[-lines:])
        cursor = block.cursor
    return list(last), cursor


def read_logs(record: JobRecord, *, node: int | None = None) -> Iterator[LogLine]:
    handle = _require_handle(record)
    return _backend(record).logs(handle, node=node)


def cancel(store: JobStore, record: JobRecord) -> JobRecord:
    """Stop the job; a finished job keeps its result, but a backend that keeps machines after
    the end (Lambda's keep_instances) is still asked, so cancel gives them back."""
    if record.state.is_terminal:
        record = finish(store, record)
        ended = record.handle
        if ended is not None and registry.backend_class(record.backend).capabilities.cancel_after_end:
            backend = _backend(record)
            policy_for(backend).call(lambda: backend.cancel(ended), f"releasing {record.id}")
        return record
    handle = _require_handle(record)
    backend = _backend(record)
    policy_for(backend).call(lambda: backend.cancel(handle), f"cancelling {record.id}")
    return refresh(store, store.get(record.id) or record, backend)


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    backends: tuple[str, ...] = ()


def sync(store: JobStore, backends: list[str]) -> SyncReport:
    """Reconcile the store with what each provider lists: adopt jobs the store lost,
    move states that changed while nobody was looking."""
    report = SyncReport(backends=tuple(backends))
    for name in backends:
        backend = backend_for(name)
        fast = backend.capabilities.fast_status
        listed = policy_for(backend).call(lambda b=backend: list(b.list()), f"listing {name}")
        for summary in [s for s in listed if not is_job_id(s.handle.job_id)]:
            logs.get().warning("%s has a job tagged with the id %s, which launch never gives: skipped",
                               name, shown_id(summary.handle.job_id))
        listed = [s for s in listed if is_job_id(s.handle.job_id)]
        seen = {summary.handle.job_id for summary in listed}
        for record in store.list(backend=name):
            if record.handle is None and record.id not in seen and time.time() - record.created_at > SUBMIT_GRACE_S:
                store.set_status(record.id, Status(JobState.FAILED, "never-created",
                                                   f"the submit never reached {name}"))
                report.updated += 1
        for summary in listed:
            job_id = summary.handle.job_id
            known = store.get(job_id)
            if known is None:
                _record_found(store, summary, name, spec={}, idempotency_key=summary.idempotency_key,
                              fast_status=fast)
                report.added += 1
            elif known.handle is None:
                _record_found(store, summary, name, spec=known.spec, idempotency_key=known.idempotency_key,
                              fast_status=fast)
                report.updated += 1
            elif known.state != summary.status.state:
                store.set_status(job_id, summary.status)
                report.updated += 1
            else:
                continue
            synced = store.get(job_id)
            if synced is not None:  # found ended: finished as a refresh would (machines back, stragglers stopped)
                finish(store, synced, backend)
    return report
