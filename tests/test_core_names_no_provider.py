"""The core (launcher/) names no provider outside prose: what a provider is, costs and needs lives in
its backend, so a new backend is added without editing the core.

The scan reads code, not prose: identifiers and string values are checked, comments and docstrings are
not (they may give a provider as an example). launcher/bootstrap.sh is scanned too: each backend ships
its node topology, so the script every node runs has no provider branch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from launcher import registry

CORE = Path(__file__).resolve().parent.parent / "launcher"
# The one place the core may list backends by name: which ones this project ships (for install hints
# before a backend is installed) and where a job runs when nothing says otherwise. help_text.HELP is
# prose too: `launch --help` as click renders it from the commands' docstrings, stored ahead.
ALLOWED = {("registry.py", "PROJECT_BACKENDS"), ("registry.py", "DEFAULT_BACKEND"), ("help_text.py", "HELP")}
# provider words that are not backend names but name a provider all the same
PROVIDER_WORDS = ("aws", "azure", "gcp", "google", "boto3", "botocore")
# backend names that are also everyday words of code (`threading.local()`, "~/.local/state"): these count
# only as a whole string value, the way a backend name is written in code ("local")
EVERYDAY_WORDS = frozenset({"local", "ssh"})


def provider_names() -> list[str]:
    return sorted({*registry.names(), *registry.PROJECT_BACKENDS, *PROVIDER_WORDS})


def _pattern(names: list[str]) -> re.Pattern[str]:
    """A name as a whole word of code: `vertex_topology` and "backends.vertex" hold one, `vertexes` does not."""
    return re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9])", re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _allowed_values(tree: ast.AST, filename: str) -> set[int]:
    """Every node inside an allowed assignment (the names that may hold backend names)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and (filename, t.id) in ALLOWED for t in targets):
                inside.update(id(n) for n in ast.walk(node))
    return inside


def python_offences(source: str, filename: str, names: list[str]) -> list[str]:
    """`line: what` for each identifier or non-docstring string in `source` that names a provider."""
    tree = ast.parse(source)
    pattern = _pattern([n for n in names if n not in EVERYDAY_WORDS])
    everyday = {n for n in names if n in EVERYDAY_WORDS}
    skip = _docstrings(tree) | _allowed_values(tree, filename)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts = [node.value]
        elif isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            texts = [node.name]
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            texts = [node.arg]
        elif isinstance(node, ast.alias):
            texts = [node.name, node.asname or ""]
        for text in texts:
            if match := pattern.search(text):
                found.append(f"{filename}:{node.lineno}: {match.group(1)!r} in {text!r}")
            elif isinstance(node, ast.Constant) and text.lower() in everyday:
                found.append(f"{filename}:{node.lineno}: the string {text!r}")
    return found


def shell_offences(source: str, filename: str, names: list[str]) -> list[str]:
    """The same for a shell script: every line but comments."""
    pattern = _pattern([n for n in names if n not in EVERYDAY_WORDS])
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
        if match := pattern.search(code):
            found.append(f"{filename}:{number}: {match.group(1)!r} in {line.strip()!r}")
    return found


def test_the_core_names_no_provider_outside_prose():
    names = provider_names()
    assert {"sagemaker", "vertex", "local"} <= set(names)  # the scan knows what to look for
    offences = []
    for path in sorted(CORE.glob("*.py")):
        offences += python_offences(path.read_text(encoding="utf-8"), path.name, names)
    for path in sorted(CORE.glob("*.sh")):
        offences += shell_offences(path.read_text(encoding="utf-8"), path.name, names)
    assert offences == []


@pytest.mark.parametrize(("source", "caught"), [
    ('KEYS = ("instance_type", "machine_type", "vertex")\n', True),   # a string value
    ("def vertex_topology():\n    pass\n", True),                     # an identifier
    ('x = f"backends.{name}" if name != "sagemaker" else None\n', True),
    ('hint = "write names separated by commas: vertex,sagemaker"\n', True),
    ('def f():\n    """Vertex calls it machine_type."""\n', False),  # prose in a docstring
    ("x = 1  # sagemaker reads the rank from resourceconfig.json\n", False),  # prose in a comment
    ('PROJECT_BACKENDS = ("local", "vertex")\n', False),              # the allowed list
    ('x = "vertexes"\n', False),                                      # not the name, a longer word
    ('default = os.environ.get("B") or "local"\n', True),             # an everyday word as a backend name
    ('state = threading.local()\nhome = "~/.local/state"\n', False),   # ... and as an everyday word
])
def test_the_scan_tells_code_from_prose(source, caught):
    assert bool(python_offences(source, "registry.py", ["local", "sagemaker", "vertex"])) is caught


def test_the_shell_scan_skips_comments():
    assert shell_offences('# on vertex the rank comes from CLUSTER_SPEC\necho "$RANK"\n', "x.sh", ["vertex"]) == []
    assert shell_offences('vertex_topology() {\n  :\n}\n', "x.sh", ["vertex"]) != []
