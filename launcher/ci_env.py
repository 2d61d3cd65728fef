"""What `launch` does differently inside a CI job: a default idempotency key, and (on
GitHub Actions) a step summary and an error annotation.

A CI step that is retried within the same run/attempt (a retry wrapper, a runner that
died after submitting) must not launch a second 8-GPU job, so the key defaults to the
CI's own identity of that step. A new attempt ("Re-run jobs") is a deliberate new run
and gets a new key: it should train again, not return the failed job.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CiKey:
    key: str
    source: str  # e.g. "GitHub Actions run 123 attempt 2": said on stderr so it is never a surprise


def default_idempotency_key(env: Mapping[str, str], *, spec_file: str, overrides: tuple[str, ...],
                            backend: str) -> CiKey | None:
    """The key for this CI step, or None outside CI. What the step submits (spec, --set, backend)
    is part of it, so two different submissions in one step never share a key; a matrix leg's
    values reach it through its --set/--backend flags."""
    what = hashlib.sha256(repr((spec_file, tuple(overrides), backend)).encode()).hexdigest()[:12]
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        run_id, attempt = env["GITHUB_RUN_ID"], env.get("GITHUB_RUN_ATTEMPT", "1")
        step = hashlib.sha256(repr((env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_JOB", ""),
                                    env.get("GITHUB_ACTION", ""))).encode()).hexdigest()[:8]
        return CiKey(f"gha-{run_id}-{attempt}-{step}-{what}", f"GitHub Actions run {run_id} attempt {attempt}")
    if env.get("GITLAB_CI") == "true" and env.get("CI_PIPELINE_ID") and env.get("CI_JOB_ID"):
        pipeline, job = env["CI_PIPELINE_ID"], env["CI_JOB_ID"]
        return CiKey(f"glab-{pipeline}-{job}-{what}", f"GitLab pipeline {pipeline} job {job}")
    return None


def run_url(env: Mapping[str, str]) -> str | None:
    """The page of the CI run submitting now (recorded with its jobs: `launch list --ci`), or None
    outside CI."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}/attempts/{attempt}"
    if env.get("GITLAB_CI") == "true" and env.get("CI_JOB_URL"):
        return env["CI_JOB_URL"]
    return None


def submitter(env: Mapping[str, str]) -> tuple[str, str, str | None]:
    """Who submits (user, host, CI run URL): what a shared history tells people apart by."""
    import os

    from launcher.store import this_host

    return _user(tuple(os.environ.get(name) for name in _USER_VARIABLES), os.getuid()), this_host(), run_url(env)


_USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser reads, before the passwd entry


@functools.lru_cache(maxsize=8)
def _user(variables: tuple[str | None, ...], uid: int) -> str:
    """getpass.getuser(), once per value of what it reads (a submit of a sweep asks each time)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a passwd entry
        return f"uid-{uid}"


def _escape_data(text: str) -> str:
    """GitHub workflow-command escaping: a newline in a message must not end the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def error_annotation(record: Any) -> str:
    """`::error::` line for a job that did not succeed; GitHub shows it on the run's page."""
    message = record.message or f"job ended {record.state.value}"
    title = _escape_data(f"launch: {record.id} {record.state.value}").replace(":", "%3A").replace(",", "%2C")
    return f"::error title={title}::{_escape_data(message)}"


def step_summary(record: Any, est_cost_usd: float | None) -> str:
    """A Markdown block for $GITHUB_STEP_SUMMARY. Values go in code spans and have their
    pipes escaped: a message must not break the table."""
    from launcher.durations import format_seconds

    duration = "-"
    if record.started_at and record.ended_at:
        duration = format_seconds(record.ended_at - record.started_at)
    state = record.state.value + (f" (exit {record.exit_code})" if record.exit_code is not None else "")
    console = f"[open]({record.url})" if record.url and record.url.startswith("https://") else "-"
    cost = f"${est_cost_usd:,.2f} (catalog price x nodes x duration)" if est_cost_usd is not None else "unknown"
    rows = [("job", f"`{record.id}`"), ("backend", record.backend), ("console", console), ("state", state),
            ("duration", duration), ("estimated cost", cost)]
    if record.message and record.state.value != "SUCCEEDED":
        rows.append(("message", _cell(record.message)))
    icon = {"SUCCEEDED": "✅", "FAILED": "❌", "CANCELLED": "⏹️"}.get(record.state.value, "⏳")
    body = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"### {icon} launch: {record.name}\n\n| | |\n|---|---|\n{body}\n\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")[:1000]


def estimated_cost(record: Any) -> float | None:
    """What the run cost at catalog prices: hourly price of all nodes x how long it ran."""
    if not (record.started_at and record.ended_at and record.spec):
        return None
    try:
        from launcher import plan
        from launcher.spec import JobSpec

        spec = JobSpec.model_validate(record.spec)
        row = plan.row_for(record.backend, spec, live=False)
    except Exception:  # an old or partial record: no estimate rather than no summary
        return None
    if row.hourly_usd is None:
        return None
    return round(row.hourly_usd * (record.ended_at - record.started_at) / 3600, 2)


def write_github_outputs(env: Mapping[str, str], record: Any, *, echo: Any) -> None:
    """Under GitHub Actions: append the summary and, for a job that did not succeed, print the
    annotation (GitHub reads workflow commands from stdout)."""
    if env.get("GITHUB_ACTIONS") != "true":
        return
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as handle:
            handle.write(step_summary(record, estimated_cost(record)))
    if record.state.is_terminal and record.state.value != "SUCCEEDED":
        echo(error_annotation(record))
