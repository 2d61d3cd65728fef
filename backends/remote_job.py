"""Shared pieces of the backends that predate the contract module.

The node contract that used to live here (Placement, job_files, master_port,
node_environment, the bootstrap.sh path) is launcher/node.py now: every backend,
local included, imports it from there.
"""

from __future__ import annotations

from typing import Any


class LazySettings:
    """A class attribute that builds the backend's pydantic settings model on first use, so
    importing a backend module (for `launch list`) never imports pydantic."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __get__(self, obj: object, owner: type) -> Any:
        return self.factory()
