"""Packing a code tree, against `tar czf` of the same files; and what an unchanged re-submit uploads.

Run by hand (not in CI): .venv/bin/python bench/bundling.py [--quick]

The tree is generated once per run, deterministic (seeded): 10,000 files, 200 MB (--quick: 1,000 files,
20 MB), in nested directories, sizes spread from a few hundred bytes to a few MB. Four files in five
are text (source, configs, CSV: slices of a word pool, gzip takes them to about a third) and one in
five is random bytes (checkpoints, images: incompressible), roughly what a training repo holds.

- ours: `launcher.bundle.pack(tree, cache)` in a fresh interpreter (sorted walk, normalised tar
  headers, gzip level 6, sha256, all in one pass). baseline: `tar czf out.tgz -C tree .` (GNU tar
  piping to gzip -6: two processes). Same files, same disk, interleaved runs.
- re-submit: two `runner.submit` of the same spec to SageMaker on in-process moto (tests/fakes), counting
  the bytes of every S3 PUT body botocore sends. The second submit finds the content-addressed bundle
  already there (HEAD) and sends only the job's own small scripts.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
from timing import REPO, Case, Row, Section, Stats, clean_env, interleaved

GOAL_SPEED = 0.8
BUCKET = "bench-bucket"
VOCABULARY = ("import torch numpy def class return self model loss optimizer step epoch batch config lr train "
              "eval data loader tensor cuda device print if else for in range len float int str list dict none "
              "true false 0.001 32 64 128 256 1e-4 # ------ = ( ) : , . [ ] { }")
WORDS = (*VOCABULARY.split(" "), "\n", "\n", "    ")


def make_tree(root: Path, files: int, total_bytes: int, seed: int = 10) -> tuple[int, int]:
    """Write the tree; returns (files, bytes) written."""
    rng = random.Random(seed)
    pool = " ".join(rng.choice(WORDS) for _ in range(400_000)).encode()  # ~2 MB of "source"
    weights = [rng.lognormvariate(0, 1.6) for _ in range(files)]
    scale = total_bytes / sum(weights)
    written = 0
    for i, weight in enumerate(weights):
        size = max(64, int(weight * scale))
        rel = Path(f"pkg{i % 20:02d}") / f"mod{(i // 20) % 25:02d}" / f"file{i:05d}{'.bin' if i % 5 == 4 else '.py'}"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 5 == 4:
            data = rng.randbytes(size)
        else:
            data = b""
            while len(data) < size:
                start = rng.randrange(len(pool) - 4096)
                data += f"# {rel} {len(data)}\n".encode() + pool[start:start + rng.randrange(512, 4096)]
            data = data[:size]
        path.write_bytes(data)
        written += len(data)
    return files, written


def resubmit_bytes(tree: Path, tmp: Path) -> tuple[list[int], list[float], int]:
    """S3 PUT bytes and wall seconds of two submits of the unchanged tree, and the bundle's size."""
    sys.path[:0] = [str(REPO), str(REPO / "tests")]
    from botocore.httpsession import URLLib3Session
    from fakes.moto_sagemaker import MotoSageMaker

    spec = tmp / "job.yaml"
    spec.write_text(f"name: bundle-bench\nimage: img:1\ncode: {tree}\nrun: python train.py\n"
                    "resources:\n  accelerators: T4:1\nbackends:\n  sagemaker:\n    region: us-east-1\n"
                    f"    role_arn: arn:aws:iam::123456789012:role/Train\n    bucket: {BUCKET}\n")
    sent = [0]
    original = URLLib3Session.send

    def counting(self: Any, request: Any) -> Any:
        if request.method in ("PUT", "POST") and "X-Amz-Target" not in request.headers:  # S3, not SageMaker
            sent[0] += int(request.headers.get("Content-Length") or 0)
        return original(self, request)

    with MotoSageMaker() as server:
        os.environ.update(server.env())
        os.environ["LAUNCH_HOME"] = str(tmp / "home")
        server.client("s3").create_bucket(Bucket=BUCKET)
        from launcher import config, runner
        from launcher.spec import load_spec
        from launcher.store import Store

        config.load.cache_clear()
        store = Store.open(config.ensure_home())
        URLLib3Session.send = counting  # type: ignore[method-assign]
        put, took = [], []
        try:
            for _ in range(2):
                sent[0] = 0
                start = time.perf_counter()
                runner.submit(store, load_spec(str(spec)), "sagemaker")
                took.append(time.perf_counter() - start)
                put.append(sent[0])
        finally:
            URLLib3Session.send = original  # type: ignore[method-assign]
            store.close()
        bundles = [o["Size"] for o in server.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
                   if "/bundles/" in o["Key"]]
    return put, took, sum(bundles)


def measure(quick: bool) -> Section:
    files, total, runs = (1_000, 20_000_000, 2) if quick else (10_000, 200_000_000, 3)
    sec = Section(f"Bundling a {total // 1_000_000} MB / {files:,}-file tree")
    with tempfile.TemporaryDirectory(prefix="launch-bench-bundle-") as tmp_name:
        tmp = Path(tmp_name)
        tree = tmp / "tree"
        start = time.perf_counter()
        count, size = make_tree(tree, files, total)
        made = time.perf_counter() - start
        env = clean_env()
        pack = ("import sys; from pathlib import Path; from launcher.bundle import pack; "
                "b, _ = pack(Path(sys.argv[1]), Path(sys.argv[2])); b.path.unlink()")
        ours, theirs = "bundle.pack (launch)", "tar czf"
        got = interleaved([Case(ours, [sys.executable, "-c", pack, str(tree), str(tmp / "cache")], env),
                           Case(theirs, ["tar", "czf", str(tmp / "out.tgz"), "-C", str(tree), "."], env)],
                          runs, warmups=1, rss_runs=1)
        speed = got[theirs].median / got[ours].median
        sec.rows.append(Row("pack the tree", ours, got[ours], theirs, got[theirs], unit="s",
                            goal=f"speed >= {GOAL_SPEED}x tar czf (time ratio <= {1 / GOAL_SPEED:.2f}x)",
                            met=speed >= GOAL_SPEED, note=f"speed {speed:.2f}x tar's"))
        tgz = (tmp / "out.tgz").stat().st_size
        put, took, bundle_size = resubmit_bytes(tree, tmp)
        sec.rows.append(Row("bytes sent by the second submit of the unchanged tree (SageMaker, moto)",
                            "2nd runner.submit: S3 PUT bytes", Stats((float(put[1]),)),
                            "1st runner.submit: S3 PUT bytes", Stats((float(put[0]),)), unit="B",
                            goal="0 bytes of code", met=put[1] < bundle_size and put[1] < 64 * 1024,
                            note=f"the bundle is {bundle_size:,} B; what the 2nd sends is the job's own scripts"))
        sec.rows.append(Row("wall time of those two submits", "2nd submit (unchanged tree)", Stats((took[1],)),
                            "1st submit (uploads the bundle)", Stats((took[0],)), unit="s",
                            note="the 2nd still packs the tree to learn its digest"))
    sec.notes.append(f"tree: {count:,} files, {size / 1e6:.0f} MB (generated in {made:.1f} s); tar czf gives "
                     f"{tgz / 1e6:.0f} MB; pack/tar: 1 warm-up, then {runs} interleaved runs (page cache warm), "
                     "peak RSS from one more run")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "a 20 MB / 1,000-file tree, fewer runs")


if __name__ == "__main__":
    sys.exit(main())
