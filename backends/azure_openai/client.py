"""The `openai` package's clients (AzureOpenAI / OpenAI) and their errors as launch errors.

Imported only when a real call needs them: `launch list` and dry runs never get here. The client's
own retries are off (max_retries=0): the runner's retry policy is the one retry layer, and a 429's
Retry-After reaches it through TransientBackendError.retry_after. Keys come from the environment
(AZURE_OPENAI_API_KEY, OPENAI_API_KEY) or Entra ID, never from a spec.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from backends.azure_openai.render import AZURE
from launcher.errors import (
    BackendError,
    BackendUnreachable,
    CapacityError,
    LaunchError,
    TransientBackendError,
    UsageError,
    translated,
)
from launcher.sdk import Sdk

SDK = Sdk("azure_openai", "openai", ("openai",))
OPENAI_SDK = Sdk("openai", "openai", ("openai",))
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
HINTS = {
    AZURE: "export AZURE_OPENAI_API_KEY (the resource's key), or sign in for Entra ID (`az login`, a managed "
           "identity) with the Cognitive Services OpenAI Contributor role on the resource",
    "openai": "export OPENAI_API_KEY (a key of the project that should own the job)",
}
TIMEOUT_S = 60.0


def endpoint(settings: Mapping[str, Any]) -> str | None:
    return settings.get("endpoint") or os.environ.get("AZURE_OPENAI_ENDPOINT") or None


@functools.cache
def http_client() -> Any:
    """One connection pool per process: building one loads the system's CA bundle (~80 ms), which a
    client made per command (each `launch run` of a sweep builds its backend afresh) would pay each time.
    It holds no credentials: each client adds its own key or token to every request."""
    import openai

    return openai.DefaultHttpxClient(timeout=TIMEOUT_S)


def make_client(name: str, settings: Mapping[str, Any]) -> Any:
    """The client for these settings and this environment's key (or Entra ID): one per distinct set per
    process, as sagemaker/clients.py keeps boto3's (building one costs ~80 us, and a sweep's or an
    in-process caller's every submit builds its backend afresh). Clients are thread-safe."""
    (SDK if name == AZURE else OPENAI_SDK).require()
    if name != AZURE:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise BackendUnreachable("OPENAI_API_KEY is not set", HINTS[name])
        return _openai_client(key, settings.get("base_url") or os.environ.get("OPENAI_BASE_URL"),
                              settings.get("organization"), settings.get("project"))
    where = endpoint(settings)
    if not where:
        raise UsageError("no Azure OpenAI endpoint", "set backends.azure_openai.endpoint "
                         "(https://<resource>.openai.azure.com) or AZURE_OPENAI_ENDPOINT")
    key = os.environ.get("AZURE_OPENAI_API_KEY")
    auth = settings.get("auth") or "auto"
    if auth == "key" or (auth == "auto" and key):
        if not key:
            raise BackendUnreachable("AZURE_OPENAI_API_KEY is not set (backends.azure_openai.auth: key)", HINTS[AZURE])
        return _azure_client(where, settings.get("api_version"), key, ())
    identity = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))))
    return _azure_client(where, settings.get("api_version"), None, identity)


@functools.lru_cache(maxsize=8)
def _openai_client(key: str, base_url: str | None, organization: str | None, project: str | None) -> Any:
    import openai

    return openai.OpenAI(api_key=key, base_url=base_url, organization=organization, project=project,
                         max_retries=0, timeout=TIMEOUT_S, http_client=http_client())


@functools.lru_cache(maxsize=8)
def _azure_client(where: str, api_version: str | None, key: str | None,
                  identity: tuple[tuple[str, str], ...]) -> Any:
    """With the key, or (None) with Entra ID, whose credential chain reads `identity` (the AZURE_*,
    IDENTITY_* and MSI_* variables: part of the key, as they choose who signs in)."""
    import openai

    common = {"azure_endpoint": where, "api_version": api_version, "max_retries": 0, "timeout": TIMEOUT_S,
              "http_client": http_client()}
    if key is not None:
        return openai.AzureOpenAI(api_key=key, **common)
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError:
        raise UsageError("Entra ID sign-in needs azure-identity, which is not installed",
                         "pip install azure-identity, or export AZURE_OPENAI_API_KEY") from None
    import logging

    # the chain logs every source it tried, at warning; the error this raises says what to do instead
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    provider = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    return openai.AzureOpenAI(azure_ad_token_provider=provider, **common)


def api_errors(name: str) -> Any:
    """`with api_errors(name):` turns the client's (and azure-identity's) exceptions into launch errors."""
    return translated(lambda exc: api_error(name, exc))


def api_error(name: str, exc: Exception) -> LaunchError | None:
    """401/403 exit 4 with how to sign in; 429 and 5xx are retried by the runner (Retry-After kept);
    a quota refusal is CapacityError; the rest say what the service said."""
    service = "Azure OpenAI" if name == AZURE else "OpenAI"
    module = type(exc).__module__
    if module.startswith("azure.identity") or type(exc).__name__ in ("ClientAuthenticationError",
                                                                      "CredentialUnavailableError"):
        return BackendUnreachable(f"no Entra ID token for {service}: {str(exc).splitlines()[0][:300]}", HINTS[name])
    if not module.startswith("openai"):
        return None
    import openai

    status = getattr(exc, "status_code", None)
    detail = _detail(exc)
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return TransientBackendError(f"{service} did not answer: {exc}", "check the endpoint and the network")
    if isinstance(exc, openai.AuthenticationError):
        return BackendUnreachable(f"{service} refused the credentials (401): {detail}", HINTS[name])
    if isinstance(exc, openai.PermissionDeniedError):
        return BackendUnreachable(f"{service} denied the request (403): {detail}", HINTS[name])
    if isinstance(exc, openai.RateLimitError):
        if "quota" in detail.lower() and "retry" not in detail.lower():
            return CapacityError(f"{service} has no quota for this job (429): {detail}",
                                 "raise the fine-tuning quota, or wait for running jobs to end")
        return TransientBackendError(f"{service} is throttling (429): {detail}", retry_after=_retry_after(exc))
    if isinstance(status, int) and status >= 500:
        return TransientBackendError(f"{service} failed ({status}): {detail}", retry_after=_retry_after(exc))
    if isinstance(exc, openai.APIStatusError):
        return BackendError(f"{service} refused the request ({status}): {detail}")
    return None


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error") if isinstance(body.get("error"), Mapping) else body
        message = inner.get("message") if isinstance(inner, Mapping) else None
        if message:
            return str(message)[:500]
    return str(getattr(exc, "message", "") or exc)[:500]


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
