"""`launch plan`, `launch catalog` and `--backend cheapest`: which backends can run a spec,
at what catalog price, and which one is chosen. The CLI runs as a subprocess; readiness
comes from the backends' own checks (credentials files, settings), set up per test."""

from __future__ import annotations

import json
import re

import pytest

from launcher import catalog, plan, prices
from launcher.accelerators import parse
from launcher.errors import UsageError
from launcher.spec import parse_spec

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


IMAGE = "image: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pt:2\n"  # SageMaker and Vertex both need one


def spec_text(accel: str, nodes: int = 1, extra: str = IMAGE) -> str:
    return f"name: p\nrun: python train.py\nresources: {{accelerators: '{accel}', nodes: {nodes}}}\n{extra}"


@pytest.fixture
def clouds(launch_home, tmp_path):
    """Environment in which sagemaker and vertex count as configured (no network is used)."""
    adc = tmp_path / "adc.json"
    adc.write_text("{}")
    creds = tmp_path / "aws-credentials"
    creds.write_text("[default]\naws_access_key_id = x\naws_secret_access_key = y\n")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.sagemaker]\nregion = "us-east-1"\nrole_arn = "{ROLE}"\n'
        '[backends.vertex]\nproject = "my-project"\nregion = "us-central1"\nstaging_bucket = "gs://team-bucket"\n')
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(adc), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
            "AWS_PROFILE": "default"}


def plan_json(cli, spec, env, *args: str) -> dict[str, dict]:
    rows = json.loads(cli("plan", str(spec), "-o", "json", "--no-live", *args, env=env, check_rc=0).stdout)
    return {row["backend"]: row for row in rows}


def test_plan_prices_a_multi_node_spec_from_the_catalog(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("A100-40GB:8", nodes=2, extra=IMAGE + "max_runtime: 10h\n")), clouds)
    vertex = rows["vertex"]
    offer = catalog.find("vertex", parse("A100-40GB:8"))[0]
    assert vertex["fits"] and vertex["configured"]
    assert vertex["instance_type"] == offer.instance_type and vertex["gpus"] == 16
    assert vertex["hourly_usd"] == pytest.approx(offer.ondemand_usd_hr * 2)
    assert vertex["est_cost_usd"] == pytest.approx(offer.ondemand_usd_hr * 2 * 10, abs=0.01)
    assert vertex["price_as_of"] == offer.as_of
    sagemaker = rows["sagemaker"]
    assert sagemaker["fits"] and sagemaker["instance_type"] == "ml.p4d.24xlarge"


def test_plan_uses_spot_prices_for_spot_specs(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("A100-40GB:8", extra=IMAGE + "spot: true\n")), clouds)
    offer = catalog.find("vertex", parse("A100-40GB:8"))[0]
    assert rows["vertex"]["hourly_usd"] == pytest.approx(offer.spot_usd_hr)
    # SageMaker has no spot price in the catalog: the on-demand one is shown, and the row says so
    assert "no spot price" in rows["sagemaker"]["reason"]


def test_plan_says_why_a_backend_cannot_run_the_spec(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("H100:3")), clouds)
    for name in ("sagemaker", "vertex"):
        assert not rows[name]["fits"]
        assert "H100" in rows[name]["reason"], rows[name]
    text = cli("plan", str(write_spec(spec_text("H100:3"))), "--no-live", env=clouds, check_rc=0).stdout
    assert re.search(r"^vertex .*cannot run: .*H100", text, re.M), text


def test_plan_marks_backends_that_are_not_configured(cli, write_spec, launch_home):
    rows = plan_json(cli, write_spec(spec_text("A100-40GB:8")), {"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent"})
    assert rows["vertex"]["fits"] and not rows["vertex"]["configured"]
    assert "project" in rows["vertex"]["config_detail"]


def test_plan_respects_cpu_and_memory_minimums(write_spec):
    spec = parse_spec("name: p\nrun: x\nresources: {accelerators: T4, cpus: 12+, memory_gb: 100+}\n", "s.yaml")
    row = plan.row_for("azureml", spec, live=False)
    assert row.instance_type == "Standard_NC16as_T4_v3"  # the first 1xT4 size with 12+ vCPUs and 100+ GB
    spec = parse_spec("name: p\nrun: x\nresources: {accelerators: T4, cpus: 999+}\n", "s.yaml")
    row = plan.row_for("azureml", spec, live=False)
    assert not row.fits and "999" in row.reason


def test_pinned_instance_type_is_priced(write_spec):
    spec = parse_spec("name: p\nrun: x\nresources: {accelerators: T4}\n"
                      "backends: {vertex: {machine_type: n1-standard-32}}\n", "s.yaml")
    row = plan.row_for("vertex", spec, live=False)
    assert row.instance_type == "n1-standard-32"
    assert row.ondemand_usd_hr == catalog.find("vertex", parse("T4:4"))[0].ondemand_usd_hr


def test_single_node_backends_refuse_multi_node(monkeypatch):
    spec = parse_spec(spec_text("T4:1", nodes=2), "s.yaml")

    class OneNode:
        name = "one"
        from launcher.backend import Capabilities

        capabilities = Capabilities(multi_node=False)

        @classmethod
        def readiness(cls, settings):
            from launcher.backend import Readiness
            return Readiness(True, True)

    monkeypatch.setattr(plan.registry, "backend_class", lambda name: OneNode)
    row = plan.row_for("one", spec, live=False)
    assert not row.fits and "single-node" in row.reason


def test_plan_asks_the_backend_what_it_would_refuse(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("A100-40GB:8", extra="")), clouds)  # no image
    for name in ("sagemaker", "vertex"):
        assert not rows[name]["fits"] and "image" in rows[name]["reason"]


def test_cheapest_picks_the_lowest_configured_price(cli, write_spec, clouds, launch_home):
    spec = write_spec(spec_text("A100-40GB:8"))
    shipped = catalog.find("vertex", parse("A100-40GB:8"))[0]
    # a refreshed SageMaker price below Vertex's wins; azureml/lambda_cloud are not configured here
    prices.write_cache("sagemaker", [prices.Price("ml.p4d.24xlarge", "us-east-1", shipped.ondemand_usd_hr - 1, None,
                                                  "https://example.com/prices", "2026-11-30")], [])
    out = cli("run", str(spec), "--backend", "cheapest", "--dry-run", env=clouds, check_rc=0)
    assert "cheapest configured backend that fits: sagemaker" in out.stderr
    assert json.loads(out.stdout)["backend"] == "sagemaker"
    spot = cli("run", str(spec), "--backend", "cheapest", "--dry-run", "--set", "spot=true", env=clouds, check_rc=0)
    assert json.loads(spot.stdout)["backend"] == "vertex"  # vertex spot $10.35/h beats sagemaker's on-demand


def test_cheapest_with_nothing_usable_says_why(cli, write_spec, clouds):
    result = cli("run", str(write_spec(spec_text("H100:3"))), "--backend", "cheapest", env=clouds, check_rc=2)
    assert "no configured backend with a known price fits" in result.stderr
    assert "vertex:" in result.stderr and "Traceback" not in result.stderr
    assert cli("list", "-o", "json", check_rc=0).stdout.strip() == "[]"


def test_catalog_filters(cli):
    rows = json.loads(cli("catalog", "--backend", "vertex", "--accelerator", "t4:4", "-o", "json", check_rc=0).stdout)
    assert rows and all(r["backend"] == "vertex" and r["accelerator"] == "T4" and r["count"] == 4 for r in rows)
    text = cli("catalog", "-a", "H100:8", check_rc=0).stdout
    assert "ml.p5.48xlarge" in text and "AS OF" in text
    bad = cli("catalog", "-a", "H1000", check_rc=2)
    assert "unknown accelerator" in bad.stderr


def test_failover_order_rejects_empty_and_repeated_names():
    assert plan.failover_order("vertex, sagemaker") == ["vertex", "sagemaker"]
    for text in ("vertex,,sagemaker", "vertex,vertex"):
        with pytest.raises(plan.UsageError):
            plan.failover_order(text)


CLOUDS = ("sagemaker", "vertex", "azureml", "lambda_cloud")


def test_a_spec_that_fits_every_cloud_gets_a_priced_row_from_each(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("A100-40GB:8")), clouds)
    for name in CLOUDS:
        assert rows[name]["fits"], rows[name]
        assert rows[name]["instance_type"] == catalog.choose(name, parse("A100-40GB:8")).instance_type
    assert rows["azureml"]["hourly_usd"] is not None and rows["lambda_cloud"]["hourly_usd"] is not None
    ordered = list(rows)  # fitting and configured first, cheaper first among them
    configured = sorted(("sagemaker", "vertex"), key=lambda n: rows[n]["hourly_usd"])
    assert ordered.index(configured[0]) < ordered.index(configured[1]) < ordered.index("azureml")


def test_a_spec_that_fits_no_cloud_says_so_for_each(cli, write_spec, clouds):
    rows = plan_json(cli, write_spec(spec_text("H100:3")), clouds)
    assert all(not rows[name]["fits"] and rows[name]["reason"] for name in CLOUDS)


@pytest.mark.parametrize("backend, accel, minimums", [
    ("vertex", "T4:1", ""), ("vertex", "L4:1", "cpus: 10+"), ("vertex", "L4:1", "memory_gb: 100+"),
    ("sagemaker", "A10G:1", ""), ("azureml", "T4:1", "cpus: 12+, memory_gb: 100+"),
    ("vertex", "cpu", ""), ("sagemaker", "cpu", ""), ("azureml", "cpu", ""),  # one name for the CPU machine too
])
def test_the_machine_run_starts_is_the_one_plan_prices(backend, accel, minimums, write_spec, launch_home):
    """plan and render pick through one helper (catalog.choose): a dry run never starts a
    different (pricier) machine than `launch plan` showed."""
    import json as _json

    from launcher import runner

    extra = f", {minimums}" if minimums else ""
    settings = {"vertex": "{project: my-project, region: us-central1, staging_bucket: gs://team-bucket}",
                "sagemaker": f"{{region: us-east-1, role_arn: '{ROLE}', bucket: team-bucket}}",
                "azureml": "{subscription_id: 00000000-0000-0000-0000-000000000000, resource_group: rg, "
                           "workspace_name: ws-team}"}[backend]
    path = write_spec(f"name: p\n{IMAGE}run: x\nresources: {{accelerators: '{accel}'{extra}}}\n"
                      f"backends: {{{backend}: {settings}}}\n")
    from launcher.spec import load_spec

    spec = load_spec(path)
    planned = plan.row_for(backend, spec, live=False).instance_type
    _, _, request, _ = runner.prepare(load_spec(path), backend, dry_run=True)
    assert planned and planned in _json.dumps(request.payload)


def test_plan_and_run_both_refuse_what_no_instance_meets(cli, write_spec, clouds):
    spec = write_spec(spec_text("A10G:1", extra=IMAGE + "resources: {accelerators: A10G, cpus: 14+}\n")
                      .replace("resources: {accelerators: 'A10G:1', nodes: 1}\n", ""))
    row = plan_json(cli, spec, clouds)["sagemaker"]
    assert not row["fits"] and "14+ vCPUs" in row["reason"]
    result = cli("run", str(spec), "--backend", "sagemaker", "--dry-run", env=clouds, check_rc=2)
    assert "resources" in result.stderr and "14+ vCPUs" in result.stderr


@pytest.fixture
def gpus_here(tmp_path):
    """PATH with an `nvidia-smi` that reports N GPUs: the local backend counts them with `nvidia-smi -L`."""
    def make(count: int) -> dict[str, str]:
        bin_dir = tmp_path / f"bin-{count}"
        bin_dir.mkdir()
        lines = "".join(f"echo 'GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i})'\n" for i in range(count))
        (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{lines}")
        (bin_dir / "nvidia-smi").chmod(0o755)
        import os
        return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return make


def test_local_fits_only_what_this_machine_has(cli, write_spec, launch_home, gpus_here):
    none = gpus_here(0)
    local = plan_json(cli, write_spec(spec_text("H100:8", nodes=2)), none)["local"]
    assert not local["fits"] and "this machine has no NVIDIA GPUs" in local["reason"] and "16 GPUs" in local["reason"]
    text = cli("plan", str(write_spec(spec_text("H100:8", nodes=2))), "--no-live", "-b", "local", env=none,
               check_rc=0).stdout.splitlines()[1]
    assert text.split()[:8] == ["local", "-", "-", "-", "-", "-", "no", "cannot"]  # not READY for what it cannot run
    two = gpus_here(2)
    assert not plan_json(cli, write_spec(spec_text("H100:2", nodes=2)), two)["local"]["fits"]  # 4 GPUs asked
    fits = plan_json(cli, write_spec(spec_text("H100:1", nodes=2)), two)["local"]
    assert fits["fits"] and fits["gpus"] == 2 and fits["instance_type"] == "this machine"
    assert "2 NVIDIA GPU(s)" in fits["reason"] and "2 nodes share this machine" in fits["reason"]
    cpu = plan_json(cli, write_spec(spec_text("cpu")), none)["local"]
    assert cpu["fits"] and "no NVIDIA GPU" in cpu["reason"]


@pytest.mark.parametrize(("text", "example"), [("a,,b", "a,b"), ("gpu-box,", "first,second")])
def test_an_empty_failover_name_is_shown_with_the_users_own_names(text, example):
    with pytest.raises(UsageError) as caught:
        plan.failover_order(text)
    assert caught.value.message == f"--backend {text!r} has an empty name"
    assert caught.value.hint == f"write names separated by commas: {example}"


def test_plan_names_the_cheapest_ready_backend(cli, write_spec, clouds):
    spec = write_spec(spec_text("A100-40GB:8", nodes=2, extra=IMAGE + "max_runtime: 10h\n"))
    rows = json.loads(cli("plan", str(spec), "-o", "json", "--no-live", env=clouds, check_rc=0).stdout)
    ready = [r for r in rows if r["fits"] and r["configured"] and r["hourly_usd"] is not None]
    best = min(ready, key=lambda r: r["hourly_usd"])
    assert [r["backend"] for r in rows if r["answer"] == "cheapest ready"] == [best["backend"]]
    text = cli("plan", str(spec), "--no-live", env=clouds, check_rc=0).stdout
    assert (f"cheapest ready: {best['backend']} ({best['instance_type']} x 2) at ${best['hourly_usd']:,.2f}/h, "
            f"${best['est_cost_usd']:,.2f} for 10h") in text
