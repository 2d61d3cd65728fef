"""The `lambda_cloud` backend: `render` (settings and the dry-run request, no network), `api` (Lambda's
REST API), `instances` (what launch writes onto instances and reads back) and `backend` (the class).

Only the class is exported: importing this package must not import an HTTP library (a dry run needs none).
"""

from backends.lambda_cloud.backend import LambdaCloudBackend

__all__ = ["LambdaCloudBackend"]
