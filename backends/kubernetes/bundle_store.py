"""Code bundles too big for a ConfigMap, in an S3-compatible bucket (`bundle_store`): uploaded once per
digest, and fetched by each pod through a presigned GET URL, so no storage credential enters a pod.
boto3 is imported here only, when a job has such a bundle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.errors import BackendError, BackendUnreachable, LaunchError, TransientBackendError, translated
from launcher.sdk import Sdk

BOTO3 = Sdk("kubernetes", "boto3 (for bundle_store)", ("boto3",))


def presigned(settings: Mapping[str, Any], destination: str, source: Any) -> str:
    """Upload `source` to `destination` (s3://bucket/key) unless it is there (the key is the bundle's
    digest), and a URL that reads it for `bundle_url_ttl` seconds."""
    BOTO3.require()
    import boto3

    bucket, _, key = destination.removeprefix("s3://").partition("/")
    with translated(_translate):
        s3 = boto3.client("s3", endpoint_url=settings.get("endpoint_url"))
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            s3.upload_file(str(source), bucket, key)
        return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                             ExpiresIn=int(settings["bundle_url_ttl"])))


def _translate(exc: Exception) -> LaunchError | None:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return BackendUnreachable("no credentials for the bundle_store", "set AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY (or an AWS profile) for the bucket")
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 or status == 429:
            return TransientBackendError(f"the bundle_store answered {status}: {exc}")
        return BackendError(f"the bundle_store refused the code bundle: {exc}")
    if isinstance(exc, BotoCoreError):
        return TransientBackendError(f"the bundle_store could not be reached: {exc}")
    return None
