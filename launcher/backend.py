"""The contract between the core and every provider backend.

A backend answers one question per method; polling, backoff, log following and
the job store live in the runner, once for all providers. `render` is pure so a
dry run shows exactly what `submit` will send, without network or credentials.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.spec import JobSpec


class JobState(enum.StrEnum):
    """One set of states for all providers; each backend maps its raw states here."""

    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @classmethod
    def parse(cls, raw: str) -> JobState:
        """Tolerant: a state this version does not know reads as UNKNOWN, never an error."""
        try:
            return cls(str(raw).upper())
        except ValueError:
            return cls.UNKNOWN


def map_state(table: Mapping[str, JobState], raw: str | None) -> JobState:
    """Look a provider's raw state up in its table; unknown states are UNKNOWN, not KeyError."""
    return table.get(raw or "", JobState.UNKNOWN)


@dataclass(frozen=True)
class Capabilities:
    logs_follow: bool = True
    cancel: bool = True
    multi_node: bool = True
    spot: bool = False
    list: bool = True
    # status needs no network (local files): `launch list` refreshes such jobs itself
    fast_status: bool = False
    # seconds a log service may lag behind the job's end: follow keeps reading that long
    log_settle_s: float = 0.0
    # shortest time between two log reads while following (API quotas: Cloud Logging ~1/s)
    log_poll_s: float = 0.1
    # cancel still has work after the job ended (machines kept for inspection are given back)
    cancel_after_end: bool = False


@dataclass(frozen=True)
class Upload:
    """A file the request needs at `destination` (a URI or path the backend understands):
    a local file (`source`) or small generated text (`content`, e.g. the run command)."""

    source: Path | None
    destination: str
    content: str | None = None


@dataclass(frozen=True)
class Request:
    """What submit will send: the provider operation, its exact payload, the uploads.

    Secret values are in the payload only when render was given real values; the
    runner renders dry runs with masked values, so printing a Request is safe then.
    """

    backend: str
    job_id: str
    operation: str
    payload: dict[str, Any]
    uploads: tuple[Upload, ...] = ()

    def to_display(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "job_id": self.job_id,
            "operation": self.operation,
            "uploads": [{"destination": u.destination,
                         **({"source": str(u.source)} if u.source else {"content": u.content})}
                        for u in self.uploads],
            "payload": self.payload,
        }


JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=+-]{0,127}")  # what new_job_id makes, with room


def new_job_id(name: str, now: float | None = None) -> str:
    """`<name>-<utc time>-<random>`: sortable, readable, and unique without a server."""
    import secrets as random_tokens
    import time
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(now or time.time(), tz=UTC).strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:40] or "job"
    return f"{slug}-{stamp}-{random_tokens.token_hex(3)}"


def job_name(job_id: str) -> str:
    """The job name a `new_job_id` id starts with: what `list` shows for a job found at a provider
    with no name of its own (the id's last three parts are the time and the random suffix)."""
    return job_id.rsplit("-", 3)[0]


def is_job_id(value: object) -> bool:
    """Whether a job id read back from a provider (a tag, a name, a file on a node) may be used:
    ids become file names under LAUNCH_HOME and keys in the store, and anyone who can tag
    resources in the account can write one (`../../x`, `/etc/passwd`, a newline)."""
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def shown_id(value: object) -> str:
    """A rejected id as an error message may show it: quoted, escaped, cut short."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


@dataclass(frozen=True)
class Handle:
    """Everything needed to find the job again later, from any shell. Stored as JSON."""

    backend: str
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    # Copied from the backend's capabilities at submit: lets `launch list` refresh local
    # jobs without importing any backend module to find out which ones are local.
    fast_status: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Handle:
        return cls(backend=value["backend"], job_id=value["job_id"], data=dict(value.get("data") or {}),
                   fast_status=bool(value.get("fast_status", False)))


@dataclass(frozen=True)
class Status:
    state: JobState
    raw_state: str = ""
    message: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    url: str | None = None


@dataclass(frozen=True)
class LogLine:
    """Output of one node: one complete line, or a block of complete lines joined by "\n"
    (no trailing newline). Blocks let a 100 MB log stream without a Python object per line.
    `cursor` resumes reading right after the last line (opaque to the runner)."""

    text: str
    node: int = 0
    cursor: Any = None

    def lines(self) -> list[str]:
        return self.text.split("\n")


@dataclass(frozen=True)
class Summary:
    """A job as the provider lists it, for reconciling the store (`launch list --sync`)."""

    handle: Handle
    name: str
    status: Status
    created_at: float | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Readiness:
    """What `launch backends` shows: can this backend be used here, and if not, the fix."""

    sdk_installed: bool
    configured: bool
    detail: str = ""
    hint: str = ""


class Backend(Protocol):
    """A provider plugin, registered in the `launcher.backends` entry-point group.

    Constructed as `Backend(settings, client=None)`: `settings` is the merged
    config + spec section as a dict; `client` injects a provider SDK client (tests
    point it at moto or a local fake). The SDK is imported inside methods only.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    settings_model: ClassVar[type[BaseModel]]

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness: ...

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        """Pure: no network, clock or randomness. Problems the provider would reject
        (names, limits, unknown sizes) raise SpecError naming the spec field."""
        ...

    def submit(self, request: Request) -> Handle: ...

    def status(self, handle: Handle) -> Status: ...

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Lines after the cursor `since`. A generator may also return a cursor: where a read moved
        on without a line to show, the runner's follow goes on from there."""
        ...

    def cancel(self, handle: Handle) -> None: ...

    def list(self, *, since: float | None = None) -> Iterator[Summary]: ...
