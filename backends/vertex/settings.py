"""The `backends.vertex` settings, and the project and region a job falls back to when they are unset.

The fallbacks read the environment and gcloud's own config file (running gcloud would cost a
second), so render and readiness agree with what `gcloud config` says without the SDK.
"""

from __future__ import annotations

import configparser
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel


@functools.cache
def settings_model() -> type[BaseModel]:
    """`backends.vertex`: where the job runs and as whom."""
    from pydantic import BaseModel, ConfigDict, Field

    class VertexSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        project: str | None = Field(None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", examples=["my-project"],
                                    description="a project id: 6-30 lowercase letters, digits, -")
        region: str | None = Field(None, pattern=r"^[a-z]+-[a-z]+\d+$", examples=["us-central1"],
                                   description="a Google Cloud region")
        staging_bucket: str | None = Field(None, pattern=r"^(gs://)?[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/?$",
                                           examples=["gs://my-bucket"],
                                           description="gs://bucket for code bundles (read via /gcs FUSE)")
        prefix: str = Field("launch", pattern=r"^[A-Za-z0-9._/-]+$", examples=["launch", "team/runs"],
                            description="letters, digits and . _ / -")
        machine_type: str | None = Field(None, description="Overrides the catalog, e.g. n1-standard-8")
        reservation: str | None = Field(
            None, pattern=r"^(any|none|projects/[a-z0-9-]+/zones/[a-z0-9-]+/reservations/[a-z0-9-]+)$",
            examples=["any", "projects/my-project/zones/us-central1-a/reservations/my-tpus"],
            description="Compute Engine reservation to draw the machines from: any, none, or one by full name")
        boot_disk_type: str = "pd-ssd"
        service_account: str | None = None
        network: str | None = Field(None, description="projects/<number>/global/networks/<name>")
        api_endpoint: str | None = Field(None, description="Default: <region>-aiplatform.googleapis.com")
        storage_endpoint: str | None = None
        logging_endpoint: str | None = None

    return VertexSettings


def gcloud_default(section: str, key: str) -> str | None:
    """The `gcloud config` default, read from its file (running gcloud would cost a second)."""
    base = Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
    try:
        active = (base / "active_config").read_text().strip() or "default"
    except OSError:
        active = "default"
    parser = configparser.ConfigParser()
    try:
        parser.read(base / "configurations" / f"config_{active}")
        return parser.get(section, key, fallback=None)
    except configparser.Error:
        return None


def project_from_environment() -> str | None:
    return (os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CLOUDSDK_CORE_PROJECT")
            or gcloud_default("core", "project"))


def region_from_environment() -> str | None:
    return (os.environ.get("GOOGLE_CLOUD_REGION") or os.environ.get("CLOUDSDK_COMPUTE_REGION")
            or gcloud_default("compute", "region"))
