"""How much does `launch` add to an Azure ML submit? The launcher against a plain azure-ai-ml script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/azureml_submit.py [--quick]

One in-process Azure ML fake (tests/fakes/azureml_fake.py: ARM over TLS, code-upload blobs; every body
checked against the SDK's own REST models) serves both sides. One submit of each per round, the order
rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "azureml")` in-process, one Store: load and validate
            the spec, pack the bundle, render, write the store, build the backend (its MLClient), check
            the compute, look the job up by name (a retried submit adopts it), stage the code dir, create.
  baseline: a plain script with one MLClient made before timing (and, second row, one made per job as a
            one-job script or a fresh `launch run` process does), making the same calls per job:
            compute.get, jobs.get (not found), jobs.create_or_update of the same command job. The job
            object and its code dir are built from the launcher's own rendered request before the clock
            starts: rendering and staging are the launcher's cost alone.

Goal (issue 10): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import report
from launch_home import launch_home
from timing import REPO, Row, Section, Stats, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
OURS, PLAIN = "launcher runner.submit", "plain azure-ai-ml MLClient, made once"
PLAIN_FRESH = "plain azure-ai-ml, MLClient made per job"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The SDK prints upload progress even with show_progress=False; keep the report clean."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def measure(quick: bool) -> Section:
    runs, warmups = (10, 2) if quick else (40, 3)
    from fakes.azureml_fake import AzureMLFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-aml-") as tmp_name, AzureMLFake() as fake:
        tmp = Path(tmp_name)
        fake.add_compute("gpu-cluster")
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        (tmp / "src" / "weights.bin").write_bytes(os.urandom(256 * 1024))  # a bundle worth not sending twice
        spec = tmp / "job.yaml"
        spec.write_text("name: bench-aml\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04\ncode: ./src\n"
                        "run: python train.py\nresources:\n  accelerators: T4\nbackends:\n  azureml:\n"
                        f"    subscription_id: {fake.subscription}\n    resource_group: {fake.resource_group}\n"
                        f"    workspace_name: {fake.workspace}\n    compute: gpu-cluster\n    endpoint: {fake.url}\n")
        with launch_home(tmp / "home", REQUESTS_CA_BUNDLE=str(fake.ca_file),
                         LAUNCH_AZURE_ACCESS_TOKEN="bench-token") as store:
            from backends.azureml.backend import _command_job
            from launcher import runner
            from launcher.spec import load_spec

            ml = fake.ml_client(token="bench-token")

            def plain(fresh_client: bool) -> Callable[[], None]:
                _, _, request, _ = runner.prepare(load_spec(spec), "azureml", dry_run=False)
                staging = Path(tempfile.mkdtemp(dir=tmp))
                job = _command_job(request.payload["properties"], request, staging / request.job_id)

                def go() -> None:
                    from azure.core.exceptions import ResourceNotFoundError

                    client = fake.ml_client(token="bench-token") if fresh_client else ml
                    with quiet():
                        client.compute.get("gpu-cluster")
                        try:
                            client.jobs.get(request.job_id)
                            raise AssertionError(f"{request.job_id} exists already")
                        except ResourceNotFoundError:
                            pass
                        client.jobs.create_or_update(job)
                    shutil.rmtree(staging, ignore_errors=True)
                return go

            def ours() -> Callable[[], None]:
                def go() -> None:
                    with quiet():
                        runner.submit(store, load_spec(str(spec)), "azureml")
                return go

            got = interleaved_calls({OURS: ours, PLAIN: lambda: plain(False), PLAIN_FRESH: lambda: plain(True)},
                                    runs, warmups)
            created = len(fake.job_puts)
            # every submit packs the same tree: the bytes of each blob PUT the fake received (the code asset's
            # upload; the job's own files travel in its command), and the bundle's size
            sent = [n for _, n in fake.blob_put_bytes]
            bundle_size = max((len(data) for name, data in fake.blobs.items() if name.endswith(".tar.gz")), default=0)
    if created != 3 * (runs + warmups):
        raise RuntimeError(f"the fake got {created} job PUTs, expected {3 * (runs + warmups)}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("Azure ML submit (local HTTPS fake)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.rows.append(Row("Azure ML submit (local HTTPS fake)", OURS, got[OURS], PLAIN_FRESH, got[PLAIN_FRESH]))
    resent = sum(sent) - bundle_size  # all but the first upload of the (unchanged) bundle
    sec.rows.append(Row("bytes of code sent again by re-submits of the unchanged tree (Azure ML fake)",
                        "blob bytes per re-submit", Stats((resent / max(created - 1, 1),)),
                        "bundle size", Stats((float(bundle_size),)), unit="B", goal="0 bytes of code",
                        met=resent == 0 and bundle_size > 0,
                        note=f"{len(sent)} blob PUTs, {sum(sent)} bytes in all, by {created} submits "
                             "(the code asset is the bundle alone, found again by its content hash)"))
    edit_sent, base_size, overlay_size = _edit_resubmit()
    sec.rows.append(Row("bytes of code sent by the re-submit after a one-line edit of a large tree (Azure ML fake)",
                        "re-submit: blob bytes", Stats((float(edit_sent),)), "the base bundle (already uploaded)",
                        Stats((float(base_size),)), unit="B", goal="< 5%", met=edit_sent < 0.05 * base_size,
                        note=f"a 4 MB tree; its {overlay_size:,} B overlay rides in the job's command"))
    sec.notes.append(f"Azure ML: in-process HTTPS fake; {warmups} warm-up rounds, then {runs} interleaved rounds; "
                     "both sides: compute get, job get (404), create_or_update (the SDK registers the "
                     "environment, looks the code asset up by content hash and uploads it the first time only, "
                     f"PUTs the job); {created} job PUTs checked by the fake "
                     "against the SDK's REST models.")
    return sec


def _edit_resubmit() -> tuple[int, int, int]:
    """Blob bytes the fake receives for `runner.submit` after a one-line edit of a tree whose bundle (4 MB of
    incompressible data) was submitted just before; with the base's and the overlay's packed sizes."""
    import time

    from fakes.azureml_fake import AzureMLFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-aml-edit-") as tmp_name, AzureMLFake() as fake:
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('v1')\n")
        (tmp / "src" / "weights.bin").write_bytes(os.urandom(4 * 1024 * 1024))
        spec = tmp / "job.yaml"
        spec.write_text("name: bench-aml-edit\nimage: img:1\ncode: ./src\nrun: python train.py\nbackends:\n"
                        f"  azureml:\n    subscription_id: {fake.subscription}\n"
                        f"    resource_group: {fake.resource_group}\n    workspace_name: {fake.workspace}\n"
                        f"    endpoint: {fake.url}\n")
        with launch_home(tmp / "home", REQUESTS_CA_BUNDLE=str(fake.ca_file),
                         LAUNCH_AZURE_ACCESS_TOKEN="bench-token") as store:
            from launcher import runner
            from launcher.spec import load_spec

            with quiet():
                first = runner.submit(store, load_spec(str(spec)), "azureml").request
            time.sleep(2.1)  # past the index's racy window: the edit below is seen by its stat alone
            (tmp / "src" / "train.py").write_text("print('v2')\n")
            before = len(fake.blob_put_bytes)
            with quiet():
                edited = runner.submit(store, load_spec(str(spec)), "azureml").request
            sent = sum(n for _, n in fake.blob_put_bytes[before:])
            assert first is not None and edited is not None and first.uploads[0].source is not None
            overlay = edited.payload["properties"]["environmentVariables"].get("LAUNCH_BUNDLE_OVERLAY", "")
            if not overlay:
                raise RuntimeError("the edit was packed as a new base, not an overlay: the row would measure nothing")
            return (sent, first.uploads[0].source.stat().st_size,
                    (tmp / "home" / "bundles" / Path(overlay).name).stat().st_size)


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
