"""The `hf_jobs` backend's pure half: its settings and the exact JSON bodies `HfApi.run_job` sends.

Kept apart from the SDK so a dry run never imports huggingface_hub. Hugging Face Jobs has no file
upload, so the files every node needs (bootstrap.sh, the run and setup commands, the topology
snippet) travel inside the job's own command as `sh -c` arguments, never parsed by a shell; only
the code bundle goes elsewhere: to a private Hub repository, fetched on the node with the token
passed as a secret. The body is built field for field as huggingface_hub's `_create_job_spec`
builds it (a test holds the two together), so what the dry run shows is what the API receives.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher import catalog
from launcher.backend import Request
from launcher.errors import Problem, SpecError
from launcher.node import Placement, job_files, node_environment, upload_text

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

NAME = "hf_jobs"
CATALOG_CSV = Path(__file__).with_name("catalog.csv")
DEFAULT_ENDPOINT = "https://huggingface.co"
# where a namespace left unset goes until submit asks the Hub whose token it holds (whoami)
TOKEN_USER = "<token-user>"
# the bundle token's value in a rendered request: render never holds a credential, submit puts it in
TOKEN_SHOWN = "****"
BUNDLE_TOKEN = "LAUNCH_HF_BUNDLE_TOKEN"  # a secret of the job: the node fetches the bundle with it
BUNDLE_URL = "LAUNCH_HF_BUNDLE_URL"
OVERLAY_URL = "LAUNCH_HF_OVERLAY_URL"  # the bundle's overlay, when it has one (launcher/bundle.py)
JOB_ID_LABEL = "launch-job-id"
RANK_LABEL = "launch-node-rank"
KEY_LABEL = "launch-idempotency-key"
MASTER_ALIAS = "master"  # rank 0's alias in the job's network group
# Hugging Face's own default timeout is 30 minutes, too short for training: a spec without
# max_runtime gets a day, and says so in the README
DEFAULT_TIMEOUT_S = 24 * 3600
# CPU flavors (name, vCPUs, memory GB), cheapest first: a spec without GPUs gets the first that fits
CPU_FLAVORS = (("cpu-basic", 2, 16), ("cpu-upgrade", 8, 32), ("cpu-xl", 16, 124), ("cpu-performance", 32, 256))
CPU_FLAVOR = CPU_FLAVORS[0][0]
# accelerators Hugging Face has no flavor for -> the nearest it has (named in the refusal)
NEAREST = {"H100": "H200", "A100-40GB": "A100-80GB", "A10": "A10G", "V100": "T4"}
# how the files reach the node: each (path, content) pair of arguments is written, then bootstrap runs.
# The container's own /tmp (the fake gives every job its own TMPDIR), paths relative to it.
PRELUDE = r"""cd "${TMPDIR:-/tmp}" && mkdir -p launch/job launch/bundles || exit 2
while [ "$#" -ge 2 ]; do printf '%s' "$2" > "$1" || exit 2; shift 2; done
fetch() {
    got=launch/bundles/incoming.tar.gz
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL -H "Authorization: Bearer $LAUNCH_HF_BUNDLE_TOKEN" -o "$got" "$1"
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import os, sys, urllib.request as u
r = u.Request(sys.argv[1], headers={"Authorization": "Bearer " + os.environ["LAUNCH_HF_BUNDLE_TOKEN"]})
sys.stdout.buffer.write(u.urlopen(r, timeout=300).read())' "$1" > "$got"
    else
        wget -q --header "Authorization: Bearer $LAUNCH_HF_BUNDLE_TOKEN" -O "$got" "$1"
    fi || { echo "[launch] could not fetch the code bundle from the Hub" >&2; exit 2; }
    mv -f "$got" "$2" || exit 2
}
if [ -n "${LAUNCH_HF_BUNDLE_URL:-}" ]; then fetch "$LAUNCH_HF_BUNDLE_URL" "$LAUNCH_BUNDLE"; fi
if [ -n "${LAUNCH_HF_OVERLAY_URL:-}" ]; then fetch "$LAUNCH_HF_OVERLAY_URL" "$LAUNCH_BUNDLE_OVERLAY"; fi
unset LAUNCH_HF_BUNDLE_TOKEN LAUNCH_HF_BUNDLE_URL LAUNCH_HF_OVERLAY_URL
exec sh launch/job/bootstrap.sh
"""
# How a node learns the master (sourced by bootstrap.sh): jobs of one network group reach the job
# claiming an alias at ${HF_NETWORK_GROUP_PREFIX}<alias>; rank 0 claims MASTER_ALIAS.
TOPOLOGY = f'LAUNCH_MASTER_ADDR="${{HF_NETWORK_GROUP_PREFIX:-}}{MASTER_ALIAS}"\n'
JOB_DIR = "launch/job/"


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.hf_jobs`: whose account runs the job, on which flavor, and where the code goes."""
    from pydantic import BaseModel, ConfigDict, Field

    class HfJobsSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$", examples=["my-org"],
                                      description="user or organization billed; default: the token's user")
        flavor: str | None = Field(None, pattern=r"^[a-z0-9-]+$", examples=["a10g-small"],
                                   description="overrides the catalog, e.g. a10g-large")
        bundle_repo: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
                                        examples=["my-org/launch-bundles"],
                                        description="private model repo for code bundles; default: "
                                        "<namespace>/launch-bundles")
        endpoint: str = Field(DEFAULT_ENDPOINT, pattern=r"^https?://[^\s]+$", examples=[DEFAULT_ENDPOINT],
                              description="the Hub's URL")
        token: str | None = Field(None, description="config.toml only; else HF_TOKEN or `hf auth login`")

    return HfJobsSettings


def known_flavors() -> tuple[str, ...]:
    """The flavors this version knows: the catalog's GPU flavors and the CPU ones (a test holds them to
    huggingface_hub's JobHardware enum)."""
    return (*(flavor for flavor, _, _ in CPU_FLAVORS), *(o.instance_type for o in catalog.backend_offers(NAME)))


def label_value(text: str) -> str:
    """A label value the Hub accepts (letters, digits . _ -, at most 63); one that had to change keeps
    a short hash so two different inputs never collide."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", text)
    if clean == text and len(clean) <= 63:
        return clean
    return f"{clean[:54]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def network_group(job_id: str) -> str:
    """The job's network group name: lowercase letters, digits and dashes, at most 46."""
    clean = re.sub(r"[^a-z0-9-]", "-", job_id.lower()).strip("-")
    if len(clean) <= 46 and clean == job_id:
        return clean
    return f"{clean[:37].strip('-')}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"


def bundle_repo(settings: Mapping[str, Any]) -> str:
    return str(settings.get("bundle_repo") or f"{settings.get('namespace') or TOKEN_USER}/launch-bundles")


def bundle_url(settings: Mapping[str, Any], digest: str) -> str:
    """Where a node downloads the bundle: the Hub's resolve URL of a model repo file."""
    return f"{str(settings.get('endpoint') or DEFAULT_ENDPOINT).rstrip('/')}/{bundle_repo(settings)}/resolve/main/" \
           f"bundles/{digest}.tar.gz"


def render(settings: Mapping[str, Any], spec: JobSpec, job_id: str, bundle: Bundle | None,
           secrets: Mapping[str, str], *, idempotency_key: str | None = None,
           spec_token: bool = False) -> Request:
    """One run_job body per node (one job per node, joined in a network group when there are several);
    the bundle's pieces as the uploads. `spec_token`: the spec (not config.toml) holds a token."""
    problems: list[Problem] = []
    if spec_token:
        problems.append(spec.problem("backends.hf_jobs.token", "a token never goes in a spec (it is stored and "
                                     "shared with it): set HF_TOKEN, run `hf auth login`, or put token in "
                                     "[backends.hf_jobs] of config.toml"))
    if not spec.image:
        problems.append(spec.problem("image", "Hugging Face Jobs runs a container image: set image:, e.g. "
                                     "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"))
    if spec.outputs:
        problems.append(spec.problem("outputs", "Hugging Face Jobs has no output upload: push results to the Hub "
                                     "from the job (huggingface_hub's upload_folder) and remove outputs:"))
    if spec.retries and spec.resources.nodes > 1:
        problems.append(spec.problem("retries", "Hugging Face restarts a failed job by itself, and one node "
                                     "restarted alone cannot rejoin its network group: set retries: 0 with nodes > 1"))
    flavor = choose_flavor(settings, spec, problems)
    if problems:
        raise SpecError(problems)

    namespace = str(settings.get("namespace") or TOKEN_USER)
    where = Placement(JOB_DIR, JOB_DIR, f"hf://{bundle_repo(settings)}/bundles/", "launch/bundles/")
    nodes = spec.resources.nodes
    uploads, files_env = job_files(spec, bundle, where, topology=TOPOLOGY if nodes > 1 else None)
    files: list[str] = []
    for item in uploads:
        if item.destination.startswith(JOB_DIR):
            files += [item.destination, upload_text(item)]
    environment = {**node_environment(spec, job_id, {}, output_dir="launch/outputs",
                                      checkpoint_dir=spec.checkpoint_dir or "launch/checkpoints",
                                      workdir="launch/work"),
                   **files_env}
    job_secrets = dict(secrets)
    if bundle is not None:
        for variable, piece in zip((BUNDLE_URL, OVERLAY_URL), bundle.pieces, strict=False):
            environment[variable] = bundle_url(settings, piece.digest)
        job_secrets[BUNDLE_TOKEN] = TOKEN_SHOWN
    labels = {"name": job_id, JOB_ID_LABEL: job_id}
    if idempotency_key:
        labels[KEY_LABEL] = label_value(idempotency_key)
    bodies = []
    for rank in range(nodes):
        body: dict[str, Any] = {
            "command": ["/bin/sh", "-c", PRELUDE, "launch-node", *files],
            "arguments": [],
            "environment": {**environment, "LAUNCH_NODE_RANK": str(rank)} if nodes > 1 else environment,
            "flavor": flavor,
        }
        if job_secrets:
            body["secrets"] = job_secrets
        body["timeoutSeconds"] = int(spec.max_runtime or DEFAULT_TIMEOUT_S)
        if spec.retries:
            body["attempts"] = spec.retries + 1
        body["labels"] = {**labels, RANK_LABEL: str(rank)}
        if nodes > 1:
            body["network"] = {"group": network_group(job_id), **({"aliases": [MASTER_ALIAS]} if rank == 0 else {})}
        body["dockerImage"] = spec.image
        bodies.append(body)
    bundle_uploads = tuple(u for u in uploads if u.destination.startswith("hf://"))
    payload = {"namespace": namespace, "jobs": bodies}
    return Request(NAME, job_id, f"POST /api/jobs/{namespace}", payload, bundle_uploads)


def choose_flavor(settings: Mapping[str, Any], spec: JobSpec, problems: list[Problem]) -> str:
    """The pinned flavor (checked against the ones this version knows) or the catalog's pick; an
    accelerator Hugging Face does not offer is refused naming the nearest one it does."""
    pinned = settings.get("flavor")
    if pinned:
        if pinned not in known_flavors():
            problems.append(spec.problem("backends.hf_jobs.flavor", f"unknown flavor {pinned!r}; known: "
                                         f"{', '.join(known_flavors())}"))
        return str(pinned)
    accel = spec.resources.accelerators
    if not accel.is_gpu:
        cpus, memory = spec.resources.cpus or 0, spec.resources.memory_gb or 0
        fitting = [name for name, vcpus, gb in CPU_FLAVORS if vcpus >= cpus and gb >= memory]
        if not fitting:
            problems.append(spec.problem("resources", f"no CPU flavor has {cpus:g}+ vCPUs and {memory:g}+ GB "
                                         "(the largest, cpu-performance, has 32 and 256)"))
            return ""
        return fitting[0]
    nearest = NEAREST.get(accel.type)
    if nearest and not catalog.find(NAME, accel) and not any(o.accelerator == accel.type
                                                             for o in catalog.backend_offers(NAME)):
        offers = [o for o in catalog.backend_offers(NAME) if o.accelerator == nearest]
        counts = ", ".join(f"{nearest}:{o.count} ({o.instance_type})" for o in offers)
        problems.append(spec.problem("resources.accelerators", f"Hugging Face Jobs has no {accel.type} flavor; the "
                                     f"nearest is {nearest}: {counts}. Ask for one of those, or set "
                                     "backends.hf_jobs.flavor"))
        return ""
    try:
        return catalog.choose(NAME, accel, cpus=spec.resources.cpus, memory_gb=spec.resources.memory_gb).instance_type
    except catalog.CatalogError as exc:
        field = "resources.accelerators" if not catalog.find(NAME, accel) else "resources"
        problems.append(spec.problem(field, f"{exc.message}; {exc.hint}"))
        return ""
