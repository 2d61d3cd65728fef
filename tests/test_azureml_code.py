"""Azure ML's code asset is the bundle alone, so a re-submit of an unchanged tree sends no code: the
real azure-ai-ml MLClient against the HTTPS fake (tests/fakes/azureml_fake.py), bytes counted where
the blob PUTs arrive. The SDK names the job's code an anonymous asset and lists code versions by its
content hash before uploading; the job's own files ride in the command, so a new command (a sweep,
an edited `run:`) keeps the same asset. Each job then runs, from what the fake holds, to the same
result; and an interrupted submit leaves no asset a later one trusts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fakes.azureml_fake import AzureMLFake

from backends.azureml import AzureMLBackend
from launcher.bundle import pack
from launcher.errors import LaunchError
from launcher.spec import parse_spec


@pytest.fixture(scope="module")
def server():
    with AzureMLFake() as fake:
        yield fake


@pytest.fixture
def azure(server, monkeypatch, tmp_path):
    server.reset()
    for name, value in server.client_env("token-from-env").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")  # the SDK sets it process-wide: restored after
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print(open('data.txt').read().strip())\n")
    (tmp_path / "src" / "data.txt").write_text("weights v1\n")
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(300_000))  # stored, not compressed: sizes differ
    return server


class Submitter:
    """Packs the tree and submits one job per call, as `launch run` does: a new job id every time."""

    def __init__(self, fake: AzureMLFake, tmp: Path) -> None:
        self.fake, self.tmp, self.count = fake, tmp, 0
        self.backend = AzureMLBackend({"subscription_id": fake.subscription, "resource_group": fake.resource_group,
                                       "workspace_name": fake.workspace, "endpoint": fake.url})

    def submit(self, run: str = "cat data.txt") -> tuple[str, int, int]:
        """(job name, bundle bytes, blob bytes the fake received for this submit)"""
        self.count += 1
        spec = parse_spec(f"name: demo\nimage: img:1\ncode: ./src\nrun: {run}\n", "spec.yaml", base_dir=self.tmp)
        bundle = pack(self.tmp / "src", self.tmp / "bundles")[0]
        job = f"demo-20260101-00000{self.count}-abcdef"
        before = len(self.fake.blob_put_bytes)
        self.backend.submit(self.backend.render(spec, job, bundle, {}))
        return job, bundle.size, sum(n for _, n in self.fake.blob_put_bytes[before:])


def node_output(fake: AzureMLFake, job: str, where: Path) -> str:
    """Run the job's command as its node would: in a working directory holding the code asset's files."""
    command, env = fake.working_directory(job, where)
    result = subprocess.run(["sh", "-c", command], cwd=where, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], **env, "LAUNCH_WORKDIR": str(where / "work")})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_unchanged_tree_is_uploaded_once_and_every_job_runs_from_it(azure, tmp_path):
    submitter = Submitter(azure, tmp_path)
    first, size, sent = submitter.submit()
    assert sent == size > 300_000  # the first submit uploads the bundle, and nothing else of the job
    again, _, resent = submitter.submit()
    sweep, _, swept = submitter.submit(run="cat data.txt; echo lr=0.1")  # a new command, the same tree
    assert resent == 0 and swept == 0
    code_ids = {azure.jobs[j]["properties"]["codeId"] for j in (first, again, sweep)}
    assert len(code_ids) == 1 and len(azure.code_puts) == 1 and len(azure.jobs) == 3
    assert node_output(azure, first, tmp_path / "n1") == node_output(azure, again, tmp_path / "n2") == "weights v1\n"
    assert node_output(azure, sweep, tmp_path / "n3") == "weights v1\nlr=0.1\n"


def test_a_changed_tree_uploads_again_and_its_job_sees_the_change(azure, tmp_path):
    submitter = Submitter(azure, tmp_path)
    first, _, _ = submitter.submit()
    (tmp_path / "src" / "data.txt").write_text("weights v2\n")
    changed, size, sent = submitter.submit()
    assert sent == size and len(azure.code_puts) == 2
    assert azure.jobs[first]["properties"]["codeId"] != azure.jobs[changed]["properties"]["codeId"]
    assert node_output(azure, first, tmp_path / "n1") == "weights v1\n"
    assert node_output(azure, changed, tmp_path / "n2") == "weights v2\n"


@pytest.mark.parametrize("interrupted", ["blob upload", "code registration"])
def test_an_interrupted_submit_leaves_no_asset_that_a_later_one_trusts(azure, tmp_path, interrupted):
    """Refused mid-way (a blob PUT, or the code version PUT after every blob is up), the submit fails and
    registers nothing; the next one finds no asset of that hash, uploads the whole bundle and runs."""
    if interrupted == "blob upload":
        azure.fail_next(r"\.tar\.gz$", 403, method="PUT", code="AuthorizationFailure")
    else:
        azure.fail_next(r"/codes/[^/]+/versions/1$", 400, method="PUT", code="UserError", times=20)  # the SDK retries
    submitter = Submitter(azure, tmp_path)
    with pytest.raises(LaunchError):
        submitter.submit()
    assert azure.codes == {} and azure.jobs == {}
    azure.fail_next(".", times=0)  # the fault is over
    job, size, sent = submitter.submit()
    assert sent == size and len(azure.codes) == 1
    assert node_output(azure, job, tmp_path / "node") == "weights v1\n"


def test_an_edit_to_a_large_tree_sends_only_its_overlay_and_the_node_applies_it(azure, tmp_path):
    """Past 1 MiB packed, an edit is packed as an overlay on the cached base (launcher/bundle.py). The base stays
    the job's code asset (the same content hash: found, not uploaded again); the overlay, a few KiB, rides in
    the job's command as base64 that the node decodes. The node unpacks the base, applies the overlay and runs
    the edited tree."""
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(1_300_000))
    submitter = Submitter(azure, tmp_path)
    first, base_size, sent = submitter.submit()
    assert sent == base_size > 1_300_000
    (tmp_path / "src" / "data.txt").write_text("weights v2\n")
    bundle = pack(tmp_path / "src", tmp_path / "bundles")[0]
    assert bundle.overlay is not None  # the premise: this edit is an overlay, not a fresh base
    changed, _, sent = submitter.submit()
    assert sent == 0  # no blob: the base is the asset the first job made, the overlay is in the command
    props = [azure.jobs[job]["properties"] for job in (first, changed)]
    assert props[0]["codeId"] == props[1]["codeId"] and len(azure.code_puts) == 1
    assert props[1]["environmentVariables"]["LAUNCH_BUNDLE_OVERLAY"] == f".launch-job/{bundle.overlay.name}"
    assert node_output(azure, first, tmp_path / "n1") == "weights v1\n"
    assert node_output(azure, changed, tmp_path / "n2") == "weights v2\n"


def test_an_overlay_too_large_for_the_command_goes_into_the_asset_with_the_base(azure, tmp_path, monkeypatch):
    """An overlay that would take the command past render.COMMAND_BUDGET joins the base in a new code asset: the
    whole bundle is sent once more, and the node applies it the same way."""
    from backends.azureml import render

    monkeypatch.setattr(render, "COMMAND_BUDGET", 1000)  # under the command without the overlay (~17 KB)
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(1_300_000))
    submitter = Submitter(azure, tmp_path)
    first, _, _ = submitter.submit()
    (tmp_path / "src" / "data.txt").write_text("weights v2\n")
    bundle = pack(tmp_path / "src", tmp_path / "bundles")[0]
    assert bundle.overlay is not None
    changed, _, sent = submitter.submit()
    assert sent == bundle.total_size
    assert azure.jobs[first]["properties"]["codeId"] != azure.jobs[changed]["properties"]["codeId"]
    assert "base64 -d" not in azure.jobs[changed]["properties"]["command"]
    assert node_output(azure, changed, tmp_path / "n2") == "weights v2\n"
