"""The `aihc` backend (entry point `backends.aihc:AihcBackend`): Baidu AI Cloud AIHC (百舸) training jobs.

Kept to the one export: `launch list` and dry runs import this package, so nothing here may pull in
bce-python-sdk. render.py builds the v2 CreateJob request (pure); backend.py holds the class; client.py
the SDK's signed transport and its errors; states.py AIHC's job states.
"""

from backends.aihc.backend import AihcBackend

__all__ = ["AihcBackend"]
