"""The `azure_openai` / `openai` backends' pure half: settings and the exact create body.

Kept apart from the SDK-facing modules so a dry run never imports `openai`. The body uses the
API's own field names (`fine_tuning.jobs.create`), as Azure's published 2024-10-21 definition
(FineTuningJobCreation) and OpenAI's API name them; submit hands it to the client unchanged,
after putting the uploaded files' ids where the body names a local file by its content.

Which launch job a fine-tuning job is: Azure's 2024-10-21 API has no metadata on a job, only
`suffix` (40 characters of a-z, A-Z, 0-9, - and _), which it returns with the job. So the suffix
carries the job id in a reversible short form and a hash of the idempotency key. OpenAI's API has
`metadata`, which carries both as they are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backends.azure_openai.ids import IDEMPOTENCY_KEY, JOB_ID_KEY, suffix_for
from launcher.backend import Request, Upload
from launcher.errors import SpecError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.spec import JobSpec

AZURE = "azure_openai"
OPENAI = "openai"
OPERATION = "fine_tuning.jobs.create"
DEFAULT_API_VERSION = "2024-10-21"
MAX_SUFFIX = 40  # Azure's FineTuningJobCreation.suffix: up to 40 characters
UPLOAD_PREFIX = "launch-"  # uploaded files are named launch-<sha256 of the content>.jsonl


@functools.cache
def settings_model(name: str) -> type[BaseModel]:
    """`backends.azure_openai` (the resource's endpoint and API version) or `backends.openai` (an
    optional base URL and organization). Keys come from the environment, never from here."""
    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class Common(BaseModel):
        model_config = ConfigDict(extra="forbid")
        file_wait: float = Field(600.0, gt=0, le=86400,
                                 description="seconds to wait for an uploaded file to be processed")
        file_poll_s: float = Field(2.0, gt=0, le=60, description="seconds between two looks at an upload")

    if name == OPENAI:
        class OpenAISettings(Common):
            base_url: str | None = Field(None, pattern=r"^https?://\S+$", examples=["https://api.openai.com/v1"],
                                         description="default: OPENAI_BASE_URL or https://api.openai.com/v1")
            organization: str | None = Field(None, pattern=r"^org-[A-Za-z0-9]+$", examples=["org-abc123"],
                                             description="an OpenAI organization id")
            project: str | None = Field(None, pattern=r"^proj_[A-Za-z0-9]+$", examples=["proj_abc123"],
                                        description="an OpenAI project id")

        return OpenAISettings

    class AzureOpenAISettings(Common):
        endpoint: str | None = Field(None, pattern=r"^https?://\S+$", examples=["https://my-res.openai.azure.com"],
                                     description="the resource's endpoint; default: AZURE_OPENAI_ENDPOINT")
        api_version: str = Field(DEFAULT_API_VERSION, pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$",
                                 examples=[DEFAULT_API_VERSION, "2025-04-01-preview"],
                                 description="the data-plane API version")
        auth: str = Field("auto", pattern=r"^(auto|key|entra)$", examples=["auto", "entra"],
                          description="key: AZURE_OPENAI_API_KEY; entra: DefaultAzureCredential; "
                                      "auto: the key when it is set, else Entra ID")

        @field_validator("api_version", mode="before")
        @classmethod
        def _dated(cls, value: object) -> object:
            """YAML reads an unquoted 2024-10-21 as a date: the version is that date, written out."""
            return value.isoformat() if hasattr(value, "isoformat") else value

    return AzureOpenAISettings


def upload_name(digest: str) -> str:
    """The name a local file is uploaded under: its content's sha256, so an unchanged file is found
    at the service and not uploaded again (and a changed one under the same path is)."""
    return f"{UPLOAD_PREFIX}{digest[:40]}.jsonl"


def render(name: str, settings: Mapping[str, Any], spec: JobSpec, job_id: str,
           idempotency_key: str | None) -> Request:
    """The create body and the uploads it needs. Pure: the local files are read (for their
    names), nothing is sent, no clock or randomness."""
    from launcher import finetune_data

    ft = spec.finetune
    if ft is None:  # the core refuses a container spec before render; this is for direct callers
        raise SpecError([spec.problem("run", f"the {name} backend fine-tunes hosted models: give finetune:")])
    try:
        checked = {report.file: report.digest for report in finetune_data.reports(ft)}  # the first bad line
    except finetune_data.BadData as exc:  # is said before anything is uploaded
        raise SpecError([exc.problem]) from None
    problems = []
    uploads: list[Upload] = []
    body: dict[str, Any] = {"model": ft.base_model}
    for key in ("training_file", "validation_file"):
        value = getattr(ft, key)
        if value is None:
            continue
        if Path(value).is_absolute():
            remote = upload_name(checked[str(Path(value))])  # the content checked, named by its digest
            uploads.append(Upload(Path(value), remote))
            body[key] = remote
        else:
            body[key] = value
    knobs = {k: v for k, v in ft.hyperparameters.model_dump().items() if v != "auto"}
    if ft.method != "dpo" and "beta" in knobs:
        problems.append(spec.problem("finetune.hyperparameters.beta", "beta is for method: dpo; remove it"))
        knobs.pop("beta")
    suffix = suffix_for(ft.suffix, job_id, idempotency_key if name == AZURE else None)
    if name == AZURE:
        preview = str(settings.get("api_version") or "").endswith("-preview")
        if ft.method == "dpo" and not preview:
            problems.append(spec.problem("finetune.method", f"Azure OpenAI's API {settings.get('api_version')} has "
                                         "no method: dpo (it came with the 2025 previews): set backends.azure_openai."
                                         "api_version to e.g. 2025-04-01-preview, or use method: supervised"))
        if suffix is None or len(suffix) > MAX_SUFFIX:
            problems.append(spec.problem("name", f"Azure keeps which launch job this is in the model's suffix (at "
                                         f"most {MAX_SUFFIX} characters), with finetune.suffix: {suffix!r} is too "
                                         "long; shorten name: (to about 15 characters) or finetune.suffix:"))
        if ft.method == "dpo" and preview:
            body["method"] = _method(ft.method, knobs)
        elif knobs:
            body["hyperparameters"] = knobs
        if suffix:
            body["suffix"] = suffix
    else:
        body["method"] = _method(ft.method, knobs)
        if ft.suffix:
            body["suffix"] = ft.suffix
        body["metadata"] = {JOB_ID_KEY: job_id, **({IDEMPOTENCY_KEY: idempotency_key} if idempotency_key else {})}
    if ft.seed is not None:
        body["seed"] = ft.seed
    if problems:
        raise SpecError(problems)
    return Request(name, job_id, OPERATION, body, tuple(uploads))


def _method(method: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's `method` block: the hyperparameters live under the method's own key."""
    return {"type": method, method: {"hyperparameters": knobs}}


def with_file_ids(payload: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, Any]:
    """The body as sent: each uploaded file's name replaced by the id the service gave it."""
    return {key: ids.get(value, value) if key in ("training_file", "validation_file") else value
            for key, value in payload.items()}
