"""The `azureml` backend: `render` builds the ARM body with no SDK; `backend` submits it through azure-ai-ml.

Only the class is exported: importing this package (every dry run and `launch list` with Azure jobs
in the store does) must not import azure-ai-ml, and backend.py imports it lazily.
"""

from backends.azureml.backend import AzureMLBackend

__all__ = ["AzureMLBackend"]
