"""The job spec: one YAML file that every backend turns into its own job.

Validation reports every problem at once with file:line, the field path and what
to do, because a user fixing a spec one error per run loses minutes each time.
This module imports pydantic, so the CLI imports it only for commands that read
a spec (run, validate, schema), never for list/status/logs.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from launcher import accelerators, config, durations, logs, settings_cache, yaml_source
from launcher.errors import LaunchError, Problem, SpecError, UsageError
from launcher.memo import Bounded


def _no_pydantic_plugin_scan() -> None:
    """The first model pydantic builds makes it scan every installed distribution's entry points for
    pydantic plugins (~20 ms with the provider SDKs installed: a tenth of a dry run); launch uses none.
    An empty plugin table says so. (PYDANTIC_DISABLE_PLUGINS would too, but would reach the jobs that
    launch starts.) A pydantic without this table is left as it is."""
    from pydantic.plugin import _loader

    if getattr(_loader, "_plugins", ()) is None:
        _loader._plugins = {}


_no_pydantic_plugin_scan()

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
RESERVED_ENV_PREFIX = "LAUNCH_"
MINIMUM_BOUND = 1_000_000  # cpus / memory_gb: more than any machine has, so a typo'd extra digit is caught


def _accelerator(value: Any) -> accelerators.Accelerator:
    if isinstance(value, accelerators.Accelerator):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'a count alone is not enough; write the type too, e.g. "H100:{value}"')
    return accelerators.parse(value)


def _minimum(value: Any) -> float:
    """'16+' and 16 both mean "at least 16": the spec states minimums."""
    if isinstance(value, bool):
        raise ValueError("expected a number such as 16 or 16+")
    if isinstance(value, str):
        text = value.strip().removesuffix("+")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number; write e.g. 16 or 16+") from None
    if not isinstance(value, (int, float)):
        raise ValueError("expected a positive number such as 16 or 16+")
    if not 0 < value < MINIMUM_BOUND:
        raise ValueError(f"expected a number above 0 and below {MINIMUM_BOUND:,} (a minimum such as 16 or 16+); "
                         f"got {_number(value)}")
    return value


def _number(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10 ** 15:
        return f"a number with about {int(value.bit_length() * 0.30103) + 1} digits"
    return f"{int(value):,}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _distributed(value: Any) -> Any:
    """`distributed: none` says "no wrapper" as plainly as leaving the key out."""
    return None if isinstance(value, str) and value.strip().lower() == "none" else value


def _env_value(value: Any) -> str:
    """YAML turns `EPOCHS: 3` into an int; the environment only holds strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ValueError("environment values must be strings or numbers")


AcceleratorField = Annotated[
    accelerators.Accelerator,
    BeforeValidator(_accelerator),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": 'Per node, "TYPE[:COUNT]" or "cpu"; a TPU slice "TPU-v5e:8"',
                    "examples": ["H100:8", "A100-80GB:8", "L4", "T4:1", "TPU-v5e:8", "cpu"]}),
]
Duration = Annotated[
    int,
    BeforeValidator(durations.parse_seconds),
    WithJsonSchema({"type": ["string", "integer"], "description": "24h, 90m, 1h30m, 2d or seconds",
                    "examples": ["24h", "90m"]}),
]
Minimum = Annotated[
    float,
    BeforeValidator(_minimum),
    WithJsonSchema({"type": ["string", "number"], "description": 'A minimum: 16 or "16+"'}),
]
# Linux refuses a single environment string over 128 KiB when starting a process.
EnvValue = Annotated[str, BeforeValidator(_env_value, json_schema_input_type=str | int | float | bool),
                     Field(max_length=65536)]


# job fields a `backends.<name>` section may set for that backend alone (JobSpec.for_backend), and the rest of a
# section: defined with the settings cache, which `launch status`/`logs` reach without importing this module
from launcher.settings_cache import PORTABLE_FIELDS, backend_settings  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Resources(_Strict):
    """What each node needs; accelerators are per node."""

    accelerators: AcceleratorField = accelerators.Accelerator(accelerators.CPU, 0)
    nodes: int = Field(1, ge=1, le=512, description="Number of nodes (machines)")
    cpus: Minimum | None = None
    memory_gb: Minimum | None = None
    disk_gb: int | None = Field(None, ge=1, le=65536)


FILE_ID = r"^file-[A-Za-z0-9_-]{1,128}$"  # a file already at the fine-tuning service


class FineTuneHyperparameters(_Strict):
    """The service's own knobs; "auto" (the default) leaves the choice to the service."""

    n_epochs: Annotated[int, Field(ge=1, le=50)] | Literal["auto"] = "auto"
    batch_size: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = "auto"
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=10)] | Literal["auto"] = "auto"
    beta: Annotated[float, Field(gt=0, le=2)] | Literal["auto"] = Field(
        "auto", description="dpo only: how far the model may move from the base model")


class FineTune(_Strict):
    """A hosted fine-tuning job (Azure OpenAI, OpenAI): no container, no machines; a base model,
    JSONL files and hyperparameters. Exclusive with image/run/resources."""

    base_model: str = Field(min_length=1, max_length=256, description="The model to fine-tune")
    training_file: str = Field(min_length=1, max_length=4096, description=(
        "A local JSONL file (relative to the spec, uploaded) or the id of an uploaded one (file-...)"))
    validation_file: str | None = Field(None, min_length=1, max_length=4096)
    method: Literal["supervised", "dpo"] = "supervised"
    hyperparameters: FineTuneHyperparameters = Field(default_factory=FineTuneHyperparameters)
    suffix: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,40}$", examples=["support"],
                               description="Added to the fine-tuned model's name: letters, digits and '-'")
    seed: int | None = Field(None, ge=0, le=2_147_483_647)


# the fields of a container job: a `finetune:` spec has none of them
CONTAINER_FIELDS = ("image", "code", "setup", "run", "resources", "distributed", "checkpoint_dir")


class JobSpec(_Strict):
    """A training job as the user writes it, independent of any provider: a command run in a
    container (run:) or a hosted fine-tuning job (finetune:)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True,
                              json_schema_extra={"oneOf": [{"required": ["run"]}, {"required": ["finetune"]}]})

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63, examples=["bert-finetune"],
                      description="Letters, digits, '.', '_' and '-'; at most 63 characters")
    image: str | None = Field(None, min_length=1, max_length=512)
    code: str | None = Field(None, min_length=1, description="Directory packed and unpacked as the working dir")
    setup: str | None = Field(None, max_length=65536)
    run: str | None = Field(None, min_length=1, max_length=65536, description="Shell command line of the job")
    finetune: FineTune | None = None
    env: dict[Annotated[str, Field(pattern=ENV_NAME, max_length=256)], EnvValue] = Field(default_factory=dict)
    secrets: list[Annotated[str, Field(pattern=ENV_NAME, max_length=256)]] = Field(
        default_factory=list, description="Names read from the submitter's environment; never stored or printed")
    resources: Resources = Field(default_factory=Resources)
    # "none" is read as None before this check; it is listed so errors and the schema offer it
    distributed: Annotated[Literal["torchrun", "jax", "tensorflow", "paddle", "none"] | None,
                           BeforeValidator(_distributed)] = Field(
        None, description="torchrun / paddle: wrap run in torchrun / paddle.distributed.launch with the right "
        "rendezvous; jax / tensorflow: run it once per node with JAX_* / TF_CONFIG set; none (default): run it as is")
    spot: bool = False
    max_runtime: Duration | None = None
    retries: int = Field(0, ge=0, le=10)
    checkpoint_dir: str | None = Field(None, pattern=r"^/", examples=["/checkpoints"],
                                       description="an absolute path on each node")
    outputs: str | None = Field(None, min_length=1)
    backends: dict[str, Any] = Field(default_factory=dict, description="Per-backend settings, checked by each backend")
    _source: yaml_source.SourceMap | None = PrivateAttr(default=None)

    @field_validator("run", mode="before")
    @classmethod
    def _run_not_blank(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("run is empty; give the command to run, e.g. run: python train.py")
        return value

    @field_validator("env")
    @classmethod
    def _no_reserved_env(cls, env: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in env if k.startswith(RESERVED_ENV_PREFIX))
        if reserved:
            raise ValueError(f"{', '.join(reserved)}: names starting with LAUNCH_ are set by the launcher; rename them")
        return env

    @property
    def file(self) -> str:
        """The spec file it was read from, as errors name it ("the spec" when rebuilt from a record)."""
        return self._source.file if self._source is not None else "the spec"

    @property
    def accelerator(self) -> accelerators.Accelerator:
        return self.resources.accelerators

    def problem(self, path: str, message: str) -> Problem:
        """A problem a backend found in this spec, located at the field's file:line. A backend
        setting is found where it was set (spec, --set or config.toml); one set nowhere points at
        its backend's section, or says so."""
        parts = tuple(path.split("."))
        if self._source is None:
            return Problem("the spec", None, path, message)
        source = self._source
        if len(parts) < 3 or parts[0] != "backends":
            return source.problem(parts, message)
        written = source.origin(parts, depth=3)  # the setting itself, in the file or a --set flag
        if written is None and parts[:2] in source.overridden:  # --set backends.x={...}
            written = source.origin(parts[:2], depth=2)
        if written is None:
            written = config.locate(parts)
        if written is None and parts[:2] in source.lines:  # the backend's section
            written = source.file, source.lines[parts[:2]]
        if written is None:
            return Problem(source.file, None, path, f"{message}; not set anywhere (spec, {config.config_path()}, "
                           "--set)")
        return Problem(written[0], written[1], path, message)

    def to_record(self) -> dict[str, Any]:
        """The spec as stored: plain JSON. Secrets are names only, never values."""
        return self.model_dump(mode="json", exclude_none=True)

    def for_backend(self, backend: str) -> JobSpec:
        """This spec as `backend` runs it: a job field set in `backends.<backend>` (PORTABLE_FIELDS:
        outputs) replaces the spec's own, so one spec carries an s3:// path for SageMaker and a
        gs:// path for Vertex. The section keeps the key; settings readers drop it (backend_settings)."""
        section = self.backends.get(backend)
        update = {key: section[key] for key in PORTABLE_FIELDS if key in section} if isinstance(section, dict) else {}
        if not update:
            return self
        copy = self.model_copy(update=update)
        copy._source = self._source
        return copy

    def with_backend_settings(self, backend: str, settings: dict[str, Any]) -> JobSpec:
        """This spec with `backends.<backend>` replaced by the effective settings."""
        copy = self.model_copy(update={"backends": {**self.backends, backend: settings}})
        copy._source = self._source
        return copy


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema, `backends.<name>` included for every installed backend, so an editor
    completes and checks `backends.sagemaker:` as the loader does."""
    schema = JobSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "launch job spec"
    backends = schema["properties"]["backends"]
    backends.update(_backends_schema(schema.setdefault("$defs", {})))
    return schema


def _backends_schema(defs: dict[str, Any]) -> dict[str, Any]:
    """Each installed backend's settings model (the registry's; importing a backend module imports
    no SDK), its sub-models filed under `<backend>__<Model>` in the shared $defs. Sections of this
    project's backends that are not installed here stay open, as the loader only warns on them."""
    from launcher import registry

    sections: dict[str, Any] = {}
    for name in registry.names():
        try:
            model = registry.settings_model(name)
        except LaunchError as exc:  # a broken plugin: its section goes unchecked, as `backends` says
            logs.get().warning("backends.%s is left out of the schema: %s", name, exc.message)
            continue
        section = model.model_json_schema(ref_template=f"#/$defs/{name}__{{model}}")
        for key, definition in section.pop("$defs", {}).items():
            defs[f"{name}__{key}"] = definition
        section.setdefault("properties", {})["outputs"] = {  # PORTABLE_FIELDS: the job's, for this backend
            "type": "string", "minLength": 1, "description": "outputs for this backend only (replaces outputs:)"}
        sections[name] = {"anyOf": [section, {"type": "null"}]}
    for name in registry.PROJECT_BACKENDS:
        sections.setdefault(name, {"type": ["object", "null"]})
    return {"properties": dict(sorted(sections.items())), "additionalProperties": False}


MAX_OVERRIDE_DEPTH = 50  # as deep as the spec file's own loader allows


def parse_overrides(items: list[str] | tuple[str, ...]) -> list[tuple[tuple[str, ...], Any, str]]:
    """`--set key.path=value` into (path, YAML-typed value, the flag as messages show it)."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        shown = item if len(item) <= 200 else f"{item[:200]}... ({len(item)} characters)"  # messages stay short
        path = tuple(key.strip().split("."))
        if not sep or not all(re.fullmatch(r"[A-Za-z0-9_-]+", p) for p in path):
            raise UsageError(f"--set {shown!r}: expected KEY.PATH=VALUE", "e.g. --set resources.nodes=2")
        if len(path) > MAX_OVERRIDE_DEPTH or len(item) > yaml_source.MAX_SPEC_BYTES:
            raise UsageError(f"--set {shown!r}: too long or too deep for a job spec field",
                             "put large values in the spec file or the job's own files")
        if path[0] == "env":  # environment values are text: 0123 must stay 0123
            value: Any = raw
        else:
            # the spec file's loader, with its limits (aliases, nesting, digits); what is not YAML stays text
            try:
                value = yaml_source.load(raw, f"--set {path[0]}")[0] if raw.strip() else ""
            except SpecError:
                value = raw
        out.append((path, value, shown))
    return out


def _apply_override(data: dict[str, Any], path: tuple[str, ...], value: Any, text: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UsageError(f"--set {text!r}: {part!r} is not a mapping in the spec")
        node = child
    node[path[-1]] = value


@dataclass(frozen=True)
class SpecFile:
    """A spec file read and parsed once, `--set` applied: every job a command builds from it (one,
    or one per sweep point with `${name}` filled in) comes from this data and its source map, so the
    YAML is never read or parsed again and every error still names the file's lines."""

    file: str
    data: dict[str, Any]
    source: yaml_source.SourceMap
    base_dir: Path | None = None
    # each `backends.<name>` section's problems by what it holds: sweep points that share a
    # section (most do: `${name}` is rarely in settings) have it checked once
    sections: dict[tuple[str, str], list[Problem]] = field(default_factory=dict, compare=False, repr=False)
    # what validating this data found, by sweep point (see _Checked); only specs that passed
    checked: Bounded[tuple[tuple[str, str], ...], _Checked] = field(
        default_factory=lambda: Bounded(MAX_CHECKED_POINTS), compare=False, repr=False)

    def job(self, params: Mapping[str, str] | None = None) -> JobSpec:
        """The validated job spec (for the sweep point `params`); SpecError lists every problem.

        What follows from the data alone (the models, the backend sections) is checked once per
        point; what the file system holds (the code directory, fine-tuning files) every time."""
        point = tuple((params or {}).items())
        problems: list[Problem] = []
        checked = self.checked.get(point)
        if checked is None:
            checked = _checked(copy.deepcopy(self.data), self.source, params, self.sections, problems)
            if not problems and checked.spec is not None:  # a refused spec is checked afresh, for its message
                self.checked[point] = checked
        _say(checked.warnings)
        return _located(checked, self.source, self.base_dir, problems)


@dataclass(frozen=True)
class _Checked:
    """The part of a spec's validation that depends on its data alone: the model as validated (before
    `code:` and fine-tuning files are looked up on disk) and the warnings validating it gave."""

    spec: JobSpec | None
    warnings: tuple[str, ...]


MAX_CHECKED_POINTS = 64  # a sweep builds each point once anyway; this bounds what one file keeps
# spec texts read within one process, by (path, text, overrides, directory)
_PARSED: Bounded[tuple[str, str, tuple[str, ...], str], SpecFile] = Bounded(16)


def read_spec(file: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SpecFile:
    """Read and parse a spec file and apply `--set`, once per command; `.job()` validates it."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such spec file", "check the path; `launch validate FILE` checks a spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read spec: {exc}") from None
    # The file is read every time and its whole text is the key: an edit is parsed and validated
    # afresh however soon after the last read it was made (no mtime granularity to trust). The same
    # text gets the same SpecFile back, with what validating it found (SpecFile.job).
    key = (str(path), text, tuple(overrides), str(path.parent))
    known = _PARSED.get(key)
    if known is not None:
        return known
    _PARSED[key] = parsed = spec_text(text, str(path), overrides, base_dir=path.parent)
    return parsed


def spec_text(text: str, file: str, overrides: list[str] | tuple[str, ...] = (),
              base_dir: Path | None = None) -> SpecFile:
    """A SpecFile from text already read (`file` names it in errors)."""
    data, source = yaml_source.load(text, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError([Problem(file, 1, "", "a job spec is a YAML mapping (name:, run:, ...); "
                                 f"this file holds a {type(data).__name__}")])
    for opath, value, original in parse_overrides(overrides):
        source.overridden[opath] = original
        for end in range(1, len(opath)):  # a typo'd parent key is the flag's fault, not the file's
            if opath[:end] not in source.lines:
                source.created.setdefault(opath[:end], original)
        _apply_override(data, opath, value, original)
    return SpecFile(file, data, source, base_dir)


def load_spec(file: str | Path, overrides: list[str] | tuple[str, ...] = (),
              params: Mapping[str, str] | None = None) -> JobSpec:
    """Read, override and validate a spec file; SpecError lists every problem. `params` (a sweep
    point) fill `${name}` in every string and reach the job as env vars."""
    return read_spec(file, overrides).job(params)


def parse_spec(text: str, file: str, overrides: list[str] | tuple[str, ...] = (),
               base_dir: Path | None = None, params: Mapping[str, str] | None = None) -> JobSpec:
    return spec_text(text, file, overrides, base_dir).job(params)


def _checked(data: dict[str, Any], source: yaml_source.SourceMap, params: Mapping[str, str] | None,
             sections: dict[tuple[str, str], list[Problem]], problems: list[Problem]) -> _Checked:
    """What the data alone says: the validated model (None when it does not validate) and the
    warnings; problems are appended to `problems`."""
    if params:
        data = _substitute(data, params)
        env = data.get("env")
        if env is None or isinstance(env, dict):  # anything else is reported as the file's problem
            data["env"] = {**(env or {}), **params}
    problems.extend(_kind_problems(data, source))
    spec: JobSpec | None = None
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problems(exc, source, JobSpec, ()))
    if spec is not None:
        for index, name in enumerate(spec.secrets):
            if name in spec.secrets[:index]:
                problems.append(source.problem(("secrets", index), f"{name} is listed twice; keep one"))
            if name in spec.env:
                problems.append(source.problem(("secrets", index), f"{name} is both in env and in secrets; "
                                               "keep it only in secrets"))
    warnings: list[str] = []
    backends = data.get("backends")
    if isinstance(backends, dict):
        problems.extend(_backend_problems(backends, source, sections, warnings))
    return _Checked(spec, tuple(warnings))


def _say(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        logs.get().warning("%s", warning)


def _located(checked: _Checked, source: yaml_source.SourceMap, base_dir: Path | None,
             problems: list[Problem]) -> JobSpec:
    """The spec with `code:` and its fine-tuning files found on disk (made absolute), as they are
    now; SpecError with every problem (`problems`, and what is missing on disk). The disk is asked
    every time (a copy with what it found costs ~2 us)."""
    spec, code, files = checked.spec, None, {}
    if spec is not None and spec.code is not None:
        code_dir = (base_dir or Path(".")) / spec.code
        why = _code_dir_problem(code_dir)
        if why:
            problems.append(source.problem(("code",), why))
        else:
            code = os.path.realpath(code_dir)  # as Path.resolve(), with less work
    if spec is not None and spec.finetune is not None:
        files = _local_files(spec, base_dir, source, problems)
    if problems or spec is None:
        raise SpecError(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    located = spec if code is None else spec.model_copy(update={"code": code})
    if files:
        assert located.finetune is not None
        located = located.model_copy(update={"finetune": located.finetune.model_copy(update=files)})
    located._source = source
    return located


def _kind_problems(data: dict[str, Any], source: yaml_source.SourceMap) -> list[Problem]:
    """A spec is a container job (run:) or a fine-tuning job (finetune:), never both and never
    neither: said per field, with what to do."""
    if "finetune" not in data:
        if "run" in data:
            return []
        return [source.problem(("run",), "required field is missing; " + _MISSING_HINTS["run"]
                               + " (or a finetune: section for a hosted fine-tuning job)")]
    return [source.problem((key,), f"a finetune: job trains a hosted model and has no {key}: remove it, "
                           "or remove finetune: to run a container job") for key in CONTAINER_FIELDS if key in data]


def _local_files(spec: JobSpec, base_dir: Path | None, source: yaml_source.SourceMap,
                 problems: list[Problem]) -> dict[str, str]:
    """finetune's training/validation files: a local file (made absolute, as code: is) or a file id;
    the absolute paths by key."""
    assert spec.finetune is not None
    update: dict[str, str] = {}
    for key in ("training_file", "validation_file"):
        value = getattr(spec.finetune, key)
        if value is None:
            continue
        path = (base_dir or Path(".")) / value
        try:
            is_file = os.path.isfile(path)
        except OSError:
            is_file = False
        if is_file:
            update[key] = os.path.realpath(path)  # as Path.resolve()
        elif not re.fullmatch(FILE_ID, value):
            problems.append(source.problem(("finetune", key), f"no file {str(path)!r}; give a JSONL file (relative "
                                           "to the spec file's directory) or an uploaded file's id (file-...)"))
    return update


def _code_dir_problem(code_dir: Path) -> str | None:
    """Why `code:` cannot be packed, or None when it names a directory."""
    try:
        if code_dir.is_dir():
            return None
        if code_dir.is_file():
            return f"{str(code_dir)!r} is a file; code: names the directory to pack (e.g. code: ./src)"
    except OSError as exc:  # a name too long for the file system, a loop of symlinks
        return f"cannot use it as the code directory: {exc.strerror}"
    return f"directory {str(code_dir)!r} does not exist; code: is relative to the spec file's directory"


def _substitute(value: Any, params: Mapping[str, str]) -> Any:
    """`${name}` -> the value, in every string of the spec; other `${...}` stay for the shell."""
    if isinstance(value, str):
        for name, text in params.items():
            value = value.replace("${" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {key: _substitute(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, params) for item in value]
    return value


def _backend_problems(sections: dict[str, Any], source: yaml_source.SourceMap,
                      checked: dict[tuple[str, str], list[Problem]], warnings: list[str]) -> list[Problem]:
    """Each `backends.<name>` section is checked by the backend that owns it, once per distinct
    content (`checked` keeps what was found); a section no installed backend checks is a warning."""
    from launcher import registry

    installed = registry.names()
    known = sorted(set(installed) | set(registry.PROJECT_BACKENDS))
    problems = []
    for name, section in sections.items():
        where = ("backends", str(name))
        if name not in installed:
            if name in known:
                warnings.append(f"backends.{name} is not checked: the {name} backend is not installed here")
                continue
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(source.problem(where, f"unknown backend; {hint}known: {', '.join(known)}"))
            continue
        if section is None:
            section = {}
        if not isinstance(section, dict):
            problems.append(source.problem(where, "expected a mapping of settings"))
            continue
        key = (str(name), repr(section))  # points of one file hold the same structure: repr is a stable key
        if key not in checked:
            checked[key] = [source.problem((*where, field), f"expected a {field} location (text), e.g. "
                                           f"{field}: s3://bucket/path/ or gs://bucket/path/")
                            for field in PORTABLE_FIELDS
                            if field in section and not (isinstance(section[field], str) and section[field].strip())]
            # a section that passed this code before passes again: no need to import its backend to know
            digest = settings_cache.key(str(name), section, registry.entry_point(name))
            if digest is None or not settings_cache.passed(digest):
                model = registry.settings_model(name)
                try:
                    model.model_validate(backend_settings(section))
                except ValidationError as exc:
                    checked[key].extend(_problems(exc, source, model, where))
                else:
                    if digest is not None and not checked[key]:
                        settings_cache.remember(digest)
        problems.extend(checked[key])
    return problems


def validate_settings(backend: str, settings: dict[str, Any], origin: str | yaml_source.SourceMap,
                      where: str = "the job spec") -> BaseModel:
    """Backend settings validated by their backend; errors name the file (and line, when `origin`
    is a SourceMap holding `backends.<name>...` lines) they came from."""
    from launcher import registry

    model = registry.settings_model(backend)
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        source = origin if isinstance(origin, yaml_source.SourceMap) else yaml_source.SourceMap(origin)
        problems = _problems(exc, source, model, ("backends", backend))
        raise SpecError(sorted(problems, key=lambda p: (p.line or 0, p.path)), where) from None


_MISSING_HINTS = {
    "name": "add a name, e.g. name: my-job",
    "run": "add the command to run, e.g. run: python train.py",
}
_PATTERN_HINTS = {  # shared patterns whose field is not a named model field (dict keys, list items)
    ENV_NAME: "an environment variable name: letters, digits and _, not starting with a digit (e.g. WANDB_API_KEY)",
}
_KINDS = {  # pydantic's type errors, said the way a spec author thinks of the value
    "int_parsing": "a whole number, e.g. 2", "int_type": "a whole number, e.g. 2",
    "int_from_float": "a whole number, e.g. 2", "int_parsing_size": "a whole number of sensible size",
    "float_parsing": "a number, e.g. 1.5", "float_type": "a number, e.g. 1.5", "finite_number": "a finite number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "text (quote it if YAML reads it as something else)",
    "dict_type": "a mapping (key: value lines)", "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list ([a, b], or one '- item' per line)",
}

MAX_MESSAGE = 400


def _problems(exc: ValidationError, source: yaml_source.SourceMap, model: type[BaseModel],
              prefix: tuple[str, ...]) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":  # pydantic's marker for "the key itself is bad"
            loc = loc[:-1]
        message = _message(error, model, loc)
        if len(message) > MAX_MESSAGE:  # validators quote the value: a 10 MB value must not make a 10 MB error
            message = f"{message[:MAX_MESSAGE // 2]} ... {message[-MAX_MESSAGE // 4:]}"
        problems.append(source.problem((*prefix, *loc), message))
    return problems


def _message(error: Any, model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """One pydantic error in the spec author's words: what is wrong and what a valid value looks
    like, never pydantic's own phrasing ("String should match pattern '^[a-z]...'")."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = f"; got {_shown(value)}"
    field = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        allowed = _field_names(model, loc[:-1])
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.6)
        return "unknown key" + (f"; did you mean {close[0]!r}?" if close else "") + (
            f"{'' if close else ';'} allowed here: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return "required field is missing; " + _MISSING_HINTS.get(field, f"add {field}:")
    if kind == "string_pattern_mismatch":
        if field == "name" and not loc[:-1]:
            return "name may hold only letters, digits, '.', '_' and '-', starting with a letter or digit"
        if field == "checkpoint_dir":
            return "checkpoint_dir must be an absolute path on the node, e.g. /checkpoints"
        return f"{_shown(value)} is not valid here; expected {_expected_form(model, loc, ctx.get('pattern'))}"
    if kind == "literal_error":
        yaml_bool = "; YAML reads yes/no/on/off as true/false: quote the value" if isinstance(value, bool) else ""
        return f"expected {ctx.get('expected', 'one of the listed values')}{got}{yaml_bool}"
    if kind in _KINDS:
        return f"expected {_KINDS[kind]}{got if value is not None else '; got nothing (null)'}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}{got}"
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        unit = "character" if kind == "string_too_short" else "item"
        return "must not be empty" if least == 1 else f"needs at least {least} {unit}s"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        length = len(value) if isinstance(value, (str, list, tuple, dict)) else None
        return f"may hold at most {ctx.get('max_length')} {unit}" + (f"; this has {length}" if length else "")
    message = str(error["msg"])
    for lead in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(lead)
    return message


def _shown(value: Any) -> str:
    """The offending value, short: errors quote it but must stay one line."""
    if isinstance(value, (dict, list, tuple)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value)  # repr() refuses ints of over 4300 digits
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]}"


def _expected_form(model: type[BaseModel], loc: tuple[Any, ...], pattern: str | None) -> str:
    """What a valid value looks like, from the field's examples and description (every field with a
    pattern carries examples; tests/test_spec_messages.py holds every model to that)."""
    if pattern in _PATTERN_HINTS:
        return _PATTERN_HINTS[pattern]
    info = _field_info(model, loc)
    examples = [str(e) for e in (info.examples or [])] if info is not None else []
    description = info.description if info is not None else None
    if examples:
        said = " or ".join(examples[:2])
        return f"{description}, e.g. {said}" if description else f"e.g. {said}"
    return description or "a value in the form this setting takes (see `launch schema`)"


def _container(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (through Optional, Annotated, list[...] and dict[str, ...]) and whether
    a mapping's keys stand between the field and that model (ssh `pools.<name>.hosts`)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    keyed = typing.get_origin(annotation) is dict
    args = typing.get_args(annotation)
    for arg in args[1:] if keyed else args:
        found, inner_keyed = _container(arg)
        if found is not None:
            return found, keyed or inner_keyed
    return None, False


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, type[BaseModel] | None]:
    """The FieldInfo of the last named field on `loc` and the model the path ends in (None when it
    ends in a plain value; both None when it leaves the models). List indexes and mapping keys are
    stepped over."""
    current: type[BaseModel] | None = model
    info = None
    key_next = False
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            continue
        if key_next:
            key_next = False
            continue
        fields = current.model_fields if current is not None else {}
        if part not in fields:
            return None, None
        info = fields[part]
        current, key_next = _container(info.annotation)
    return info, current


def _field_info(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    return _walk(model, loc)[0]


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names a mapping at `loc` accepts, for "did you mean" on unknown keys."""
    current = _walk(model, loc)[1] if loc else model
    return sorted(current.model_fields) if current is not None else []
