"""How much does `launch` add to a Kubernetes submit? The launcher against a plain `kubernetes`-client script.

Run by hand (not in CI): .venv/bin/python bench/kubernetes_submit.py [--quick]

One in-process fake API server (tests/fakes/kube_fake.py: every object validated in strict mode against
Kubernetes' schema and parsed by the client's models) serves both sides through one kubeconfig; its
controllers are idle (a tick of an hour) so that only the API calls are measured. The same spec (2 nodes,
a small code dir, a secret) is submitted two ways, one submit of each per round, the order rotating
(bench/timing.py):
  ours:     `launcher.runner.submit(store, load_spec(spec), "kubernetes")` in-process, one Store: load and
            validate the spec, pack the bundle, render, write the store, build the client from the kubeconfig,
            create the Job suspended, then its Service, ConfigMap (the bundle as binaryData) and Secret owned
            by it, and resume it.
  baseline: a plain script with an ApiClient made once, making the same calls per job with the launcher's
            own rendered manifests (a fresh name each time), built before the clock starts: rendering is the
            launcher's cost alone.

Goal (issue 16): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from launch_home import launch_home
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
SPEC = """\
name: bench-k8s
image: pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
code: ./src
run: python train.py
secrets: [WANDB_API_KEY]
resources:
  accelerators: H100:8
  nodes: 2
"""
OURS, PLAIN = "launcher runner.submit", "plain kubernetes client script, ApiClient made once"


class Plain:
    """The script-equivalent: the launcher's rendered manifests, replayed with the client's own APIs."""

    def __init__(self, request: Any, kubeconfig: Path) -> None:
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.batch, self.core = client.BatchV1Api(self.api), client.CoreV1Api(self.api)
        self.template_name = request.payload["name"]
        self.template = json.dumps(request.payload["manifests"])
        self.bundle = base64.b64encode(request.uploads[0].source.read_bytes()).decode()
        self.count = 0

    def job(self) -> Callable[[], None]:
        self.count += 1
        name = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        job, *owned = json.loads(self.template.replace(self.template_name, name))
        owned[1]["binaryData"] = {"bundle.tar.gz": self.bundle}
        create = {"Service": self.core.create_namespaced_service, "ConfigMap": self.core.create_namespaced_config_map,
                  "Secret": self.core.create_namespaced_secret}

        def go() -> None:
            made = self.batch.create_namespaced_job("default", job)
            owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": made.metadata.uid,
                     "blockOwnerDeletion": True}
            for manifest in owned:
                manifest["metadata"]["ownerReferences"] = [owner]
                create[manifest["kind"]]("default", manifest)
            self.batch.patch_namespaced_job(name, "default", {"spec": {"suspend": False}})

        return go


def measure(quick: bool) -> Section:
    runs, warmups = (15, 3) if quick else (60, 5)
    from fakes.kube_fake import KubeFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-k8s-") as tmp_name:
        tmp = Path(tmp_name)
        with KubeFake(tmp / "fake", mode="phases", tick_s=3600) as fake:
            kubeconfig = fake.kubeconfig(tmp / "kubeconfig")
            (tmp / "src").mkdir()
            (tmp / "src" / "train.py").write_text("print('hi')\n")
            spec = tmp / "job.yaml"
            spec.write_text(SPEC)
            home = tmp / "home"
            home.mkdir()
            with launch_home(home, KUBECONFIG=str(kubeconfig), WANDB_API_KEY="bench-secret") as store:
                from launcher import runner
                from launcher.spec import load_spec

                _, _, request, _ = runner.prepare(load_spec(spec), "kubernetes", dry_run=False)
                plain = Plain(request, kubeconfig)

                def ours() -> Callable[[], None]:
                    return lambda: runner.submit(store, load_spec(str(spec)), "kubernetes")

                got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
                jobs = fake.objects("jobs")
            rejected = list(fake.rejected)
    if len(jobs) != 2 * (runs + warmups) or rejected:
        raise RuntimeError(f"the fake holds {len(jobs)} Jobs (expected {2 * (runs + warmups)}); refused: {rejected}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("Kubernetes submit (local API server fake)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"Kubernetes: in-process fake over http; {warmups} warm-up rounds, then {runs} interleaved "
                     "rounds; both sides make the same five calls (create Job, Service, ConfigMap, Secret; patch); "
                     f"the fake holds {len(jobs)} Jobs, every object validated strictly against Kubernetes' schema.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
