"""Every backend package's render.py is the pure half of the backend (the azureml/render.py split):
anywhere in it, no provider SDK, nothing that reads the clock, draws random numbers or opens a
connection, and none of the package's modules that talk to the provider. One test for every
package, so a new backend package is held to it without writing its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from launcher import registry

REPO = Path(__file__).resolve().parent.parent
RENDERS = sorted(REPO.glob("backends/*/render.py"))
IMPURE = ("time", "datetime", "random", "secrets", "uuid", "socket", "ssl", "urllib", "urllib3", "http",
          "requests", "grpc", "launcher.sdk")
# a package's modules that talk to the provider; a render may use its pure siblings (settings, instances...)
PROVIDER_FACING = ("backend", "clients", "api", "errors", "logs", "upload", "storage")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_every_backend_package_has_a_render_module():
    assert {p.parent.name for p in RENDERS} >= {"sagemaker", "vertex", "azureml", "lambda_cloud"}


@pytest.mark.parametrize("render", RENDERS, ids=lambda p: p.parent.name)
def test_render_module_is_the_pure_half(render: Path):
    package = render.parent.name
    sdk = registry.backend_class(package).sdk
    forbidden = (*IMPURE, *(m.split(".")[0] for m in (sdk.modules if sdk else ())),
                 *(f"backends.{package}.{m}" for m in PROVIDER_FACING))
    imported = imported_modules(render)
    assert imported  # the scan sees the imports that are there
    assert sorted(m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden)) == []
