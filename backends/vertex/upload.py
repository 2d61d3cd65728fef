"""Code and bootstrap files to the staging bucket, where the nodes read them through /gcs FUSE."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backends.vertex import clients
from launcher.backend import Upload

STORAGE_RETRY_S = 20.0


def storage_retry() -> Any:
    """GCS retries its own calls (uploads included, resumable ones from where they stopped), for 120 s by default;
    20 s rides out a blip. For uploads this is the one retry layer: the RetryError it ends with is
    BackendUnreachable (`errors.google_error`), not transient, so the runner's policy does not retry it on top."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(STORAGE_RETRY_S)


def upload(settings: Mapping[str, Any], project: str, uploads: tuple[Upload, ...]) -> None:
    """Each upload to its gs:// destination; a bundle already there (content-addressed) is not sent again."""
    from google.cloud import storage

    endpoint = settings.get("storage_endpoint")
    options = {"api_endpoint": endpoint} if endpoint else None
    client = storage.Client(project=project, credentials=clients.credentials(endpoint), client_options=options)
    for item in uploads:
        bucket, _, key = item.destination.removeprefix("gs://").partition("/")
        blob = client.bucket(bucket).blob(key)
        if item.content is not None:
            blob.upload_from_string(item.content, retry=storage_retry())
        elif "/bundles/" in key and blob.exists(retry=storage_retry()):
            continue  # content-addressed: already there
        else:
            blob.upload_from_filename(str(item.source), retry=storage_retry())
