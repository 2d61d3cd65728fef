"""The distributed: paddle job of tests/test_frameworks_paddle.py: an all-reduce over paddle's CPU collectives
in the environment paddle.distributed.launch gives each worker. Prints one line the test looks for."""

import os
import sys

import paddle
import paddle.distributed as dist

dist.init_parallel_env()  # paddle.distributed.launch's environment: nothing from the launcher
rank, world = dist.get_rank(), dist.get_world_size()
value = paddle.to_tensor([rank + 1])
dist.all_reduce(value)
total = int(value.numpy()[0])
print(f"paddle sum={total} rank={rank} world={world} node={os.environ['LAUNCH_NODE_RANK']}", flush=True)
sys.exit(0 if (world, total) == (2, 3) else 1)
