"""The job's S3 side: the bucket bundles go to, and putting each upload there.

Takes boto3 clients from the backend; botocore is imported only to tell "missing" from other errors.
"""

from __future__ import annotations

from typing import Any

from launcher import logs
from launcher.backend import Upload


def default_bucket(sts: Any, s3: Any, region: str) -> str:
    """launch-<account>-<region>, created on first use."""
    account = sts.get_caller_identity()["Account"]
    bucket = f"launch-{account}-{region}"
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        logs.get().warning("creating S3 bucket %s for launch's code bundles (set backends.sagemaker.bucket "
                           "to use another)", bucket)
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)
    return bucket


def put(s3: Any, upload: Upload) -> None:
    """Put one object. Bundles are content-addressed: one already there is not sent again.
    The job's own small files are new by construction, so they skip that round trip."""
    bucket, _, key = upload.destination.removeprefix("s3://").partition("/")
    if upload.content is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=upload.content.encode())
        return
    assert upload.source is not None
    if "/bundles/" not in key:
        s3.put_object(Bucket=bucket, Key=key, Body=upload.source.read_bytes())
        return
    from botocore.exceptions import ClientError

    try:
        if s3.head_object(Bucket=bucket, Key=key).get("ContentLength") == upload.source.stat().st_size:
            return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(str(upload.source), bucket, key)  # multipart for big bundles
