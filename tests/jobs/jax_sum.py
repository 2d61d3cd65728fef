"""The distributed: jax job of tests/test_frameworks_jax.py: jax.distributed from what bootstrap.sh derived,
then a sum over an array sharded across both processes' CPU devices. Prints one line the test looks for."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

if sys.argv[1:] == ["--bare"]:  # where JAX's own cluster detection gives the process count and id (Slurm)
    jax.distributed.initialize(initialization_timeout=60)
else:  # the one line the README gives: JAX reads JAX_COORDINATOR_ADDRESS itself, the other two are passed
    jax.distributed.initialize(num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]), initialization_timeout=60)
rank, world = jax.process_index(), jax.process_count()
mesh = Mesh(np.array(jax.devices()), ("p",))
local = np.full((jax.local_device_count(),), rank + 1, dtype=np.int32)  # this process's shard: rank + 1
array = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("p")), local)
total = int(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(array))
jax.distributed.shutdown()
# every device of process r holds r + 1
print(f"jax sum ok={total == sum(r + 1 for r in range(world)) * jax.local_device_count()} rank={rank} "
      f"world={world} node={os.environ['LAUNCH_NODE_RANK']} coordinator={os.environ['JAX_COORDINATOR_ADDRESS']}",
      flush=True)
sys.exit(0 if world == 2 else 1)
