"""The `kubernetes` client, built from a kubeconfig (contexts, exec credential plugins as CKS, EKS and
GKE use) or the in-cluster service account, and its errors as launch's. Imported only by backend.py,
for a real call: a dry run never loads the client."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from launcher.errors import BackendError, BackendUnreachable, LaunchError, TransientBackendError, translated
from launcher.sdk import Sdk

SDK = Sdk("kubernetes", "kubernetes", ("kubernetes",))
TIMEOUT_S = 30  # every API call's read timeout: a hung apiserver fails the call, the runner retries it


def kubeconfig_path(settings: Mapping[str, Any]) -> Path | None:
    """The kubeconfig the client will read (the first of $KUBECONFIG's list), or None: in-cluster."""
    named = settings.get("kubeconfig") or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    path = Path(named).expanduser() if named else Path.home() / ".kube" / "config"
    return path if path.exists() or named else None


def default_namespace(settings: Mapping[str, Any]) -> str:
    """The namespace a job goes to: the setting, else the context's, else the pod's own (in-cluster),
    else `default`. Read from the file with PyYAML (no client): render and dry runs need it."""
    if settings.get("namespace"):
        return str(settings["namespace"])
    path = kubeconfig_path(settings)
    if path is None:
        own = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return own.read_text().strip() if own.exists() else "default"
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "default"
    wanted = settings.get("context") or loaded.get("current-context")
    for entry in loaded.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            return str((entry.get("context") or {}).get("namespace") or "default")
    return "default"


def api_client(settings: Mapping[str, Any]) -> Any:
    """An ApiClient for the configured context; urllib3 retries nothing (the runner is the retry layer)."""
    SDK.require()
    from kubernetes import client, config

    configuration = client.Configuration()
    with errors():
        path = kubeconfig_path(settings)
        if path is None:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=str(path), context=settings.get("context"),
                                    client_configuration=configuration, persist_config=False)
    configuration.retries = False
    return client.ApiClient(configuration)


def _translate(exc: Exception) -> LaunchError | None:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ConfigException):
        return BackendUnreachable(f"no usable Kubernetes configuration: {exc}",
                                  "set backends.kubernetes.kubeconfig/context, or KUBECONFIG")
    if isinstance(exc, HTTPError):
        return TransientBackendError(f"the Kubernetes API server could not be reached: {exc}")
    if isinstance(exc, ApiException):
        reason = message_of(exc)
        if exc.status == 429 or (exc.status or 0) >= 500:
            retry_after = (exc.headers or {}).get("Retry-After")
            return TransientBackendError(f"Kubernetes API {exc.status}: {reason}",
                                         retry_after=float(retry_after) if str(retry_after or "").isdigit() else None)
        if exc.status in (401, 403):
            return BackendUnreachable(f"Kubernetes refused the request ({exc.status}): {reason}",
                                      "check the context's credentials and RBAC (jobs, pods, pods/log, services, "
                                      "configmaps, secrets in the namespace)")
        return BackendError(f"Kubernetes API {exc.status}: {reason}")
    return None


def message_of(exc: Any) -> str:
    """The Status object's message from an ApiException body, else its reason."""
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    with translated(_translate):
        yield
