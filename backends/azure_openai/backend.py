"""The `azure_openai` and `openai` backends: a `finetune:` spec as one hosted fine-tuning job.

One class serves both APIs (they differ in endpoint and auth only, and in where a job carries our
id: render.py); rendering is pure and lives in render.py, the clients and their errors in
client.py. No container runs: the backend declares `container=False, finetune=True`, and the core
refuses a `run:` spec for it (and a `finetune:` spec for every other backend) once, from that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from backends.azure_openai import ids
from backends.azure_openai import render as rendering
from backends.azure_openai.client import OPENAI_SDK, SDK, api_errors, endpoint, make_client
from backends.azure_openai.prices import training_price as price_row
from backends.azure_openai.prices import usd_per_1m
from backends.azure_openai.states import status_of
from launcher.backend import (
    Backend,
    Capabilities,
    Handle,
    LazySettings,
    LogLine,
    Readiness,
    Request,
    Status,
    Summary,
    Upload,
    is_job_id,
    job_name,
    shown_id,
)
from launcher.errors import BackendError

if TYPE_CHECKING:
    from launcher.bundle import Bundle
    from launcher.spec import JobSpec

PAGE = 100
FILE_DONE = {"processed"}
FILE_BAD = {"error", "deleted", "deleting"}


class AzureOpenAIBackend(Backend):
    name: ClassVar[str] = rendering.AZURE
    handle_fields: ClassVar[tuple[str, ...]] = ("ft_job_id",)
    capabilities: ClassVar[Capabilities] = Capabilities(multi_node=False, spot=False, log_poll_s=1.0,
                                                        container=False, finetune=True)
    settings_model = LazySettings(lambda: rendering.settings_model(rendering.AZURE))
    sdk = SDK
    machines_label: ClassVar[str | None] = "(hosted fine-tuning)"

    def __init__(self, settings: Mapping[str, Any] | None = None, client: Any = None) -> None:
        # validated here too: status/logs/cancel build the backend from config.toml alone
        self.settings = rendering.settings_model(self.name).model_validate(dict(settings or {})).model_dump()
        self._api = client
        self._creates: set[str] = set()  # job ids this process has sent a create for

    # -- configuration -----------------------------------------------------------

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        """Cheap checks only (no SDK import, no network): SDK, an endpoint, a key or Entra ID."""
        if (absent := SDK.readiness()) is not None:
            return absent
        where = endpoint(settings)
        if not where:
            return Readiness(True, False, "not configured", "set backends.azure_openai.endpoint or "
                             "AZURE_OPENAI_ENDPOINT")
        auth = "AZURE_OPENAI_API_KEY" if os.environ.get("AZURE_OPENAI_API_KEY") else "Entra ID"
        return Readiness(True, True, f"{where} ({auth})")

    @classmethod
    def training_price(cls, settings: Mapping[str, Any], base_model: str) -> Mapping[str, str] | None:
        return price_row(cls.name, base_model)

    def _client(self) -> Any:
        if self._api is None:
            with api_errors(self.name):
                self._api = make_client(self.name, self.settings)
        return self._api

    # -- render ------------------------------------------------------------------

    def render(self, spec: JobSpec, job_id: str, bundle: Bundle | None,
               secrets: Mapping[str, str], *, idempotency_key: str | None = None) -> Request:
        return rendering.render(self.name, self.settings, spec, job_id, idempotency_key)

    # -- submit ------------------------------------------------------------------

    def submit(self, request: Request) -> Handle:
        """Upload each local file unless the service has it already (by content), wait until it is
        processed, then create the job. A create retried after a lost answer first looks for the
        job carrying this job id."""
        client = self._client()
        ids = {upload.destination: self._upload(client, upload) for upload in request.uploads}
        body = rendering.with_file_ids(request.payload, ids)
        found = self._by_job_id(request.job_id) if request.job_id in self._creates else None
        if found is not None:
            return found.handle
        self._creates.add(request.job_id)
        with api_errors(self.name):
            job = client.fine_tuning.jobs.create(**body)
        return self._handle(request.job_id, job.id)

    def _handle(self, job_id: str, ft_id: Any) -> Handle:
        if not is_job_id(ft_id):
            raise BackendError(f"{self.name} answered with an unusable fine-tuning job id {shown_id(ft_id)}")
        return Handle(self.name, job_id, {"ft_job_id": str(ft_id)})

    def _upload(self, client: Any, upload: Upload) -> str:
        """The id of a processed file with this content: one already there, or this one uploaded."""
        assert upload.source is not None
        with api_errors(self.name):
            listed = client.files.list(purpose="fine-tune")
            # Azure's 2024-10-21 list is one page (no `after` parameter: paging on would ask again
            # forever); OpenAI's pages by cursor
            files = listed.data if self.name == rendering.AZURE else listed
            known = [f for f in files if f.filename == upload.destination and (f.status or "processed") not in FILE_BAD]
            if known:
                file = known[0]
            else:
                with upload.source.open("rb") as handle:
                    file = client.files.create(file=(upload.destination, handle), purpose="fine-tune")
            return self._processed(client, file, upload)

    def _processed(self, client: Any, file: Any, upload: Upload) -> str:
        """Waits until the service has checked the file (Azure: pending, running, then processed or
        error); a file it rejects is one error naming the file and the service's reason."""
        deadline = time.monotonic() + float(self.settings["file_wait"])
        while True:
            status = file.status or "processed"
            if status in FILE_DONE:
                return str(file.id)
            if status in FILE_BAD:
                reason = getattr(file, "status_details", None) or status
                raise BackendError(f"{self.name} rejected {upload.source} ({upload.destination}): {reason}",
                                   "fix the file (`launch validate` checks the lines' shape here; the service "
                                   "also checks token limits and content) and run again")
            if time.monotonic() > deadline:
                raise BackendError(f"{self.name} has not processed {upload.source} after "
                                   f"{self.settings['file_wait']:g}s (status {status})",
                                   "run again later: the upload is found by its content, not sent again")
            time.sleep(float(self.settings["file_poll_s"]))
            file = client.files.retrieve(file.id)

    # -- status ------------------------------------------------------------------

    def _job(self, handle: Handle) -> dict[str, Any]:
        client = self._client()
        with api_errors(self.name):
            return client.fine_tuning.jobs.retrieve(handle.data["ft_job_id"]).to_dict()

    def status(self, handle: Handle) -> Status:
        job = self._job(handle)
        return status_of(job, usd_per_1m(self.name, str(job.get("model") or "")))

    # -- logs --------------------------------------------------------------------

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Generator[LogLine, None, dict[str, Any]]:
        """The job's events, oldest first, then (once the job has ended) its training metrics from
        the result file. The cursor is {"events": how many shown, "metrics": shown}: events are
        append-only, so a resumed read shows the new ones only."""
        cursor = {"events": 0, "metrics": False, **(since or {})}
        if node not in (None, 0):
            return cursor
        job = self._job(handle)  # first: a job that ended has all its events listed below
        client = self._client()
        with api_errors(self.name):
            events = list(client.fine_tuning.jobs.list_events(handle.data["ft_job_id"], limit=PAGE))
        events.reverse()  # the API lists newest first
        new = events[int(cursor["events"]):]
        if new:
            cursor = {**cursor, "events": len(events)}
            yield LogLine("\n".join(_event_line(e) for e in new), 0, dict(cursor))
        if map_terminal(job) and not cursor["metrics"]:
            lines = self._metrics(client, job)
            cursor = {**cursor, "metrics": True}
            if lines:
                yield LogLine("\n".join(lines), 0, dict(cursor))
        return cursor

    def _metrics(self, client: Any, job: Mapping[str, Any]) -> list[str]:
        """The result file (CSV: step, train_loss, ...) as one line per step."""
        files = job.get("result_files") or []
        if not files:
            return []
        import csv
        import io

        with api_errors(self.name):
            text = client.files.content(str(files[0])).text
        rows = list(csv.DictReader(io.StringIO(text)))
        return [f"metrics step {row.get('step', '?')}: " + " ".join(
            f"{k}={v}" for k, v in row.items() if k != "step" and v not in (None, "")) for row in rows]

    # -- cancel ------------------------------------------------------------------

    def cancel(self, handle: Handle) -> None:
        """Cancel, unless the job has already ended (it keeps its result and its model)."""
        if self.status(handle).state.is_terminal:
            return
        client = self._client()
        try:
            with api_errors(self.name):
                client.fine_tuning.jobs.cancel(handle.data["ft_job_id"])
        except BackendError:
            if not self.status(handle).state.is_terminal:  # ended between the two calls: nothing to stop
                raise

    # -- list --------------------------------------------------------------------

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        """The fine-tuning jobs that carry a launch job id, newest first, for `launch list --sync`."""
        return (summary for summary, _ in self._marked(since))

    def find(self, idempotency_key: str) -> Summary | None:
        """The recent job submitted with this key: by the key itself (OpenAI's metadata) or by its
        hash (Azure's suffix)."""
        mark = ids.key_mark(idempotency_key)
        since = time.time() - 14 * 86400
        return next((s for s, found in self._marked(since) if found == mark), None)

    def _by_job_id(self, job_id: str) -> Summary | None:
        return next((s for s in self.list(since=time.time() - 86400) if s.handle.job_id == job_id), None)

    def _marked(self, since: float | None) -> Iterator[tuple[Summary, str | None]]:
        client = self._client()
        with api_errors(self.name):
            for item in client.fine_tuning.jobs.list(limit=PAGE):
                job = item.to_dict()
                created = job.get("created_at")
                if since and isinstance(created, (int, float)) and created < since:
                    return  # newest first: the rest are older
                job_id, key, mark = ids.marks(job)
                if not is_job_id(job_id) or not is_job_id(job.get("id")):
                    continue  # not ours, or a suffix someone else wrote: never a path or a store key
                assert job_id is not None
                status = status_of(job, usd_per_1m(self.name, str(job.get("model") or "")))
                yield (Summary(self._handle(job_id, job["id"]), job_name(job_id), status,
                               created_at=float(created) if isinstance(created, (int, float)) else None,
                               idempotency_key=key), mark)


class OpenAIBackend(AzureOpenAIBackend):
    """The same jobs on OpenAI's own API: another endpoint, OPENAI_API_KEY, metadata for our ids."""

    name: ClassVar[str] = rendering.OPENAI
    settings_model = LazySettings(lambda: rendering.settings_model(rendering.OPENAI))
    sdk = OPENAI_SDK
    machines_label: ClassVar[str | None] = "(hosted fine-tuning)"

    @classmethod
    def readiness(cls, settings: Mapping[str, Any]) -> Readiness:
        if (absent := OPENAI_SDK.readiness()) is not None:
            return absent
        if not os.environ.get("OPENAI_API_KEY"):
            return Readiness(True, False, "no OPENAI_API_KEY", "export OPENAI_API_KEY")
        return Readiness(True, True, settings.get("base_url") or "https://api.openai.com/v1")


def map_terminal(job: Mapping[str, Any]) -> bool:
    from backends.azure_openai.states import STATES

    state = STATES.get(str(job.get("status") or ""))
    return state is not None and state.is_terminal


def _event_line(event: Any) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.created_at)) if event.created_at else "-"
    return f"{when} {event.level or 'info'}: {event.message}"
