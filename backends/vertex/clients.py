"""The google clients the `vertex` backend talks through, and the one timeout every call gets.

Every import of google happens inside a function here, so importing the package stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher.sdk import Sdk

SDK = Sdk("vertex", "google-cloud-aiplatform", ("google.cloud.aiplatform_v1", "google.cloud.storage", "google.auth"))
# Every Vertex and Logging call gets this timeout: the SDK's default for custom-job calls is none, so an
# answer lost on the way would hold `launch run` forever. A timed-out create is found again by its label.
# Read as `clients.API_TIMEOUT_S` at each call, so one assignment changes it for every caller.
API_TIMEOUT_S = 60.0
LOGGING_ENDPOINT = "https://logging.googleapis.com"


def credentials(endpoint: str | None) -> Any:
    """Application Default Credentials; never sent over plain http (a local endpoint)."""
    if endpoint and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth

    found, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return found


def job_client(settings: Mapping[str, Any], region: str) -> Any:
    """A JobServiceClient over REST for the region's endpoint (or the api_endpoint setting)."""
    from google.cloud import aiplatform_v1

    endpoint = settings.get("api_endpoint") or f"{region}-aiplatform.googleapis.com"
    return aiplatform_v1.JobServiceClient(transport="rest", credentials=credentials(endpoint),
                                          client_options={"api_endpoint": endpoint})


def logging_endpoint(settings: Mapping[str, Any]) -> str:
    return str(settings.get("logging_endpoint") or LOGGING_ENDPOINT)


def authorized_session(settings: Mapping[str, Any]) -> Any:
    """An HTTP session carrying the credentials, for Cloud Logging's REST API."""
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(credentials(logging_endpoint(settings)))
