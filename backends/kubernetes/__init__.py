"""The `kubernetes` backend (and its `coreweave` alias): `render` (settings and manifests, no client),
`client` (the official client and its errors), `backend` (the class). Only the classes are exported:
importing this package imports no SDK (a dry run needs none)."""

from pathlib import Path
from typing import Any, ClassVar

from backends.kubernetes.backend import KubernetesBackend
from backends.kubernetes.render import CATALOG_CSV
from launcher.sdk import Sdk


class CoreWeaveBackend(KubernetesBackend):
    """`--backend coreweave`: the kubernetes backend on CoreWeave (CKS), GPUs selected by CoreWeave's
    `gpu.nvidia.com/class` node label, and priced from CoreWeave's list prices (catalog.csv). A plain
    `kubernetes` cluster has no catalog: `launch plan` says it runs on machines you provide."""

    name: ClassVar[str] = "coreweave"
    presets: ClassVar[dict[str, Any]] = {"gpu_label": "coreweave"}
    catalog_csv: ClassVar[Path | None] = CATALOG_CSV
    sdk: ClassVar[Sdk | None] = Sdk("coreweave", "kubernetes", ("kubernetes",))  # launch-jobs[coreweave]


__all__ = ["CoreWeaveBackend", "KubernetesBackend"]
