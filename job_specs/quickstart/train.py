"""A small, real training run: logistic regression by gradient descent, pure Python.

It needs no downloads and no GPU, so `launch run job_specs/quickstart.yaml` shows the
whole path (bundle, bootstrap, logs, exit code) on any machine in a few seconds.
"""

import argparse
import json
import math
import os
import random


def make_data(n: int, seed: int) -> list[tuple[list[float], int]]:
    """Two Gaussian blobs, linearly separable enough to learn."""
    rng = random.Random(seed)
    data = []
    for i in range(n):
        label = i % 2
        centre = 1.5 if label else -1.5
        data.append(([rng.gauss(centre, 1.0), rng.gauss(centre, 1.0)], label))
    return data


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    rank = int(os.environ.get("LAUNCH_NODE_RANK", "0"))
    data = make_data(2000, seed=rank)
    w, b = [0.0, 0.0], 0.0
    for epoch in range(1, args.epochs + 1):
        loss, correct = 0.0, 0
        gw, gb = [0.0, 0.0], 0.0
        for x, y in data:
            p = sigmoid(w[0] * x[0] + w[1] * x[1] + b)
            loss -= y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12)
            correct += int((p >= 0.5) == bool(y))
            gw[0] += (p - y) * x[0]
            gw[1] += (p - y) * x[1]
            gb += p - y
        n = len(data)
        w = [w[0] - args.lr * gw[0] / n, w[1] - args.lr * gw[1] / n]
        b -= args.lr * gb / n
        print(f"epoch {epoch:3d}  loss {loss / n:.4f}  accuracy {correct / n:.3f}", flush=True)

    out_dir = os.environ.get("LAUNCH_OUTPUT_DIR", "outputs")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"model-node{rank}.json"), "w") as f:
        json.dump({"w": w, "b": b, "accuracy": correct / n}, f)
    print(f"saved model to {out_dir}; final accuracy {correct / n:.3f}")
    if correct / n < 0.8:
        raise SystemExit("accuracy below 0.8: training did not converge")


if __name__ == "__main__":
    main()
