"""The `vertex` backend (backend.py); kept light: `launch list` and dry runs import it."""

from backends.vertex.backend import VertexBackend

__all__ = ["VertexBackend"]
