"""Dry run of one spec per backend, beside the raw import time of that backend's provider SDK.

Shows what lazy loading saves: `launch run --dry-run --backend X` renders the exact request
without importing X's SDK, so it should cost less than merely importing the SDK would.
Goal (issue 27): every dry run <= 0.25 s median (issue 10 asked < 0.5 s).

The spec has settings for every backend. Each section is checked by its backend's model; one that
passed before is remembered (launcher/settings_cache.py), so from the second run of a spec on, only the
backend it runs on is imported. The warm-up rounds are such first runs; one more row times a first run
every time (the remembered checks deleted before each), for what a spec's first dry run costs.

Run by hand (not in CI): .venv/bin/python bench/dry_run.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import report
from timing import Case, Row, Section, clean_env, interleaved, launch_script

SPEC = """name: bench
image: img:1
code: ./src
run: python train.py --epochs 3
env: {WANDB_PROJECT: demo}
secrets: [WANDB_API_KEY]
resources:
  accelerators: T4:1
backends:
  sagemaker: {region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/Train", bucket: bench-bucket}
  vertex: {project: my-project, region: us-central1, staging_bucket: gs://bench-bucket}
  azureml: {subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, workspace_name: ws-bench,
            compute: gpu-cluster}
  lambda_cloud: {ssh_key_name: bench-key}
  hf_jobs: {namespace: bench-org}
  pai_dlc: {region: cn-hangzhou, workspace_id: ws-bench, bucket: bench-bucket}
  kubernetes: {namespace: ml, gpu_label: nvidia}
  tione: {region: ap-guangzhou, cos_bucket: bench-1250000000}
  aihc: {resource_pool_id: cce-bench, queue: default, bos_bucket: bench-bucket, resource_name: baidu.com/a10_24g_cgpu}
  ssh: {hosts: [gpu-01.internal]}
  slurm: {login: me@login.cluster, partition: gpu}
"""
# the backends that fine-tune hosted models take a finetune: spec instead (they refuse a container one)
FT_SPEC = """name: bench-ft
finetune:
  base_model: gpt-4o-mini-2024-07-18
  training_file: train.jsonl
backends:
  azure_openai: {endpoint: "https://bench.openai.azure.com"}
"""
FINETUNE = {"azure_openai", "openai"}
# backend -> (what its SDK import is called, the statement); local, ssh and slurm use no SDK: the floor
SDKS = {
    "local": ("python -c pass", "pass"),
    "ssh": ("python -c pass", "pass"),
    "sagemaker": ("import boto3", "import boto3"),
    "vertex": ("from google.cloud import aiplatform_v1", "from google.cloud import aiplatform_v1"),
    "azureml": ("import azure.ai.ml", "import azure.ai.ml"),
    "lambda_cloud": ("import requests", "import requests"),
    "hf_jobs": ("import huggingface_hub", "from huggingface_hub import HfApi"),
    "pai_dlc": ("import alibabacloud_pai_dlc20201203.client",
                "import alibabacloud_pai_dlc20201203.client"),
    "slurm": ("python -c pass", "pass"),
    "kubernetes": ("from kubernetes import client, config", "from kubernetes import client, config"),
    "tione": ("import tencentcloud.tione.v20211111.tione_client",
              "import tencentcloud.tione.v20211111.tione_client"),
    "aihc": ("import baidubce.services.aihc.aihc_client", "import baidubce.services.aihc.aihc_client"),
    "azure_openai": ("import openai", "import openai"),
    "openai": ("import openai", "import openai"),
}
GOAL_S = 0.25
COLD = "launch run --dry-run --backend sagemaker, first run of the spec"


def loadable(launch: str, env: dict[str, str]) -> set[str]:
    """The backends `launch backends` lists (an entry point that fails to load is not listed)."""
    done = subprocess.run([launch, "backends", "-o", "json"], env=env, capture_output=True, text=True, timeout=120)
    return {row["name"] for row in json.loads(done.stdout)} if done.returncode == 0 else set()


def measure(quick: bool) -> Section:
    runs, warmups = (3, 1) if quick else (10, 2)
    launch = launch_script()
    sec = Section("Dry run per backend vs importing its SDK")
    with tempfile.TemporaryDirectory(prefix="launch-bench-dry-") as tmp:
        env = clean_env(LAUNCH_HOME=str(Path(tmp) / "home"), WANDB_API_KEY="secret-value")
        (Path(tmp) / "src").mkdir()
        (Path(tmp) / "src" / "train.py").write_text("print('hi')\n")
        spec = Path(tmp) / "job.yaml"
        spec.write_text(SPEC)
        ft_spec = Path(tmp) / "finetune.yaml"
        ft_spec.write_text(FT_SPEC)
        (Path(tmp) / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, '
                                               '{"role": "assistant", "content": "hello"}]}\n')
        present = loadable(launch, env)
        cases: list[Case] = []
        for label, statement in dict(SDKS.values()).items():
            cases.append(Case(label, [sys.executable, "-c", statement], env, cwd=tmp))
        for backend in SDKS:
            if backend in present:
                cases.append(Case(f"launch run --dry-run --backend {backend}",
                                  [launch, "run", str(ft_spec if backend in FINETUNE else spec), "--backend",
                                   backend, "--dry-run"], env, cwd=tmp))
        if "sagemaker" in present:  # nothing remembered: every section checked by its own backend
            cold = {**env, "LAUNCH_HOME": str(Path(tmp) / "home-cold")}  # its own: the others' stays warm
            forget = f"rm -f {Path(tmp) / 'home-cold' / 'settings-checks.json'} && exec \"$0\" \"$@\""
            cases.append(Case(COLD, ["sh", "-c", forget, launch, "run", str(spec), "--backend", "sagemaker",
                                     "--dry-run"], cold, cwd=tmp))
        got = interleaved(cases, runs, warmups)
    for backend, (sdk, _) in SDKS.items():
        ours = f"launch run --dry-run --backend {backend}"
        if backend not in present:
            sec.rows.append(Row(f"dry run, {backend}", ours, None, sdk, got[sdk], unit="ms", goal=f"<= {GOAL_S} s",
                                note="not available: `launch backends` does not list it"))
            continue
        sec.rows.append(Row(f"dry run, {backend}", ours, got[ours], sdk, got[sdk], unit="ms", goal=f"<= {GOAL_S} s",
                            met=got[ours].median <= GOAL_S))
    if COLD in got:
        sec.rows.append(Row("dry run, sagemaker, first run of the spec", COLD, got[COLD], "import boto3",
                            got["import boto3"], unit="ms", note="every backend's section checked by its model"))
    sec.notes.append(f"one spec with settings for every backend (T4:1, a code dir, a secret); {warmups} warm-up "
                     f"rounds, then {runs} interleaved rounds. The baseline is only the SDK's import in a fresh "
                     "interpreter: a script using the SDK pays it before its first call. A ratio below 1 is what "
                     "lazy loading saves.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer runs, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
