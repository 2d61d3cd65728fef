"""The contract between the core and every provider backend.

A backend answers one question per method; polling, backoff, log following and
the job store live in the runner, once for all providers. `render` is pure so a
dry run shows exactly what `submit` will send, without network or credentials.
"""

from __future__ import annotations

import abc
import copy
import enum
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from launcher.retry import DEFAULT as DEFAULT_RETRY
from launcher.retry import RetryPolicy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.bundle import Bundle
    from launcher.sdk import Sdk
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
    # what kind of job it runs: a container job (run:, image:, resources:) and/or a hosted
    # fine-tuning job (finetune:); the core refuses the other kind once, for every backend
    container: bool = True
    finetune: bool = False
    # runs TPU slices (resources.accelerators: TPU-v5e:8); the core refuses a TPU spec elsewhere
    tpu: bool = False
    # every node learns every node's address (LAUNCH_NODE_ADDRS), not only the master's: frameworks
    # that list all workers (tensorflow's TF_CONFIG) on several nodes are refused by the core elsewhere
    node_addresses: bool = False


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

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))  # UTC
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
        """As dataclasses.asdict (data deep-copied), without its generic walk: written with every submit."""
        return {"backend": self.backend, "job_id": self.job_id, "data": copy.deepcopy(self.data),
                "fast_status": self.fast_status}

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


class LogLine:
    """Output of one node: one complete line, or a block of complete lines joined by "\n"
    (no trailing newline). Blocks let a 100 MB log stream without a Python object per line.
    `cursor` resumes reading right after the last line (opaque to the runner).

    A backend that reads bytes (a log file, an ssh stream) gives them as `data`, and they reach
    stdout as they are, never decoded: `text` decodes only when something asks for it (a tail,
    a filter). A backend whose API answers text gives `text`; `data` encodes it on demand.
    `data` may be a read-only view into a larger chunk the backend read (no copy)."""

    __slots__ = ("_data", "_text", "cursor", "node")

    def __init__(self, text: str | None = None, node: int = 0, cursor: Any = None, *,
                 data: bytes | memoryview | None = None) -> None:
        if (text is None) == (data is None):
            raise TypeError("LogLine takes text or data, one of them")
        self._text = text
        self._data = data
        self.node = node
        self.cursor = cursor

    @property
    def text(self) -> str:
        if self._text is None:  # bytes from a log: what is not UTF-8 shows as U+FFFD, never an error
            self._text = str(self._data, "utf-8", "replace")
        return self._text

    @property
    def data(self) -> bytes | memoryview:
        if self._data is None:
            self._data = self.text.encode("utf-8", "surrogateescape")
        return self._data

    def lines(self) -> list[str]:
        return self.text.split("\n")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogLine):
            return NotImplemented
        return (self.text, self.node, self.cursor) == (other.text, other.node, other.cursor)

    __hash__ = None  # type: ignore[assignment]  # mutable cursor dicts: as the dataclass it replaced

    def __repr__(self) -> str:
        return f"LogLine(text={self.text!r}, node={self.node}, cursor={self.cursor!r})"


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


IDEMPOTENCY_WINDOW_S = 14 * 86400  # how far back an idempotency key is looked for at a provider


class LazySettings:
    """A class attribute that builds the backend's pydantic settings model on first use, so
    importing a backend module (for `launch list`) never imports pydantic:
    `settings_model = LazySettings(make_settings_model)`."""

    def __init__(self, factory: Callable[[], type[BaseModel]]) -> None:
        self.factory = factory

    def __get__(self, obj: object, owner: type) -> type[BaseModel]:
        return self.factory()


class Backend(abc.ABC):
    """A provider plugin, registered in the `launcher.backends` entry-point group.

    Constructed as `Backend(settings, client=None)`: `settings` is the merged
    config + spec section as a dict; `client` injects a provider SDK client (tests
    point it at moto or a local fake). The SDK is imported inside methods only.

    The abstract methods are what every backend answers; the hooks below them have
    working defaults, so a backend overrides one only when it can do better (the runner
    calls them unconditionally, never probing with getattr).
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    settings_model: ClassVar[type[BaseModel]]  # or a LazySettings building it
    # the machine a spec without GPUs gets, when the backend picks one (`launch plan` names it too)
    cpu_instance_type: ClassVar[str | None] = None
    # the setting by which a user pins the machine instead of the catalog (hints name it)
    pinned_type_setting: ClassVar[str] = "instance_type"
    # how the runner retries this backend's calls (the one retry layer): tune attempts, waits, total time
    retry_policy: ClassVar[RetryPolicy] = DEFAULT_RETRY
    # the provider SDK its real calls need (launcher.sdk): the runner asks for it before any call on an
    # existing job, so a missing SDK is the install line (exit 2) whatever the job's record holds
    sdk: ClassVar[Sdk | None] = None
    # what a job's handle must hold for any call on it: a record written by another launch version, or
    # edited by hand, gets one clear error from the runner instead of a KeyError deep in a call
    # (`unusable_handle_fields` says which of them a stored handle lacks or cannot be read from)
    handle_fields: ClassVar[tuple[str, ...]] = ()
    # the instance types and prices it ships (catalog.csv's columns), read by the default catalog_rows
    catalog_csv: ClassVar[Path | None] = None
    # what `launch plan` calls the machines of a backend without catalog prices ("(your cluster)");
    # None: "(your machines)"
    machines_label: ClassVar[str | None] = None

    @classmethod
    def unusable_handle_fields(cls, data: Mapping[str, Any]) -> list[str]:
        """The handle_fields a stored handle lacks. A backend whose fields are parsed (numbers, lists of
        nodes, paths) adds those it holds in a shape it cannot read, so a record from another launch
        version, or edited by hand, is the runner's one clear error rather than a crash inside a call."""
        return [name for name in cls.handle_fields if name not in data]

    @classmethod
    @abc.abstractmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Whether this backend can be used here (SDK, settings, credentials), without network."""

    @abc.abstractmethod
    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        """Pure: no network, clock or randomness. Problems the provider would reject
        (names, limits, unknown sizes) raise SpecError naming the spec field."""

    @abc.abstractmethod
    def submit(self, request: Request) -> Handle:
        """Create the job; idempotent for a job_id (a retried submit finds the first one)."""

    @abc.abstractmethod
    def status(self, handle: Handle) -> Status:
        """A query with no side effects: nothing is stopped, given back or written. What has to
        happen once the job has ended belongs in `finish`."""

    @abc.abstractmethod
    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        """Lines after the cursor `since`. A generator may also return a cursor: where a read moved
        on without a line to show, the runner's follow goes on from there."""

    @abc.abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the job; safe to repeat, and on a job that has already ended."""

    @abc.abstractmethod
    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The provider's launch jobs (created after `since`), for reconciling the store."""

    # -- optional hooks, with working defaults ------------------------------------

    def find(self, idempotency_key: str) -> Summary | None:
        """The provider's recent job carrying this idempotency key. The default scans `list`;
        a backend whose API can filter by tag or label answers directly."""
        since = time.time() - IDEMPOTENCY_WINDOW_S
        return next((s for s in self.list(since=since) if s.idempotency_key == idempotency_key), None)

    def tail(self, handle: Handle, lines: int, *, node: int | None = None) -> tuple[list[LogLine], Any] | None:
        """The last `lines` lines and a cursor after them, for a backend that can read from the end;
        None (the default) makes the runner read the logs through."""
        return None

    def finish(self, handle: Handle, status: Status) -> None:
        """What has to happen once the job has ended: give machines back, save logs. The runner
        calls it when it first sees `status` terminal, and again later only if it raised, so it
        must be safe to repeat. The default has nothing to do."""
        return None

    @classmethod
    def live_capacity(cls, settings: Mapping[str, Any], instance_type: str) -> Mapping[str, bool] | None:
        """Region -> whether `instance_type` can be had now, for `launch plan`; None: cannot tell."""
        return None

    @classmethod
    def price_list(cls, settings: Mapping[str, Any], fetch: Any, instance_types: Sequence[str],
                   regions: Sequence[str]) -> Sequence[Any] | None:
        """Current list prices (launcher.prices.Price rows) from the provider's price list, for
        `launch catalog --refresh`: `fetch.json(url, ...)` reads a page; `instance_types` and
        `regions` are what the shipped catalog holds. None (the default): no price list to read."""
        return None

    @classmethod
    def dry_run_document(cls, request: Request) -> str | None:
        """What `launch run --dry-run` prints in text mode when the provider has a file format of its
        own that its tools read (Kubernetes: manifests for `kubectl apply -f -`). None (the default):
        the request as JSON, as `-o json` always prints it."""
        return None

    @classmethod
    def training_price(cls, settings: Mapping[str, Any], base_model: str) -> Mapping[str, str] | None:
        """For a backend that fine-tunes hosted models: the training price of `base_model` per 1M
        tokens, as a row {"usd_per_1m", "source", "as_of", "note"}, for `launch plan`. None (the
        default): no price known."""
        return None

    @classmethod
    def machine_gpus(cls, settings: Mapping[str, Any]) -> int | None:
        """For a backend that runs every node on this machine: its GPU count. None (the default):
        the backend runs on other machines."""
        return None

    @classmethod
    def catalog_rows(cls) -> Sequence[Mapping[str, str]]:
        """The backend's instance types and prices, in catalog.csv's columns, for the core's
        catalog to merge: its `catalog_csv`, or none."""
        if cls.catalog_csv is None:
            return ()
        from launcher import catalog

        return catalog.rows_from_csv(cls.catalog_csv)
