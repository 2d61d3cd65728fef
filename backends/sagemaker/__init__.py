"""The `sagemaker` backend (entry point `backends.sagemaker:SageMakerBackend`)."""

from backends.sagemaker.backend import SageMakerBackend

__all__ = ["SageMakerBackend"]
