"""The torchrun job the multi-node tests run on each backend: a torch.distributed all-reduce over gloo
between two nodes (env:// rendezvous from torchrun). Prints one line the tests look for."""

import datetime
import os
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))  # env:// from torchrun
rank, world = dist.get_rank(), dist.get_world_size()
value = torch.tensor([rank + 1])
dist.all_reduce(value)
total = int(value.item())
dist.destroy_process_group()
if world != 2 or total != 3:
    print(f"allreduce BAD rank={rank} world={world} sum={total}", flush=True)
    sys.exit(1)
print(f"allreduce ok sum={total} rank={rank} node={os.environ['LAUNCH_NODE_RANK']} "
      f"master={os.environ['MASTER_ADDR']}", flush=True)
