"""The `kubernetes` backend (and its `coreweave` alias): `render` (settings and manifests, no client),
`client` (the official client and its errors), `backend` (the class). Only the classes are exported:
importing this package imports no SDK (a dry run needs none)."""

from typing import Any, ClassVar

from backends.kubernetes.backend import KubernetesBackend


class CoreWeaveBackend(KubernetesBackend):
    """`--backend coreweave`: the kubernetes backend on CoreWeave (CKS), GPUs selected by CoreWeave's
    `gpu.nvidia.com/class` node label."""

    name: ClassVar[str] = "coreweave"
    presets: ClassVar[dict[str, Any]] = {"gpu_label": "coreweave"}


__all__ = ["CoreWeaveBackend", "KubernetesBackend"]
