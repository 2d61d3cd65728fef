"""azure_openai / openai render: golden create bodies (each checked against Azure's published
FineTuningJobCreation, OpenAI's own fields named), the job-id marks read back, the JSONL checks
`validate` runs, the spec's finetune/container exclusivity, and the state table. Regenerate goldens
with UPDATE_GOLDEN=1 after an intended change and review the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.azure_openai_fake import OPENAI_CREATE_EXTRAS, SpecCheck
from helpers import check_golden

from backends.azure_openai import AzureOpenAIBackend, OpenAIBackend
from backends.azure_openai.ids import key_mark, marks, pack_job_id, unpack_job_id
from backends.azure_openai.states import STATES, status_of
from launcher import finetune_data
from launcher.backend import JobState
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "azure_openai"
JOB_ID = "golden-20260101-000000-abcdef"
CHAT = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
DPO = ('{"input": {"messages": [{"role": "user", "content": "hi"}]}, "preferred_output": [{"role": "assistant", '
       '"content": "hello"}], "non_preferred_output": [{"role": "assistant", "content": "go away"}]}\n')
CASES = {
    "azure_minimal": ("azure_openai", "finetune:\n  base_model: gpt-4o-mini-2024-07-18\n  training_file: train.jsonl\n",
                      None),
    "azure_every_field": (
        "azure_openai", "finetune:\n  base_model: gpt-4o-mini-2024-07-18\n  training_file: train.jsonl\n"
        "  validation_file: file-abc123\n"
        "  hyperparameters: {n_epochs: 3, batch_size: 8, learning_rate_multiplier: 0.1}\n"
        "  suffix: support\n  seed: 42\n", "ci-run-42"),
    "azure_dpo_preview": (
        "azure_openai", "finetune:\n  base_model: gpt-4o-2024-08-06\n  training_file: dpo.jsonl\n  method: dpo\n"
        "  hyperparameters: {beta: 0.1}\nbackends:\n  azure_openai: {api_version: 2025-04-01-preview}\n", None),
    "openai_every_field": (
        "openai", "finetune:\n  base_model: gpt-4o-mini-2024-07-18\n  training_file: train.jsonl\n"
        "  validation_file: train.jsonl\n  hyperparameters: {n_epochs: 2}\n  suffix: support\n  seed: 1\n",
        "ci-run-42"),
    "openai_dpo": ("openai", "finetune:\n  base_model: gpt-4o-2024-08-06\n  training_file: dpo.jsonl\n  method: dpo\n"
                   "  hyperparameters: {beta: 0.2, n_epochs: auto}\n", None),
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(CHAT * 3)
    (tmp_path / "dpo.jsonl").write_text(DPO * 2)
    return tmp_path


def render(base: Path, backend: str, body: str, key: str | None = None):
    spec = parse_spec(f"name: golden\n{body}", "spec.yaml", base_dir=base)
    cls = AzureOpenAIBackend if backend == "azure_openai" else OpenAIBackend
    settings = {"endpoint": "https://res.openai.azure.com"} if backend == "azure_openai" else {}
    return cls({**settings, **spec.backends.get(backend, {})}).render(spec, JOB_ID, None, {}, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body_matches_the_published_model(case, data):
    backend, body, key = CASES[case]
    request = render(data, backend, body, key)
    check = SpecCheck()
    schema = {"$ref": "#/definitions/FineTuningJobCreation"}
    allowed = OPENAI_CREATE_EXTRAS if backend == "openai" or "method" in request.payload else set()
    assert check.schema(schema, request.payload) + check.strict(schema["$ref"], request.payload, allowed) == []
    shown = json.dumps(request.to_display(), indent=2, sort_keys=True).replace(str(data), "<spec dir>") + "\n"
    golden = GOLDEN / f"{case}.json"
    check_golden(golden, shown)


def test_the_job_id_and_key_come_back_from_what_the_job_carries(data):
    assert unpack_job_id(pack_job_id(JOB_ID)) == JOB_ID
    azure = render(data, "azure_openai", CASES["azure_every_field"][1], "ci-run-42")
    assert len(azure.payload["suffix"]) <= 40
    assert marks({"suffix": azure.payload["suffix"]}) == (JOB_ID, None, key_mark("ci-run-42"))
    openai = render(data, "openai", CASES["openai_every_field"][1], "ci-run-42")
    assert marks({"metadata": openai.payload["metadata"]}) == (JOB_ID, "ci-run-42", key_mark("ci-run-42"))
    assert marks({"suffix": "someone-elses-model"})[0] is None  # not ours: never a job id


def test_a_name_too_long_for_azures_suffix_is_refused_naming_the_field(data):
    spec = parse_spec("name: a-rather-long-support-bot-name\nfinetune:\n  base_model: m\n  training_file: train.jsonl\n"
                      "  suffix: support\n", "spec.yaml", base_dir=data)
    with pytest.raises(SpecError) as caught:
        AzureOpenAIBackend({"endpoint": "https://r"}).render(spec, "a-rather-long-support-bot-name-20260101-000000-"
                                                             "abcdef", None, {}, idempotency_key="k")
    assert [p.path for p in caught.value.problems] == ["name"]
    assert "40 characters" in caught.value.problems[0].message


def test_dpo_on_the_stable_azure_api_and_beta_on_supervised_are_refused(data):
    with pytest.raises(SpecError) as caught:
        render(data, "azure_openai", "finetune:\n  base_model: m\n  training_file: dpo.jsonl\n  method: dpo\n")
    assert "2025-04-01-preview" in str(caught.value)
    with pytest.raises(SpecError) as caught:
        render(data, "openai", "finetune:\n  base_model: m\n  training_file: train.jsonl\n"
               "  hyperparameters: {beta: 0.1}\n")
    assert [p.path for p in caught.value.problems] == ["finetune.hyperparameters.beta"]


@pytest.mark.parametrize(("text", "method", "line", "fragment"), [
    (CHAT + "not json\n", "supervised", 2, "not JSON"),
    (CHAT + '{"messages": []}\n', "supervised", 2, "non-empty list"),
    (CHAT + '{"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}\n',
     "supervised", 2, "role: expected one of"),
    ('{"messages": [{"role": "user", "content": "x"}]}\n', "supervised", 1, "no assistant message"),
    (CHAT + CHAT + '{"prompt": "x", "completion": "y"}\n', "supervised", 3, 'expected "messages"'),
    (DPO + CHAT, "dpo", 2, "unknown key 'messages'"),
    (DPO.replace('"preferred_output": [{"role": "assistant"', '"preferred_output": [{"role": "user"'), "dpo", 1,
     "preferred_output: no assistant message"),
    ("\n\n", "supervised", None, "no examples"),
])
def test_validate_names_the_first_bad_line(tmp_path, text, method, line, fragment):
    path = tmp_path / "data.jsonl"
    path.write_text(text)
    with pytest.raises(finetune_data.BadData) as caught:
        finetune_data.check(path, method, "finetune.training_file")
    assert (caught.value.problem.line, caught.value.problem.path) == (line, "finetune.training_file")
    assert fragment in caught.value.problem.message


def test_counts_and_token_estimate(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(CHAT * 4 + "\n")
    report = finetune_data.check(path, "supervised", "finetune.training_file")
    assert report.examples == 4 and report.tokens == 4 * -(-len(CHAT.strip()) // 4)


@pytest.mark.parametrize(("extra", "paths"), [
    ("image: img\nrun: x\nresources: {accelerators: H100}\n", ["image", "run", "resources"]),
    ("code: .\nsetup: pip install x\n", ["code", "setup"]),
])
def test_finetune_is_exclusive_with_the_container_fields(tmp_path, extra, paths):
    (tmp_path / "t.jsonl").write_text(CHAT)
    with pytest.raises(SpecError) as caught:
        parse_spec(f"name: x\nfinetune:\n  base_model: m\n  training_file: t.jsonl\n{extra}", "s.yaml",
                   base_dir=tmp_path)
    assert sorted(p.path for p in caught.value.problems) == sorted(paths)
    assert all("remove it, or remove finetune:" in p.message for p in caught.value.problems)


def test_a_missing_training_file_is_named_and_a_file_id_is_taken(tmp_path):
    with pytest.raises(SpecError) as caught:
        parse_spec("name: x\nfinetune:\n  base_model: m\n  training_file: nope.jsonl\n", "s.yaml", base_dir=tmp_path)
    assert [(p.path, p.line) for p in caught.value.problems] == [("finetune.training_file", 4)]
    spec = parse_spec("name: x\nfinetune:\n  base_model: m\n  training_file: file-abc123\n", "s.yaml",
                      base_dir=tmp_path)
    assert spec.finetune.training_file == "file-abc123"


def test_states_and_the_success_message():
    assert STATES["pending"] is JobState.PENDING and STATES["validating_files"] is JobState.PENDING
    assert status_of({"status": "paused"}).state is JobState.UNKNOWN
    done = status_of({"status": "succeeded", "fine_tuned_model": "gpt-4o-mini.ft-1-sup", "trained_tokens": 2_000_000},
                     3.0)
    assert done.state is JobState.SUCCEEDED and done.exit_code == 0
    assert done.message == "fine_tuned_model: gpt-4o-mini.ft-1-sup; 2,000,000 trained tokens (~$6.00 at $3/1M tokens)"
    failed = status_of({"status": "failed", "error": {"code": "invalid_training_file", "message": "bad line 3"}})
    assert failed.state is JobState.FAILED and failed.message == "invalid_training_file bad line 3"
