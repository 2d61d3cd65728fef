"""boto3 sessions and clients, one per (profile, region, service, endpoint, AWS_* environment) per process.

boto3 is imported only when a client is first asked for: `launch list` and dry runs never get here.
"""

from __future__ import annotations

import functools
from typing import Any

from launcher.sdk import Sdk

SDK = Sdk("sagemaker", "boto3", ("boto3", "botocore"))


@functools.cache
def _aws_session(profile: str | None, region: str, aws_environment: tuple[tuple[str, str], ...]) -> Any:
    import boto3

    return boto3.session.Session(profile_name=profile, region_name=region)


@functools.cache
def aws_client(profile: str | None, region: str, service: str, endpoint: str | None,
               aws_environment: tuple[tuple[str, str], ...]) -> Any:
    """One client per service for the whole process: building one loads botocore's service
    model from disk (~200 ms), which would dominate a sweep of submits. Clients are thread-safe.
    `aws_environment` (the AWS_* variables) is part of the key: they choose credentials and endpoints."""
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
    return _aws_session(profile, region, aws_environment).client(service, endpoint_url=endpoint, config=config)
