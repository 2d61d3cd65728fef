"""Dry run of one spec per backend, beside the raw import time of each provider SDK.

Shows what lazy loading saves: `launch run --dry-run --backend X` renders the exact
request without importing X's SDK. Bar (issue: Vertex backend): every dry run < 0.5 s.
Run by hand: .venv/bin/python bench/dry_run.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """name: bench
image: img:1
code: ./src
run: python train.py
resources:
  accelerators: {accel}
backends:
  sagemaker: {{region: us-east-1, role_arn: "arn:aws:iam::123456789012:role/Train", bucket: bench-bucket}}
  vertex: {{project: my-project, region: us-central1, staging_bucket: gs://bench-bucket}}
"""
BACKENDS = {"local": "cpu", "sagemaker": "T4:1", "vertex": "L4:1"}
SDK_IMPORTS = {
    "python -c pass (floor)": "pass",
    "import boto3 (sagemaker SDK)": "import boto3; boto3.client",
    "from google.cloud import aiplatform_v1 (vertex SDK)": "from google.cloud import aiplatform_v1",
}
BAR_S = 0.5


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    launch = str(Path(sys.executable).parent / "launch")
    rows = []
    with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
        env = {**os.environ, "LAUNCH_HOME": str(Path(tmp) / "home")}
        (Path(tmp) / "src").mkdir()
        (Path(tmp) / "src" / "train.py").write_text("print('hi')\n")
        for label, code in SDK_IMPORTS.items():
            rows.append((label, timed([sys.executable, "-c", code], env, args.runs), None))
        for backend, accel in BACKENDS.items():
            spec = Path(tmp) / f"{backend}.yaml"
            spec.write_text(SPEC.format(accel=accel))
            argv = [launch, "run", str(spec), "--backend", backend, "--dry-run"]
            rows.append((f"launch run --dry-run --backend {backend}", timed(argv, env, args.runs), BAR_S))
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each\n")
    print("| command | median ms | min-max ms |\n|---|---:|---:|")
    missed = False
    for label, samples, bar in rows:
        print(f"| `{label}` | {statistics.median(samples) * 1000:.0f} | "
              f"{min(samples) * 1000:.0f}-{max(samples) * 1000:.0f} |")
        missed |= bar is not None and statistics.median(samples) >= bar
    print(f"\nbar: every dry run < {BAR_S * 1000:.0f} ms median: {'MISSED' if missed else 'ok'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
