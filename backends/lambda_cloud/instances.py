"""What launch writes onto Lambda Cloud instances and reads back from them: names, tags,
the instance type that fits a spec, and the on-exit hook that makes a node give its own
machine back.

Tags carry the job id (and idempotency key), so a retried submit or `launch list --sync`
finds the instances of a job; the name carries the node's exit code once the node has
terminated itself, because the instance (and every file on it) is gone after that.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from backends.remote.nodes import NodeReport, judge
from backends.remote.transport import script
from launcher.backend import JobState, Status

JOB_TAG = "launch-job-id"
RANK_TAG = "launch-node-rank"
KEY_TAG = "launch-idempotency-key"
LIVE = ("booting", "active", "unhealthy")
OUTCOME_NAME = re.compile(r"-(?:exit(\d+|x)|(cancelled))$")
API_KEY = re.compile(r"[A-Za-z0-9_.:+/=-]+")


def instance_name(job_id: str, rank: int) -> str:
    """<= 64 characters (the API's limit) with room for the outcome appended at the end."""
    return f"{job_id[:48]}-n{rank}"


def with_outcome(name: str, state: str, exit_code: int | None) -> str:
    """The name an ended job's instance is given just before it is terminated: whoever looks
    later (another machine's `launch list --sync`) reads the outcome there, as the instance's
    files are gone."""
    if OUTCOME_NAME.search(name):
        return name
    if state == "CANCELLED":
        return f"{name}-cancelled"
    return f"{name}-exit{0 if state == 'SUCCEEDED' else exit_code if exit_code is not None else 'x'}"


def cancelled_in_name(name: str | None) -> bool:
    match = OUTCOME_NAME.search(name or "")
    return bool(match and match.group(2))


def tag_value(text: str) -> str:
    """Tag values are capped at 128 characters; a longer key keeps a hash so it still matches."""
    return text if len(text) <= 128 else f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def tags(job_id: str, rank: int, idempotency_key: str | None) -> list[dict[str, str]]:
    found = [{"key": JOB_TAG, "value": job_id}, {"key": RANK_TAG, "value": str(rank)}]
    if idempotency_key:
        found.append({"key": KEY_TAG, "value": tag_value(idempotency_key)})
    return found


def tag(instance: dict[str, Any], key: str) -> str | None:
    return next((t.get("value") for t in instance.get("tags") or [] if t.get("key") == key), None)


def exit_code_from_name(name: str | None) -> int | None:
    """The exit code a node wrote into its instance's name before terminating itself."""
    match = OUTCOME_NAME.search(name or "")
    if not match or match.group(2):
        return None
    return int(match.group(1)) if match.group(1) != "x" else 255


def ended(nodes: list[dict[str, Any]], listed: dict[str, dict[str, Any]]) -> Status | None:
    """The job's end as its instances tell it (preempted, vanished, or every node gone after
    leaving its exit code in the instance name); None while the nodes must be asked over ssh."""
    states = {n["rank"]: (listed.get(n["id"]) or {}).get("status", "vanished") for n in nodes}
    preempted = [n for n in nodes if states[n["rank"]] == "preempted"]
    if preempted:
        return Status(JobState.FAILED, "preempted",
                      f"node {preempted[0]['rank']}'s instance {preempted[0]['id']} was preempted")
    gone = [n for n in nodes if states[n["rank"]] not in LIVE]
    if any(cancelled_in_name((listed.get(n["id"]) or {}).get("name")) for n in gone):
        return Status(JobState.CANCELLED, "cancelled", "cancelled")
    reports = [NodeReport(n["rank"], exit_code_from_name((listed.get(n["id"]) or {}).get("name")), False)
               for n in gone]
    lost = next((r.rank for r in reports if r.exit_code is None), None)
    if lost is not None:
        return Status(JobState.FAILED, states[lost], f"node {lost}'s instance was {states[lost]} before its job ended")
    if any(r.exit_code for r in reports) or (nodes and len(gone) == len(nodes)):
        return judge(reports, cancelled=False)
    return None


def fits(item: dict[str, Any], accelerator: str, count: int, *, min_vcpus: float | None = None,
         min_memory_gib: float | None = None) -> bool:
    """Whether an /instance-types entry has `count` GPUs of the canonical `accelerator` (e.g.
    "A100-80GB" matches "A100 (80 GB SXM4)", never "A100 (40 GB)"; "A10" never "A100")."""
    kind = item["instance_type"]
    specs = kind.get("specs") or {}
    if specs.get("gpus") != count:
        return False
    if (min_vcpus and specs.get("vcpus", 0) < min_vcpus) or (min_memory_gib and specs.get("memory_gib", 0)
                                                               < min_memory_gib):
        return False
    model, _, memory = accelerator.partition("-")
    described = f"{kind.get('gpu_description', '')} {kind.get('description', '')}"
    if not re.search(rf"(?<![A-Za-z0-9]){re.escape(model)}(?![A-Za-z0-9])", described, re.IGNORECASE):
        return False
    sizes = set(re.findall(r"(\d+)\s*GB", described, re.IGNORECASE))
    wanted = memory.upper().removesuffix("GB")
    return not (wanted and sizes and wanted not in sizes)


def choices(types: dict[str, Any], names: Iterable[str], regions: list[str]) -> list[tuple[str, str]]:
    """(region, instance type) pairs to try, in order: the user's regions first to last (or,
    when none are given, every region with capacity), cheapest type first within a region."""
    priced = sorted((types[n]["instance_type"].get("price_cents_per_hour", 0), n) for n in names if n in types)
    order = list(regions)
    if not order:
        for _, name in priced:
            for region in types[name].get("regions_with_capacity_available") or []:
                if region["name"] not in order:
                    order.append(region["name"])
    pairs = []
    for region in order:
        for _, name in priced:
            if any(r["name"] == region for r in types[name].get("regions_with_capacity_available") or []):
                pairs.append((region, name))
    return pairs


def curl_config(api_key: str) -> str:
    """The node's copy of the API key, as a curl config file (0600): never on a command line."""
    return f'header = "Authorization: Bearer {api_key}"\n'


def on_exit_hook(api_url: str, instances: list[dict[str, Any]], linger_s: int, interval_s: float = 1.0) -> str:
    """`sh on_exit.sh CODE`, run by bootstrap.sh when the node's job has ended: after `linger_s`
    (time for a watching launcher to collect logs and terminate first), write the exit code into
    this instance's name, then terminate this instance; after a failure, every instance of the
    job (the other nodes would wait for their peer until max_runtime). Its two calls are
    `interval_s` apart: the API's rate limit counts the key, whoever uses it."""
    all_ids = json.dumps({"instance_ids": [i["id"] for i in instances]})
    cases = "".join(script("  {rank}) self_path={path}; name={name}; mine={mine} ;;\n", rank=str(i["rank"]),
                           path="/instances/" + quote(i["id"], safe=""), name=json.dumps(i["name"])[:-1],
                           mine=json.dumps({"instance_ids": [i["id"]]}))
                    for i in instances)
    return (
        "#!/bin/sh\n# launch: give this Lambda Cloud instance back when its job has ended\n"
        + script("api={api}; linger={linger}; interval={interval}; all={all}\n", api=api_url.rstrip("/"),
                 linger=str(int(linger_s)), interval=f"{interval_s:g}", all=all_ids)
        + 'code=$1; case "$code" in ""|*[!0-9]*) code=x ;; esac\n'
        + 'config="$(dirname "$0")/lambda.key"\n'
        + 'case "${LAUNCH_NODE_RANK:-0}" in\n' + cases + "  *) exit 0 ;;\nesac\n"
        + 'call() { curl -sS -o /dev/null --retry 10 --retry-connrefused --retry-max-time 300 --max-time 60 '
          '-K "$config" -H "Content-Type: application/json" -X POST -d "$2" "$api$1"; }\n'
        + 'command -v curl >/dev/null 2>&1 || { echo "[launch] no curl: cannot terminate this instance" >&2; '
          "exit 1; }\n"
        + 'sleep "$linger"\n'
        + 'call "$self_path" "{\\"name\\": $name-exit$code\\"}"\n'
        + 'sleep "$interval"\n'
        + 'if [ "$code" = 0 ]; then body=$mine; else body=$all; fi\n'
        + 'echo "[launch] terminating this instance (exit code $code)" >&2\n'
        + 'call /instance-operations/terminate "$body"\n'
    )
