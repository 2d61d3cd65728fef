"""The lambda_cloud backend end to end: the real CLI (subprocess) against the local Lambda API fake
(tests/fakes/lambda_fake.py, every exchange validated against Lambda's OpenAPI spec) whose
instances are a real OpenSSH sshd on 127.0.0.1 (tests/fakes/sshd.py).

After every test the fake must hold no live instance (unless the test kept one on purpose), no
request or response the spec rejects and no exception of its own: a leak, a malformed call or a
broken fake fails the suite. The fake lists a terminated instance for a moment only (the API lists
running instances), so no test passes by reading a job's end from the listing."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fakes.lambda_fake import LambdaFake
from fakes.sshd import SSHServer, sshd_available

pytestmark = pytest.mark.skipif(not sshd_available(), reason="needs OpenSSH's sshd and ssh")

SUBMITTED = re.compile(r"submitted (\S+) to lambda_cloud")
API_KEY = "lambda-test-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The machine behind every fake instance: an sshd whose PATH has an `nvidia-smi` showing 8 GPUs."""
    gpus = tmp_path_factory.mktemp("gpus")
    smi = gpus / "nvidia-smi"
    smi.write_text("#!/bin/sh\nfor i in 0 1 2 3 4 5 6 7; do echo \"GPU $i: NVIDIA H100 80GB HBM3 (UUID: x)\"; done\n")
    smi.chmod(0o755)
    with SSHServer("127.0.0.1", env={"PATH": f"{gpus}:/usr/local/bin:/usr/bin:/bin"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def module_fake():
    with LambdaFake(api_key=API_KEY, ip="127.0.0.1", boot_s=0.3) as fake:
        yield fake


@pytest.fixture
def fake(module_fake):
    """The fake, reset; after the test: no instance left running (unless `fake.keep` says how many may),
    nothing the spec rejects, and no request the client sent faster than the limits allow."""
    module_fake.reset()
    module_fake.request_interval_s = 0.05
    module_fake.launch_interval_s = 0.3
    module_fake.keep = 0
    module_fake.allow_throttling = False
    module_fake.forget_terminated_s = 0.3
    yield module_fake
    live = module_fake.live()
    module_fake.terminate_all()
    assert len(live) <= module_fake.keep, f"instances left running: {[i['name'] for i in live]}"
    assert module_fake.violations == []
    assert module_fake.errors == []
    assert module_fake.allow_throttling or module_fake.throttled == 0, "the client ignored the rate limits"


@pytest.fixture
def lam(fake, server, cli, write_spec):
    class Helper:
        @staticmethod
        def spec(body: str, **settings) -> Path:
            values = {"api_url": fake.base_url, "ssh_key_name": "test-key", "ssh_user": server.user,
                      "ssh_port": server.port, "ssh_config": str(server.ssh_config),
                      "remote_root": str(server.remote_root), "request_interval": 0.05, "launch_interval": 0.3,
                      "boot_poll": 0.1, "cancel_grace": "2s", "self_terminate_after": "1h", **settings}
            lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in values.items())
            return write_spec(f"{body}backends:\n  lambda_cloud:\n{lines}")

        @staticmethod
        def run(*args: str, check_rc: int | None = None, env: dict | None = None, **kw):
            return cli(*args, check_rc=check_rc, env={"LAMBDA_API_KEY": API_KEY, **(env or {})}, **kw)

        @staticmethod
        def submit(spec: Path, *extra: str) -> str:
            out = Helper.run("run", str(spec), "--backend", "lambda_cloud", *extra, check_rc=0).stdout
            return SUBMITTED.search(out).group(1)

    return Helper


def _launches(fake) -> list[dict]:
    return [body for method, path, body, _ in fake.calls if path.endswith("/instance-operations/launch")]


def _await_forgotten(fake, *instance_ids: str, timeout: float = 20) -> None:
    """Until `GET /instances` no longer lists these (terminated) instances."""
    deadline = time.monotonic() + timeout
    while set(instance_ids) & set(fake.listed()):
        assert time.monotonic() < deadline, "the fake still lists terminated instances"
        time.sleep(0.1)


def test_run_launches_runs_over_ssh_and_terminates(lam, fake, launch_home):
    spec = lam.spec("name: lamjob\nresources:\n  accelerators: H100:8\nsecrets: [MY_TOKEN]\n"
                    "run: echo rank=$LAUNCH_NODE_RANK gpus=$LAUNCH_GPUS_PER_NODE len=${#MY_TOKEN}; echo done-ok\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--follow", env={"MY_TOKEN": "tok-canary-77"},
                     check_rc=0)
    assert "len=13" in result.stdout  # the secret reached the job...
    for path in launch_home.rglob("*"):  # ...and neither it nor the API key reached launch's own files
        if path.is_file():
            assert b"tok-canary-77" not in path.read_bytes() and API_KEY.encode() not in path.read_bytes(), path
    assert "rank=0 gpus=8" in result.stdout and "done-ok" in result.stdout
    job = SUBMITTED.search(result.stdout).group(1)
    [launch] = _launches(fake)
    # the type was chosen from /instance-types at run time: the only 8x H100 type the fake offers
    assert launch["instance_type_name"] == "gpu_8x_h100_sxm5" and launch["region_name"] == "us-east-1"
    assert {"key": "launch-job-id", "value": job} in launch["tags"] and launch["ssh_key_names"] == ["test-key"]
    assert not fake.live() and fake.terminated_by("python-requests")  # the launcher gave it back
    record = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0
    # the instance is gone; its log was copied before it went
    assert "done-ok" in lam.run("logs", job, check_rc=0).stdout


def test_failing_job_fails_and_its_instances_are_terminated(lam, fake):
    spec = lam.spec("name: lamfail\nresources:\n  accelerators: A10\nrun: echo about to fail; exit 7\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--wait")
    assert result.returncode == 1, result.stderr
    assert "node 0 exited with code 7" in result.stderr and "Traceback" not in result.stderr
    assert _launches(fake)[0]["instance_type_name"] == "gpu_1x_a10"  # A10, never A100
    assert not fake.live()


def test_cancel_stops_the_job_and_terminates_even_kept_instances(lam, fake):
    spec = lam.spec("name: lamcancel\nresources:\n  accelerators: A10\nrun: sleep 300\n", keep_instances=True)
    job = lam.submit(spec)
    assert len(fake.live()) == 1
    assert "CANCEL" in lam.run("cancel", job, check_rc=0).stdout
    assert lam.run("wait", job).returncode == 3
    assert not fake.live()
    [instance] = fake.instances.values()
    assert instance["name"].endswith("-cancelled")  # the outcome outlives the instance's files
    lam.run("cancel", job, check_rc=0)  # again: harmless


def test_two_nodes_get_two_instances_in_one_region(lam, fake):
    spec = lam.spec("name: lamtwo\nresources:\n  accelerators: A10\n  nodes: 2\n"
                    "run: echo rank=$LAUNCH_NODE_RANK of=$LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--follow", check_rc=0)
    assert "[node 0] rank=0 of=2 master=127.0.0.1" in result.stdout
    assert "[node 1] rank=1 of=2 master=127.0.0.1" in result.stdout
    launches = _launches(fake)
    assert [b["name"][-3:] for b in launches] == ["-n0", "-n1"] and "quantity" not in launches[0]
    assert not fake.live()


def test_capacity_only_in_the_second_region(lam, fake):
    fake.capacity = {"gpu_1x_a10": ["us-west-1", "us-east-1"]}
    fake.fail_launch(0)  # listed as available, but the launch finds none there (as it happens)
    spec = lam.spec("name: lamregion\nresources:\n  accelerators: A10\nrun: echo ran-in-second\n",
                    regions=["us-west-1", "us-east-1"])
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--wait", check_rc=0)
    assert [b["region_name"] for b in _launches(fake)] == ["us-west-1", "us-east-1"], result.stderr


def test_no_capacity_anywhere_names_what_was_tried(lam, fake):
    fake.capacity = {"gpu_1x_a10": ["us-west-1", "us-east-1"]}
    fake.fail_launch(0)
    fake.fail_launch(1)
    spec = lam.spec("name: lamnone\nresources:\n  accelerators: A10\nrun: echo never\n",
                    regions=["us-west-1", "us-east-1"])
    result = lam.run("run", str(spec), "--backend", "lambda_cloud")
    assert result.returncode == 1, result.stderr
    assert "gpu_1x_a10 in us-west-1" in result.stderr and "gpu_1x_a10 in us-east-1" in result.stderr
    assert json.loads(lam.run("list", "-o", "json", check_rc=0).stdout) == []  # nothing recorded


def test_partial_launch_failure_terminates_the_launched_node(lam, fake):
    fake.fail_launch(1, code="global/quota-exceeded")
    spec = lam.spec("name: lampartial\nresources:\n  accelerators: A10\n  nodes: 2\nrun: echo never\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud")
    assert result.returncode == 1 and "quota exceeded" in result.stderr.lower(), result.stderr
    assert len(_launches(fake)) == 2 and len(fake.instances) == 1
    [first] = fake.instances
    assert first in fake.terminated_by("python-requests")  # node 0 did not stay billing


def test_the_node_terminates_itself_when_its_job_ends(lam, fake, server):
    spec = lam.spec("name: lamself\nresources:\n  accelerators: A10\nrun: echo by-myself\n",
                    self_terminate_after="1s")
    job = lam.submit(spec)
    [instance_id] = fake.instances
    fake.await_terminated(instance_id, "curl/")
    renamed = [body for method, path, body, agent in fake.calls if agent.startswith("curl/") and
               path.endswith(instance_id) and method == "POST"]
    assert renamed and renamed[0]["name"].endswith("-exit0")
    _await_forgotten(fake, instance_id)  # Lambda lists running instances only: asked for by id
    # nobody watched: the result comes from the name the node left on its instance
    record = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED", record
    key_file = Path(server.remote_root) / "jobs" / job / "lambda.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and API_KEY in key_file.read_text()


def test_preempted_instance_fails_the_job_with_that_reason(lam, fake):
    spec = lam.spec("name: lampreempt\nresources:\n  accelerators: A10\n  nodes: 2\nrun: sleep 300\n")
    job = lam.submit(spec)
    first = next(i for i, v in fake.instances.items() if v["name"].endswith("-n0"))
    fake.preempt(first)
    result = lam.run("wait", job)
    assert result.returncode == 1
    record = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "FAILED" and "preempted" in record["message"]
    assert not fake.live()  # the other node was given back


def test_vanished_instance_fails_the_job(lam, fake):
    spec = lam.spec("name: lamvanish\nresources:\n  accelerators: A10\nrun: sleep 300\n")
    job = lam.submit(spec)
    [instance_id] = fake.instances
    fake.vanish(instance_id)
    assert lam.run("wait", job).returncode == 1
    record = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert "vanished" in record["message"]
    lam.run("cancel", job, check_rc=0)  # the job is over; cancel still answers


def test_throttling_and_server_errors_are_retried(lam, fake):
    fake.allow_throttling = True
    fake.fail_next(r"/instance-types$", 503, times=2)
    fake.fail_next(r"/instances$", 429, times=1, retry_after=1, code="global/too-many-requests")
    spec = lam.spec("name: lamretry\nresources:\n  accelerators: A10\nrun: echo survived\n")
    lam.run("run", str(spec), "--backend", "lambda_cloud", "--wait", check_rc=0)
    assert not fake.live()


def test_a_failed_poll_while_booting_is_a_missed_poll_not_a_new_launch(lam, fake):
    """With no retry loop in the client, a poll that fails while the instance boots must not fail the
    submit (that would give the instance back and launch another): the boot wait polls again."""
    import threading

    def fail_polls_once_launched() -> None:
        deadline = time.monotonic() + 30
        while not _launches(fake) and time.monotonic() < deadline:
            time.sleep(0.005)
        fake.fail_next(r"/instances$", 503, times=2)

    injector = threading.Thread(target=fail_polls_once_launched)
    injector.start()
    spec = lam.spec("name: lampoll\nresources:\n  accelerators: A10\nrun: echo booted-once\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--wait", check_rc=0)
    injector.join()
    assert len(_launches(fake)) == 1 and not fake.live(), result.stderr
    assert len([c for c in fake.calls if c[0] == "GET" and c[1].endswith("/instances")]) >= 3  # the failed ones too


def test_bad_api_key_exits_4_with_what_to_do(lam, fake):
    spec = lam.spec("name: lamkey\nresources:\n  accelerators: A10\nrun: echo never\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", env={"LAMBDA_API_KEY": "wrong-key"})
    assert result.returncode == 4, result.stderr
    assert "rejected the API key" in result.stderr and "LAMBDA_API_KEY" in result.stderr
    assert "wrong-key" not in result.stderr + result.stdout


def test_dry_run_shows_the_launch_without_key_or_secrets(lam, fake):
    spec = lam.spec("name: lamdry\nresources:\n  accelerators: H100:8\n  nodes: 2\nsecrets: [MY_TOKEN]\n"
                    "run: echo hi\n", regions=["us-west-1", "us-east-1"])
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", "--dry-run", "-o", "json",
                     env={"MY_TOKEN": "s3cr3t-value"}, check_rc=0)
    shown = result.stdout + result.stderr
    assert "s3cr3t-value" not in shown and API_KEY not in shown
    payload = json.loads(result.stdout)["payload"]
    assert [b["name"][-3:] for b in payload["launch"]] == ["-n0", "-n1"]
    assert payload["placement"]["regions"] == ["us-west-1", "us-east-1"]
    assert payload["ssh"]["nodes"][0]["env"]["MY_TOKEN"] == "****"
    assert fake.calls == []  # pure: no API call


def test_hostile_instance_ids_stay_literal_in_the_node_hook(lam, fake, tmp_path):
    marker = tmp_path / "pwned"
    fake.id_prefix = f"x';touch {marker};'$(touch {marker})`touch {marker}`\"; touch {marker}; \""
    try:
        spec = lam.spec("name: lamhostile\nresources:\n  accelerators: A10\nrun: echo hi\n",
                        self_terminate_after="1s")
        lam.submit(spec)
        [instance_id] = fake.instances
        fake.await_terminated(instance_id, "curl/")
    finally:
        fake.id_prefix = ""
    assert not marker.exists(), "an instance id was executed by a shell"


def test_idempotency_key_finds_the_running_job_on_a_fresh_machine(lam, fake, launch_home):
    spec = lam.spec("name: lamidem\nresources:\n  accelerators: A10\nrun: sleep 300\n")
    job = lam.submit(spec, "--idempotency-key", "ci-run-42")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()  # a CI re-run on another machine: no local history
    again = lam.run("run", str(spec), "--backend", "lambda_cloud", "--idempotency-key", "ci-run-42", check_rc=0)
    assert job in again.stdout and "already exists" in again.stdout
    assert len(_launches(fake)) == 1
    # the adopted job is a full one: its start record was read from node 0, so cancel stops it there
    assert "CANCEL" in lam.run("cancel", job, check_rc=0).stdout
    assert not fake.live()


def test_kept_instances_outlive_the_job(lam, fake, server):
    fake.keep = 1
    spec = lam.spec("name: lamkeep\nresources:\n  accelerators: A10\nrun: echo kept\n", keep_instances=True,
                    self_terminate_after="1s")
    job = lam.submit(spec, "--wait")
    [kept] = fake.live()  # the job ended; its instance was kept, as asked
    assert kept["tags"][0] == {"key": "launch-job-id", "value": job}
    record = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED"
    assert "kept" in lam.run("logs", job, check_rc=0).stdout
    time.sleep(2)  # past self_terminate_after: a kept instance does not give itself back
    assert len(fake.live()) == 1 and not fake.terminated_by("curl/")
    assert not (Path(server.remote_root) / "jobs" / job / "lambda.key").exists()  # nor holds the API key
    lam.run("cancel", job, check_rc=0)  # the job has ended; cancel still gives the kept instance back
    assert not fake.live()
    assert json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)["state"] == "SUCCEEDED"


def test_plan_shows_live_capacity_by_region(lam, fake):
    fake.capacity = {"gpu_1x_a10": ["us-west-1"]}
    spec = lam.spec("name: lamplan\nresources:\n  accelerators: A10\nrun: echo\n",
                    regions=["us-east-1", "us-west-1"])
    rows = json.loads(lam.run("plan", str(spec), "-b", "lambda_cloud", "-o", "json", check_rc=0).stdout)
    (row,) = rows
    assert row["fits"] and row["configured"] and row["instance_type"] == "gpu_1x_a10"
    assert row["capacity"] == {"us-east-1": False, "us-west-1": True}
    text = lam.run("plan", str(spec), "-b", "lambda_cloud", check_rc=0).stdout
    assert "capacity now: us-west-1" in text
    offline = json.loads(lam.run("plan", str(spec), "-b", "lambda_cloud", "--no-live", "-o", "json",
                                 check_rc=0).stdout)
    assert offline[0]["capacity"] is None


def test_list_sync_rebuilds_the_history_of_ended_jobs_from_what_they_left(lam, fake, launch_home, server):
    spec = lam.spec("name: lamsync\nresources:\n  accelerators: A10\nrun: exit 3\n")
    assert lam.run("run", str(spec), "--backend", "lambda_cloud", "--wait").returncode == 1
    ok = lam.submit(lam.spec("name: lamsync2\nresources:\n  accelerators: A10\nrun: echo fine\n"), "--wait")
    _await_forgotten(fake, *fake.instances)  # their end is known from what the jobs left here
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    (launch_home / "config.toml").write_text(
        f'[backends.lambda_cloud]\napi_url = "{fake.base_url}"\nssh_port = {server.port}\n'
        f'ssh_config = "{server.ssh_config}"\nrequest_interval = 0.05\n')
    out = lam.run("list", "--sync", "--backend", "lambda_cloud", "-o", "json", check_rc=0).stdout
    found = {r["name"]: r for r in json.loads(out)}
    assert found["lamsync2"]["id"] == ok and found["lamsync2"]["state"] == "SUCCEEDED"
    assert found["lamsync"]["state"] == "FAILED" and found["lamsync"]["exit_code"] == 3


def test_list_sync_finds_a_running_job_from_its_instances(lam, fake, launch_home, server):
    job = lam.submit(lam.spec("name: lamsyncrun\nresources:\n  accelerators: A10\nrun: sleep 300\n"))
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    (launch_home / "config.toml").write_text(
        f'[backends.lambda_cloud]\napi_url = "{fake.base_url}"\nssh_port = {server.port}\n'
        f'ssh_user = "{server.user}"\nremote_root = "{server.remote_root}"\n'
        f'ssh_config = "{server.ssh_config}"\nrequest_interval = 0.05\ncancel_grace = "2s"\n')
    out = lam.run("list", "--sync", "--backend", "lambda_cloud", "-o", "json", check_rc=0).stdout
    [found] = json.loads(out)
    assert found["id"] == job and found["state"] == "RUNNING"
    assert "CANCEL" in lam.run("cancel", job, check_rc=0).stdout  # adopted whole: cancel reaches the node
    assert not fake.live()


HOSTILE_IDS = ["../../escaped", "/etc/passwd", "a\nb-20260101-000000-abcdef", "nul\x00-20260101-000000-abcdef",
               "j" * 200, "..", ".hidden"]


def test_hostile_job_ids_in_instance_tags_touch_neither_files_nor_the_store(lam, fake, launch_home, server, tmp_path):
    for rank, job_id in enumerate(HOSTILE_IDS):
        fake.add_instance(f"not-launch-{rank}", [{"key": "launch-job-id", "value": job_id},
                                                 {"key": "launch-node-rank", "value": "0"},
                                                 {"key": "launch-idempotency-key", "value": "hostile-key"}])
    for rank in ("../1", "\u00b2"):  # a path, and a "digit" int() refuses
        fake.add_instance("bad-rank", [{"key": "launch-job-id", "value": "fine-20260101-000000-abcdef"},
                                       {"key": "launch-node-rank", "value": rank}])
    fake.keep = len(HOSTILE_IDS) + 2  # not launch's to give back
    before = sorted(p for p in tmp_path.rglob("*"))
    (launch_home / "config.toml").parent.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.lambda_cloud]\napi_url = "{fake.base_url}"\nssh_port = {server.port}\n'
        f'ssh_config = "{server.ssh_config}"\nrequest_interval = 0.05\n')
    synced = lam.run("list", "--sync", "--backend", "lambda_cloud", "-o", "json", check_rc=0)
    assert json.loads(synced.stdout) == [] and "Traceback" not in synced.stderr
    assert "launch never gives" in synced.stderr and "\x00" not in synced.stderr
    # the idempotency key they carry adopts none of them: a job of launch's own runs instead
    spec = lam.spec("name: lamhostileid\nresources:\n  accelerators: A10\nrun: echo fresh\n")
    job = lam.submit(spec, "--idempotency-key", "hostile-key", "--wait")
    assert job.startswith("lamhostileid-")
    created = sorted(set(tmp_path.rglob("*")) - set(before))
    assert all(launch_home in p.parents or p == launch_home or p.suffix == ".yaml" for p in created), created
    assert not (tmp_path / "escaped").exists() and not (launch_home.parent.parent / "escaped").exists()
    assert {r["id"] for r in json.loads(lam.run("list", "-o", "json", check_rc=0).stdout)} == {job}


def test_an_instance_unhealthy_while_booting_is_given_back_at_once(lam, fake):
    fake.unhealthy_on_boot(rank=0)
    spec = lam.spec("name: lamsick\nresources:\n  accelerators: A10\nrun: echo never\n", boot_timeout="10m")
    started = time.monotonic()
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "unhealthy while booting" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30  # not the 10 minutes of boot_timeout, billing all along
    [sick] = fake.instances
    assert sick in fake.terminated_by("python-requests") and not fake.live()
    assert json.loads(lam.run("list", "-o", "json", check_rc=0).stdout) == []


def test_missing_api_key_is_the_one_clear_error(lam, fake):
    spec = lam.spec("name: lamnokey\nresources:\n  accelerators: A10\nrun: echo never\n")
    result = lam.run("run", str(spec), "--backend", "lambda_cloud", env={"LAMBDA_API_KEY": ""})
    assert result.returncode == 4, result.stderr
    assert "no Lambda Cloud API key" in result.stderr and "LAMBDA_API_KEY" in result.stderr
    assert "could not terminate" not in result.stderr and "Traceback" not in result.stderr
    assert fake.calls == []  # nothing was asked, so nothing was launched


OUTAGE_BOUND_S = 10  # the criterion: an unreachable API is reported in seconds, not after nested retries


def _closed_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"


def test_an_unreachable_api_is_reported_by_run_in_seconds(lam, fake):
    spec = lam.spec("name: lamdown\nresources:\n  accelerators: A10\nrun: echo never\n", api_url=_closed_url())
    started = time.monotonic()
    result = lam.run("run", str(spec), "--backend", "lambda_cloud")
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert "cannot reach Lambda Cloud" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < OUTAGE_BOUND_S, f"the outage took {elapsed:.1f}s to report"
    assert fake.calls == []


def test_an_unreachable_api_is_reported_by_status_in_seconds(lam, server):
    """A job submitted while the API answered; then the API goes away (the fake stops, its port closes)."""
    with LambdaFake(api_key=API_KEY, ip="127.0.0.1", boot_s=0.1) as gone:
        gone.request_interval_s, gone.launch_interval_s = 0.05, 0.3
        spec = lam.spec("name: lamgone\nresources:\n  accelerators: A10\nrun: sleep 30\n", api_url=gone.base_url,
                        keep_instances=True)  # kept: no node hook calls the API once it is gone
        job = lam.submit(spec)
    started = time.monotonic()
    result = lam.run("status", job)
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr
    assert "cannot reach Lambda Cloud" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < OUTAGE_BOUND_S, f"the outage took {elapsed:.1f}s to report"


def test_a_terminated_instance_ends_its_processes(lam, fake, server):
    spec = lam.spec("name: lamkill\nresources:\n  accelerators: A10\n  nodes: 2\nrun: sleep 300\n")
    job = lam.submit(spec)
    ranks = {rank: _processes_with(f"LAUNCH_JOB_ID={job}", f"LAUNCH_NODE_RANK={rank}") for rank in (0, 1)}
    assert ranks[0] and ranks[1], "the nodes' processes were not found"
    first = next(i for i, v in fake.instances.items() if v["name"].endswith("-n0"))
    fake.preempt(first)  # node 0's machine goes away, and everything that ran on it
    assert _processes_with(f"LAUNCH_JOB_ID={job}", "LAUNCH_NODE_RANK=0") == []
    assert set(ranks[1]) <= set(_processes_with(f"LAUNCH_JOB_ID={job}", "LAUNCH_NODE_RANK=1"))  # not node 1's
    assert lam.run("wait", job).returncode == 1  # node 1's instance is given back: its processes end too
    deadline = time.monotonic() + 10
    while _processes_with(f"LAUNCH_JOB_ID={job}"):
        assert time.monotonic() < deadline, "a terminated instance's processes are still running"
        time.sleep(0.1)


def _processes_with(*entries: str) -> list[int]:
    """Live pids whose environment holds every one of `entries` (NAME=value)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                continue
            if {e.encode() for e in entries} <= set((proc / "environ").read_bytes().split(b"\0")):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_status_of_an_ended_job_changes_nothing_until_the_runner_finishes_it(lam, fake, launch_home, server,
                                                                             monkeypatch):
    """status is a query: on a job whose node has exited it copies no log, writes no file and gives no
    instance back, however often it is asked; the runner's finish step (run by `launch status`) does
    all three, once."""
    from backends.lambda_cloud import LambdaCloudBackend
    from launcher.backend import JobState
    from launcher.store import Store

    spec = lam.spec("name: lamquery\nresources:\n  accelerators: A10\nrun: echo queried\n")
    job = lam.submit(spec)
    exit_file = Path(server.remote_root) / "jobs" / job / "node-0" / "exit_code"
    deadline = time.monotonic() + 30
    while not exit_file.exists():
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    record = Store.open().get(job)
    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    backend = LambdaCloudBackend(record.spec["backends"]["lambda_cloud"])
    asked_from = len(fake.calls)
    for _ in range(3):
        status = backend.status(record.handle)
        assert (status.state, status.exit_code) == (JobState.SUCCEEDED, 0)
    assert len(fake.live()) == 1
    assert [method for method, *_ in fake.calls[asked_from:]] == ["GET"] * (len(fake.calls) - asked_from)
    assert not (launch_home / "lambda_cloud").exists()
    shown = json.loads(lam.run("status", job, "-o", "json", check_rc=0).stdout)
    assert shown["state"] == "SUCCEEDED" and shown["finished_at"] is not None
    assert not fake.live() and fake.terminated_by("python-requests")
    assert "queried" in (launch_home / "lambda_cloud" / job / "node-0.log").read_text()
    terminations = len(fake.terminated_by("python-requests"))
    lam.run("status", job, check_rc=0)
    lam.run("list", "--refresh", check_rc=0)
    assert len(fake.terminated_by("python-requests")) == terminations  # finished once
