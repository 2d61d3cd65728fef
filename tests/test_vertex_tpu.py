"""Vertex TPU renders: golden CustomJob bodies for a single-host v5e slice and a multi-host v5p
slice, each parsed strictly into the official proto; the machine types, topologies and
reservations Vertex takes; and the TPU pairs it would refuse, caught before anything is sent.

Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import pytest
from helpers import check_golden
from test_vertex_render import GOLDEN, render

from backends.vertex.render import pair_problem, tpu_problem
from launcher import catalog
from launcher.accelerators import parse
from launcher.errors import SpecError

RESERVATION = "projects/my-project/zones/us-central1-a/reservations/v5p-pool"
CASES = {
    "tpu_v5e_8_single_host": "name: golden\nimage: img:1\nrun: python train.py\nresources:\n"
                             "  accelerators: TPU-v5e:8\nmax_runtime: 2h\n",
    "tpu_v5p_16_multi_host": "name: golden\nimage: img:1\nrun: python train.py\nresources:\n"
                             "  accelerators: v5p-16\nspot: true\n"
                             f"backends:\n  vertex:\n    reservation: {RESERVATION}\n",
}


def pool_of(text: str, settings: dict | None = None) -> dict:
    pools = render(text, settings=settings).payload["job_spec"]["worker_pool_specs"]
    assert len(pools) == 1  # Vertex runs a TPU slice as one worker pool of one replica
    return pools[0]


def spec_text(accel: str, extra: str = "") -> str:
    return f"name: x\nimage: i\nrun: r\nresources:\n  accelerators: {accel}\n{extra}"


def problems(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        render(text)
    return str(caught.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body_parses_into_the_official_proto(case):
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    request = render(CASES[case])
    job = aiplatform_v1.CustomJob()
    json_format.ParseDict(request.payload, job._pb)  # strict: unknown fields or enum names raise
    spec = job.job_spec.worker_pool_specs[0].machine_spec
    assert spec.tpu_topology in {"2x4", "2x2x2"} and spec.machine_type.startswith("ct5")
    shown = {"parent": request.operation, "body": request.payload,
             "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_multi_host_slice_is_one_replica_with_its_topology_and_reservation():
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    pool = pool_of(CASES["tpu_v5p_16_multi_host"])
    assert pool["replica_count"] == 1
    assert pool["machine_spec"] == {
        "machine_type": "ct5p-hightpu-4t", "tpu_topology": "2x2x2",
        "reservation_affinity": {"reservation_affinity_type": "SPECIFIC_RESERVATION",
                                 "key": "compute.googleapis.com/reservation-name", "values": [RESERVATION]}}
    machine = aiplatform_v1.MachineSpec()
    json_format.ParseDict(pool["machine_spec"], machine._pb)
    assert machine.reservation_affinity.reservation_affinity_type.name == "SPECIFIC_RESERVATION"
    env = {e["name"]: e["value"] for e in pool["container_spec"]["env"]}
    assert env["LAUNCH_NUM_NODES"] == "1" and env["LAUNCH_GPUS_PER_NODE"] == "0"


@pytest.mark.parametrize(("accel", "machine"), [
    ("TPU-v5e:1", {"machine_type": "ct5lp-hightpu-1t", "tpu_topology": "1x1"}),
    ("TPU-v5e:4", {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "2x2"}),
    ("TPU-v5e:16", {"machine_type": "ct5lp-hightpu-4t", "tpu_topology": "4x4"}),
    ("TPU-v6e:8", {"machine_type": "ct6e-standard-8t", "tpu_topology": "2x4"}),
    ("TPU-v6e:16", {"machine_type": "ct6e-standard-4t", "tpu_topology": "4x4"}),
    ("TPU-v4:32", {"machine_type": "ct4p-hightpu-4t", "tpu_topology": "2x2x4"}),
    ("TPU-v2:8", {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V2", "accelerator_count": 8}),
    ("TPU-v3:32", {"machine_type": "cloud-tpu", "accelerator_type": "TPU_V3", "accelerator_count": 32}),
])
def test_each_generation_gets_the_machine_vertex_takes(accel, machine):
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    spec = pool_of(spec_text(accel))["machine_spec"]
    assert spec == machine
    json_format.ParseDict(spec, aiplatform_v1.MachineSpec()._pb)  # TPU_V2/TPU_V3 are the proto's enum names


@pytest.mark.parametrize(("reservation", "affinity"), [
    ("any", {"reservation_affinity_type": "ANY_RESERVATION"}),
    ("none", {"reservation_affinity_type": "NO_RESERVATION"}),
])
def test_reservation_setting_applies_to_gpu_machines_too(reservation, affinity):
    spec = pool_of(spec_text("L4"), settings={"reservation": reservation})["machine_spec"]
    assert spec["reservation_affinity"] == affinity


def test_a_bad_reservation_is_a_spec_error():
    text = problems(spec_text("TPU-v5e:8", "backends:\n  vertex:\n    reservation: my-reservation\n"))
    assert "backends.vertex.reservation" in text and "projects/" in text


def test_more_than_one_node_is_refused_on_resources_nodes():
    text = problems(spec_text("TPU-v5p:16", "  nodes: 2\n"))
    assert "spec.yaml:6" in text and "resources.nodes" in text and "2 host(s)" in text


@pytest.mark.parametrize(("machine", "accel", "fragment"), [
    ("ct5lp-hightpu-8t", "TPU-v5e:16", "single-host slices of 8"),
    ("ct5lp-hightpu-8t", "TPU-v5e:4", "more than TPU-v5e:4"),
    ("ct5lp-hightpu-1t", "TPU-v5e:4", "single-host slices of 1"),
    ("ct5p-hightpu-4t", "TPU-v5e:8", "carries TPU-v5p, not TPU-v5e"),
    ("ct6e-standard-4t", "TPU-v4:8", "ct4p-hightpu-4t"),
    ("a3-highgpu-8g", "TPU-v5e:8", "has no TPU"),
    ("cloud-tpu", "TPU-v5e:8", "TPU v2 and v3 only"),
    ("ct5lp-hightpu-4t", "TPU-v2:8", "runs on cloud-tpu"),
])
def test_tpu_pairs_vertex_refuses(machine, accel, fragment):
    assert fragment in (tpu_problem(machine, parse(accel)) or "")


def test_a_pinned_machine_that_does_not_carry_the_slice_names_the_setting():
    text = problems(spec_text("TPU-v5e:16", "backends:\n  vertex:\n    machine_type: ct5lp-hightpu-8t\n"))
    assert "backends.vertex.machine_type" in text and "4-chip" in text


def test_a_gpu_on_a_tpu_machine_is_refused():
    assert "TPU machine" in (pair_problem("ct5p-hightpu-4t", "NVIDIA_H100_80GB", 8) or "")
    text = problems(spec_text("H100:8", "backends:\n  vertex:\n    machine_type: ct5lp-hightpu-4t\n"))
    assert "backends.vertex.machine_type" in text and "TPU machine" in text


def test_a_slice_size_vertex_has_no_row_for_lists_the_sizes_it_has():
    text = problems(spec_text("TPU-v5p:4096"))
    assert "spec.yaml:5" in text and "TPU-v5p:16" in text


def test_every_vertex_tpu_catalog_row_is_a_machine_vertex_takes_for_its_slice():
    rows = [o for o in catalog.offers() if o.backend == "vertex" and parse(f"{o.accelerator}:{o.count}").is_tpu]
    assert {o.accelerator for o in rows} == {"TPU-v2", "TPU-v3", "TPU-v4", "TPU-v5e", "TPU-v5p", "TPU-v6e"}
    for row in rows:
        accel = parse(f"{row.accelerator}:{row.count}")
        assert tpu_problem(row.instance_type, accel) is None, row
        assert row.provider_accelerator == accel.cloud_name, row
        assert (row.ondemand_usd_hr is None) == row.note.startswith("no price"), row  # a missing price says so
