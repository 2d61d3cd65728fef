"""The `tione` backend (entry point `backends.tione:TioneBackend`): Tencent Cloud TI-ONE training tasks.

Kept to the one export: `launch list` and dry runs import this package, so nothing here may pull in
the Tencent Cloud SDK. render.py builds the CreateTrainingTask request (pure); backend.py holds the
class; client.py the SDK client, credentials and errors; states.py TI-ONE's task states.
"""

from backends.tione.backend import TioneBackend

__all__ = ["TioneBackend"]
