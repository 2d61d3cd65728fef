"""A provider fake whose jobs mount what the backend put in the provider's S3-compatible store (OSS, COS, BOS),
with moto's S3 standing in for that store: the one setup the PAI-DLC, TI-ONE and AIHC tests share.

A subclass names its fake (`start_fake`) and the config.toml that points the backend at both (`config`);
`stack.fake` is the running fake, `stack.s3` a boto3 client on the bucket's server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar


class BucketStack:
    BUCKET: ClassVar[str] = "team-bucket"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.mount = self.root / "mnt"
        self._server: Any = None
        self.fake: Any = None
        self.s3: Any = None
        self.s3_endpoint = ""

    def start_fake(self) -> Any:
        """The provider fake, entered, reading the bucket at `self.s3_endpoint` into `self.mount`."""
        raise NotImplementedError

    def __enter__(self) -> Any:
        import logging

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.s3_endpoint = f"http://{host}:{port}"
        self.s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id="x",
                               aws_secret_access_key="x", region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.BUCKET)
        self.mount.mkdir(parents=True, exist_ok=True)
        self.fake = self.start_fake()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fake is not None:
            self.fake.__exit__(*exc)
        if self._server is not None:
            self._server.stop()

    def reset(self) -> None:
        """The fake emptied, and the bucket there again: moto's state is one per process, so another test's
        moto reset (the SageMaker fake's) empties this server's S3 too."""
        self.fake.reset()
        if self.BUCKET not in {b["Name"] for b in self.s3.list_buckets().get("Buckets", [])}:
            self.s3.create_bucket(Bucket=self.BUCKET)

    def objects(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.BUCKET).get("Contents", [])]


class ServedJobsFake:
    """The lifecycle the three job fakes share: a boto3 client on the bucket's server (the fake reads what the
    backend uploaded, as the provider's nodes mount it), an HTTP server on 127.0.0.1:0 whose every request of
    METHODS goes to `_serve(handler)` (handler.command says which), and on exit every job stopped (`stop_all`)
    before the server goes. A subclass has `s3_endpoint`, `stop_all` and `_serve`."""

    NAME: ClassVar[str]
    METHODS: ClassVar[tuple[str, ...]] = ("POST",)
    s3_endpoint: str

    def __enter__(self) -> Any:
        import threading
        from http.server import BaseHTTPRequestHandler

        import boto3
        from botocore.config import Config

        from fakes import bugs

        self._s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id="fake",
                                aws_secret_access_key="fake", region_name="us-east-1",
                                config=Config(retries={"max_attempts": 1}, proxies={}))
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

        for method in self.METHODS:
            setattr(Handler, f"do_{method}", lambda handler: fake._serve(handler))
        self._server = bugs.RecordingHTTPServer(self.NAME, ("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True  # no job moves on: their threads must not write into a removed directory
        self.stop_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def stop_all(self) -> None:
        raise NotImplementedError

    def _serve(self, handler: Any) -> None:
        raise NotImplementedError
