"""The Hub as the `hf_jobs` backend reaches it: the token, the HfApi client, huggingface_hub's errors in
launch's words, and the code bundle's upload to a private repository.

huggingface_hub is imported inside functions only: `launch list` and dry runs import this module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from launcher.errors import BackendError, BackendUnreachable, LaunchError, TransientBackendError, translated
from launcher.sdk import Sdk

SDK = Sdk("hf_jobs", "huggingface_hub", ("huggingface_hub",))
# huggingface_hub's shared HTTP client waits forever by default: an answer lost on the way would hold
# `launch run` for good. Every call but the log stream (which sets its own) gets this one.
API_TIMEOUT_S = 60.0
LOGIN_HINT = "run `hf auth login`, or export HF_TOKEN (a token with write access to Jobs and repos: " \
             "https://huggingface.co/settings/tokens)"
REACH_HINT = "check your network and backends.hf_jobs.endpoint"
_timeout_set = False


def token_from_environment(settings: Mapping[str, Any]) -> str | None:
    """HF_TOKEN, then the Hub's login cache (`hf auth login`), then config.toml's token; never a spec's
    (render refuses one there). Read without importing huggingface_hub (readiness needs no SDK)."""
    token = os.environ.get("HF_TOKEN")
    if token:
        return token.strip()
    cached = Path(os.environ.get("HF_TOKEN_PATH") or
                  Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "token")
    try:
        token = cached.read_text().strip()
    except OSError:
        token = ""
    return token or (str(settings["token"]) if settings.get("token") else None)


def require_token(settings: Mapping[str, Any]) -> str:
    token = token_from_environment(settings)
    if not token:
        raise BackendUnreachable("no Hugging Face token (HF_TOKEN, the Hub's login cache or config.toml)", LOGIN_HINT)
    return token


def client(settings: Mapping[str, Any]) -> Any:
    """An HfApi for the endpoint, with the token; the shared HTTP client gets a timeout."""
    SDK.require()
    import httpx2
    from huggingface_hub import HfApi, set_client_factory
    from huggingface_hub.utils._http import hf_request_event_hook

    global _timeout_set
    if not _timeout_set:  # once: setting a factory closes the shared client (a new one costs its TLS setup)

        def with_timeout() -> Any:
            return httpx2.Client(event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True,
                                 timeout=API_TIMEOUT_S)

        set_client_factory(with_timeout)
        # its retry notices ("HTTP Error 429 thrown while requesting ...") are no message for our users
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        _timeout_set = True
    return HfApi(endpoint=str(settings["endpoint"]).rstrip("/"), token=require_token(settings),
                 library_name="launch-jobs")


def hub_errors() -> Any:
    """`with hub_errors():` turns huggingface_hub's and httpx's exceptions into launch errors."""
    SDK.require()
    return translated(hub_error)


def status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def hub_error(exc: Exception) -> LaunchError | None:
    """401 and 403 exit 4 with the login hint; throttling, 5xx and connections that fail are transient
    (the runner retries them); another refusal is the server's message."""
    module = type(exc).__module__
    if not module.startswith(("huggingface_hub", "httpx", "httpcore")):
        return None
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        code = status_code(exc)
        said = exc.server_message or str(exc).strip().splitlines()[0]
        if code == 401:
            return BackendUnreachable(f"Hugging Face rejected the token: {said}", LOGIN_HINT)
        if code == 403:
            return BackendUnreachable(f"Hugging Face denied the request: {said}",
                                      "the token needs write access to Jobs and repositories; " + LOGIN_HINT)
        if code == 429 or (code is not None and code >= 500):
            after = (exc.response.headers.get("retry-after") if exc.response is not None else None) or ""
            return TransientBackendError(f"Hugging Face is unavailable ({code}): {said}", REACH_HINT,
                                         retry_after=float(after) if after.isdigit() else None)
        return BackendError(f"Hugging Face refused the request ({code}): {said}")
    import httpx2

    if isinstance(exc, httpx2.TransportError):
        return TransientBackendError(f"could not reach Hugging Face: {type(exc).__name__}: {exc}", REACH_HINT)
    return None


def list_jobs(api: Any, namespace: str, labels: Mapping[str, str] | None = None) -> Iterator[Any]:
    """HfApi.list_jobs's request and answer (GET /api/jobs/<namespace>, `label=k=v`, JobInfo per job, pages by
    Link header) without its client-side backoff: list_jobs pages through http_backoff, five retries and up to
    23 s a call, under the runner's own retry layer (launcher/retry.py: one layer, so an outage is reported in
    seconds). It also asks whoami of the default endpoint, not the api's, when no namespace is given."""
    from huggingface_hub import JobInfo
    from huggingface_hub.utils import get_session, hf_raise_for_status

    url: str | None = f"{api.endpoint}/api/jobs/{namespace}"
    params: list[tuple[str, str]] | None = [("label", f"{k}={v}") for k, v in (labels or {}).items()]
    headers = api._build_hf_headers()
    while url is not None:
        response = get_session().get(url, params=params, headers=headers)
        hf_raise_for_status(response)
        for info in response.json():
            yield JobInfo(**info, endpoint=api.endpoint)
        url, params = response.links.get("next", {}).get("url"), None


def upload_bundle(api: Any, repo_id: str, source: Path, path_in_repo: str) -> bool:
    """The bundle into the private repo (made on first use), once per digest: a bundle already there is
    not sent again. Sent as a file object, which takes the plain LFS path (the Hub's batch API, one PUT,
    the commit), not Xet: one upload of one file, and what the test fake serves. True when it was sent."""
    if api.file_exists(repo_id, path_in_repo, repo_type="model"):  # (False, too, while the repo does not exist)
        return False
    api.create_repo(repo_id, repo_type="model", private=True, exist_ok=True)
    with source.open("rb") as data:  # (huggingface_hub says on its logger that a file object skips Xet)
        api.upload_file(path_or_fileobj=data, path_in_repo=path_in_repo, repo_id=repo_id, repo_type="model",
                        commit_message=f"launch: code bundle {Path(path_in_repo).name}")
    return True
