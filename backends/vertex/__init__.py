"""The `vertex` backend: the spec as one Vertex AI CustomJob.

Render (render.py) builds a plain dict, so a dry run stays fast and never imports the ~1 s
google-cloud-aiplatform package; submit (backend.py) parses it into the official
`aiplatform_v1.CustomJob` proto, so a wrong field name fails before anything is sent. Code and
bootstrap go to the staging bucket (upload.py) and are read on the nodes through the
/gcs/<bucket> Cloud Storage FUSE mount Vertex provides; the bootstrap derives rank and master
from CLUSTER_SPEC. Logs come from Cloud Logging (logs.py); google errors become launch errors
in errors.py.

Kept light: `launch list` and dry runs import this package, so nothing here imports an SDK.
"""

from backends.vertex.backend import VertexBackend

__all__ = ["VertexBackend"]
