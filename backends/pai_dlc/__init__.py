"""The `pai_dlc` backend (entry point `backends.pai_dlc:PaiDlcBackend`): Alibaba Cloud PAI-DLC jobs.

Kept to the one export: `launch list` and dry runs import this package, so nothing here may pull in
the Alibaba Cloud SDK. render.py builds the CreateJob body (pure); backend.py holds the class;
client.py the SDK client and its errors; states.py DLC's job states.
"""

from backends.pai_dlc.backend import PaiDlcBackend

__all__ = ["PaiDlcBackend"]
