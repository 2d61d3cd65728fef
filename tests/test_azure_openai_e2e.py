"""The azure_openai and openai backends end to end: the real CLI (subprocess) and the real `openai`
clients (AzureOpenAI with azure_endpoint=the fake; OpenAI with base_url=the fake) against
tests/fakes/azure_openai_fake.py, which checks every request and response against Azure's published
2024-10-21 definition. What the conformance suite checks for every backend is not repeated here."""

from __future__ import annotations

import json
import re
import time

import pytest
from fakes.azure_openai_fake import AzureOpenAIFake

KEY = "aoai-test-key"
SUBMITTED = re.compile(r"submitted (\S+) to (azure_openai|openai)")
GOOD = '{"messages": [{"role": "user", "content": "hi %d"}, {"role": "assistant", "content": "hello %d"}]}\n'
SETTINGS = {"azure": "azure_openai", "openai": "openai"}


@pytest.fixture(scope="module", params=["azure", "openai"])
def service(request):
    """The fake, at Azure's paths or OpenAI's; a test that exercises code both share runs on Azure's only."""
    with AzureOpenAIFake(api_key=KEY, flavour=request.param, step_s=0.15) as fake:
        yield fake


@pytest.fixture
def ft(service, launch_home, cli, tmp_path):
    """The fake, emptied, with config.toml pointing the backend at it; afterwards nothing the spec rejects."""
    service.jobs.clear()
    service.files.clear()
    service.calls.clear()
    service.violations.clear()
    service.hold, service.reject_files = False, None
    launch_home.mkdir(parents=True, exist_ok=True)
    backend = SETTINGS[service.flavour]
    where = (f'endpoint = "{service.endpoint}"' if service.flavour == "azure"
             else f'base_url = "{service.base_url}"')
    (launch_home / "config.toml").write_text(f"[backends.{backend}]\n{where}\nfile_poll_s = 0.05\n")
    (tmp_path / "train.jsonl").write_text("".join(GOOD % (i, i) for i in range(10)))

    class Helper:
        fake = service
        name = backend
        env = {"AZURE_OPENAI_API_KEY": KEY} if service.flavour == "azure" else {"OPENAI_API_KEY": KEY}

        def spec(self, extra: str = "", name: str = "bot") -> str:
            path = tmp_path / "spec.yaml"
            path.write_text(f"name: {name}\nfinetune:\n  base_model: gpt-4o-mini-2024-07-18\n"
                            f"  training_file: train.jsonl\n  suffix: sup\n{extra}")
            return str(path)

        def run(self, *args: str, check_rc: int | None = None, env: dict | None = None, **kw):
            return cli(*args, check_rc=check_rc, env={**self.env, **(env or {})}, **kw)

        def submit(self, *extra: str) -> str:
            out = self.run("run", self.spec(), "--backend", backend, *extra, check_rc=0)
            return SUBMITTED.search(out.stdout + out.stderr)[1]

    yield Helper()
    assert service.violations == []


def test_run_follow_to_success_shows_the_fine_tuned_model_and_metrics(ft):
    result = ft.run("run", ft.spec(), "--backend", ft.name, "--follow", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "fine_tuned_model: gpt-4o-mini-2024-07-18.ft-" in out, out
    assert "Job entered state running" in out and "Training job successfully completed" in out, out
    assert "metrics step 3: train_loss=0.5000" in out, out
    assert out.count("Step 2/3: training loss") == 1, out  # events followed without repeats
    job = SUBMITTED.search(out)[1]
    record = json.loads(ft.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED"
    assert re.search(r"fine_tuned_model: \S+; [\d,]+ trained tokens \(~\$\d", record["message"]), record
    (create,) = ft.fake.creates()
    assert create["training_file"].startswith("file-") and create["model"] == "gpt-4o-mini-2024-07-18"
    if ft.fake.flavour == "azure":
        assert create["suffix"].startswith("sup_bot-") and "method" not in create and "metadata" not in create
    else:
        assert create["metadata"] == {"launch-job-id": job} and create["method"]["type"] == "supervised"


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_an_unchanged_file_is_not_uploaded_again(ft):
    ft.submit()
    ft.submit()
    assert len(ft.fake.uploads()) == 1
    assert len(ft.fake.creates()) == 2
    assert len({c["training_file"] for c in ft.fake.creates()}) == 1


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_validate_names_the_first_bad_line_and_nothing_is_sent(ft, tmp_path):
    lines = [GOOD % (i, i) for i in range(5)]
    lines[3] = '{"messages": [{"role": "user", "content": "no answer"}]}\n'
    (tmp_path / "train.jsonl").write_text("".join(lines))
    result = ft.run("validate", ft.spec(), check_rc=2)
    assert re.search(r"train\.jsonl:4: finetune\.training_file: messages: no assistant message", result.stderr), \
        result.stderr
    ft.run("run", ft.spec(), "--backend", ft.name, check_rc=2)
    assert ft.fake.calls == []
    (tmp_path / "train.jsonl").write_text("".join(GOOD % (i, i) for i in range(7)))
    ok = ft.run("validate", ft.spec(), check_rc=0).stdout
    assert "train.jsonl: 7 examples, ~" in ok and "tokens" in ok, ok


def test_a_file_the_service_rejects_is_one_error_and_no_job(ft):
    ft.fake.reject_files = "The training file has fewer than 10 examples after content filtering."
    result = ft.run("run", ft.spec(), "--backend", ft.name)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fewer than 10 examples" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert ft.fake.creates() == []
    assert json.loads(ft.run("list", "-o", "json", check_rc=0).stdout) == []


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_cancel_a_running_job_and_again(ft):
    ft.fake.hold = True
    job = ft.submit()
    deadline = time.monotonic() + 20
    while ft.fake.state(ft.fake.job_for(job)) != "running":
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.05)
    ft.run("cancel", job, check_rc=0)
    assert json.loads(ft.run("status", job, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"
    ft.run("cancel", job, check_rc=0)
    assert len([p for m, p, _ in ft.fake.calls if p.endswith("/cancel")]) == 1


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_list_sync_adopts_a_job_the_store_lost(ft, launch_home):
    job = ft.submit()
    (launch_home / "jobs.db").unlink() if (launch_home / "jobs.db").exists() else None
    for path in launch_home.glob("*.db*"):
        path.unlink()
    ft.run("list", "--sync", "--backend", ft.name, check_rc=0)
    listed = json.loads(ft.run("list", "-o", "json", check_rc=0).stdout)
    assert [r["id"] for r in listed] == [job], listed


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # both APIs' find: the conformance suite
def test_a_rerun_with_the_same_idempotency_key_adopts_the_job(ft, launch_home):
    first = ft.submit("--idempotency-key", "ci-run-42")
    for path in launch_home.glob("*.db*"):  # a fresh CI machine: the store knows nothing
        path.unlink()
    again = ft.run("run", ft.spec(), "--backend", ft.name, "--idempotency-key", "ci-run-42", check_rc=0)
    assert first in again.stdout + again.stderr and "already exists" in again.stdout + again.stderr
    assert len(ft.fake.creates()) == 1


def test_a_wrong_key_exits_4_with_how_to_sign_in(ft):
    wrong = {"AZURE_OPENAI_API_KEY": "nope"} if ft.fake.flavour == "azure" else {"OPENAI_API_KEY": "nope"}
    result = ft.run("run", ft.spec(), "--backend", ft.name, env=wrong)
    assert result.returncode == 4, result.stderr
    assert "refused the credentials (401)" in result.stderr and "nope" not in result.stderr
    assert "export" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_throttling_is_retried_by_the_runner_alone(ft):
    ft.fake.fail_next(r"/fine_tuning/jobs$", 429, times=2, retry_after=0, method="POST")
    ft.submit()
    creates = [p for m, p, _ in ft.fake.calls if m == "POST" and p.endswith("/fine_tuning/jobs")]
    assert len(creates) == 3  # two 429s, then the job: the client's own retries are off
    # before each retried create, the job id was looked for (a 429 may come after the create landed)
    assert len([p for m, p, _ in ft.fake.calls if m == "GET" and p.endswith("/fine_tuning/jobs")]) == 2
    assert len(ft.fake.jobs) == 1


@pytest.mark.parametrize("service", ["azure"], indirect=True)  # the same code on both APIs: once is enough
def test_a_container_spec_is_refused_and_other_backends_refuse_finetune(ft, write_spec):
    container = write_spec("name: c\nrun: python train.py\n", "container.yaml")
    result = ft.run("run", str(container), "--backend", ft.name, "--dry-run", check_rc=2)
    assert "fine-tunes hosted models and runs no container" in result.stderr
    result = ft.run("run", ft.spec(), "--backend", "local", "--dry-run", check_rc=2)
    assert "the local backend runs container jobs, not hosted fine-tuning" in result.stderr
    assert "azure_openai, openai" in result.stderr
