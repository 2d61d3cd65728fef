"""The `slurm` backend: `render` (settings and the batch script, pure), `states` (Slurm's states),
`shell` (this machine or the login node over ssh) and `backend` (the class). No SDK: sbatch, squeue,
sacct, scontrol and scancel are the API."""

from backends.slurm.backend import SlurmBackend

__all__ = ["SlurmBackend"]
