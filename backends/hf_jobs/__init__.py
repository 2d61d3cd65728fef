"""The `hf_jobs` backend: the spec as Hugging Face Jobs (one per node), through huggingface_hub's HfApi.

`render` (settings and the run_job bodies, no network), `hub` (the token, the client, errors, the code
bundle's upload to a private repo), `states` (stages to launch states) and `backend` (the class). Only
the class is exported: importing this package imports no huggingface_hub (a dry run needs none).
"""

from backends.hf_jobs.backend import HfJobsBackend

__all__ = ["HfJobsBackend"]
