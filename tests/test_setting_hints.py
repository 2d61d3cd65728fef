"""Every `backends.X.Y` a message, hint or the README tells a user to set is a setting backend X
really has: a hint naming a setting that does not exist (Vertex's `instance_type`, which is
`machine_type` there) sends the user into an "unknown key" error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launcher import accelerators, catalog, registry
from launcher.accelerators import Accelerator

REPO = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"backends\.([a-z_]+)\.([a-z_]+)")
# `from backends.vertex.render import ...`: a module of a backend package, not a setting
IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+backends\.\S*", re.MULTILINE)


def _unreal(text: str) -> list[str]:
    """The `backends.X.Y` in `text` that backend X has no setting Y for (import lines name modules)."""
    bad = []
    for backend, setting in NAMED.findall(IMPORT_LINE.sub("", text)):
        fields = registry.settings_model(backend).model_fields if backend in registry.names() else {}
        if setting not in fields:
            bad.append(f"backends.{backend}.{setting}")
    return bad


SOURCES = sorted([*REPO.glob("launcher/**/*.py"), *REPO.glob("backends/**/*.py"), REPO / "README.md"])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_settings_named_in_the_source_exist(path):
    assert _unreal(path.read_text(encoding="utf-8")) == []


def test_the_scan_would_see_a_wrong_name():
    assert _unreal("set backends.vertex.instance_type") == ["backends.vertex.instance_type"]
    assert _unreal("set backends.vertex.machine_type") == []
    assert _unreal("from backends.vertex.render import label_value\n") == []
    assert _unreal("from backends.vertex.render import x  # set backends.vertex.instance_type") \
        == ["backends.vertex.instance_type"]


@pytest.mark.parametrize("backend", sorted({o.backend for o in catalog.offers()}))
def test_catalog_hints_name_the_backends_own_setting(backend):
    """The catalog builds its hints from the backend's name: each kind of refusal, per backend."""
    offered = [o for o in catalog.offers() if o.backend == backend]
    have = offered[0]
    missing_type = next(n for n in accelerators.CANONICAL_NAMES
                        if n != accelerators.CPU and all(o.accelerator != n for o in offered))
    hints = []
    asks = [(Accelerator(have.accelerator, 17), {}), (Accelerator(missing_type, 1), {})]
    if have.vcpus is not None:  # a row whose source gives no vCPU count (CoreWeave's) cannot refuse on cpus
        asks.append((Accelerator(have.accelerator, have.count), {"cpus": 10 ** 5}))
    for ask, kwargs in asks:
        with pytest.raises(catalog.CatalogError) as info:
            catalog.choose(backend, ask, **kwargs)
        hints.append(info.value.hint)
    assert all(NAMED.search(h) for h in hints), hints
    assert _unreal(" ".join(hints)) == []


def test_vertex_refusal_names_machine_type():
    from launcher.errors import SpecError
    from launcher.spec import parse_spec

    spec = parse_spec("name: demo\nrun: x\nimage: i\nresources:\n  accelerators: T4:16\nbackends:\n  vertex:\n"
                      "    project: my-project\n    region: us-central1\n    staging_bucket: gs://bucket\n",
                      "spec.yaml")
    backend = registry.create("vertex", spec.backends["vertex"])

    with pytest.raises(SpecError) as info:
        backend.render(spec, "demo-1", None, {})
    text = str(info.value)
    assert "backends.vertex.machine_type" in text and _unreal(text) == []
