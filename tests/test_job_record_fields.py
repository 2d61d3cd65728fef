"""What a job's record carries besides its state, for a team's shared history: the submitter's CI
run page, the catalog estimate made at submit time, and store URLs shown with the password masked."""

from __future__ import annotations

import pytest

from launcher import catalog, ci_env, plan
from launcher.accelerators import parse
from launcher.spec import parse_spec
from launcher.store import mask_url


def test_the_ci_run_page_is_recorded_for_github_and_gitlab_and_none_elsewhere() -> None:
    github = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "team/models"}
    assert ci_env.run_url(github) == "https://github.com/team/models/actions/runs/42/attempts/1"
    assert ci_env.run_url({**github, "GITHUB_SERVER_URL": "https://ghe.example.com/", "GITHUB_RUN_ATTEMPT": "3"}) \
        == "https://ghe.example.com/team/models/actions/runs/42/attempts/3"
    gitlab = {"GITLAB_CI": "true", "CI_JOB_URL": "https://gitlab.example.com/team/models/-/jobs/7"}
    assert ci_env.run_url(gitlab) == "https://gitlab.example.com/team/models/-/jobs/7"
    assert ci_env.run_url({}) is None and ci_env.run_url({"GITHUB_ACTIONS": "true"}) is None
    user, host, url = ci_env.submitter(github)
    assert user and host and url.endswith("/runs/42/attempts/1")


def test_the_submit_estimate_is_catalog_price_x_nodes_x_max_runtime(launch_home) -> None:
    text = "name: p\nrun: python t.py\nimage: img:1\nresources: {accelerators: 'A100-40GB:8', nodes: 2}\n"
    offer = catalog.find("vertex", parse("A100-40GB:8"))[0]
    spec = parse_spec(text + "max_runtime: 10h\n", "s.yaml")
    assert plan.submit_estimate("vertex", spec) == pytest.approx(offer.ondemand_usd_hr * 2 * 10, abs=0.01)
    assert plan.submit_estimate("vertex", parse_spec(text, "s.yaml")) is None  # no max_runtime: no bound
    assert plan.submit_estimate("local", spec) is None  # your own machines: no catalog price


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://ana:s3cr%40t@db:5432/launch", "postgresql://ana:***@db:5432/launch"),
    ("postgresql://ana@db/launch?sslmode=require", "postgresql://ana@db/launch?sslmode=require"),
    ("postgresql://db/launch?user=ana&password=hunter2&sslmode=verify-full",
     "postgresql://db/launch?user=ana&password=***&sslmode=verify-full"),
    ("postgres://:only-pw@db/x", "postgres://:***@db/x"),
])
def test_store_urls_are_shown_with_the_password_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
