"""The `sagemaker` backend (entry point `backends.sagemaker:SageMakerBackend`).

Kept to the one export: `launch list` and dry runs import this package, so nothing here may pull in boto3.
render.py builds the request (pure); backend.py holds the class; clients.py, storage.py, logs.py, errors.py
and states.py hold the AWS clients, S3, CloudWatch, error translation and state table it uses.
"""

from backends.sagemaker.backend import SageMakerBackend

__all__ = ["SageMakerBackend"]
