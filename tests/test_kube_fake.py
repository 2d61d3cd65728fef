"""The Kubernetes fake's own guarantees, through the real client: what it refuses (a field Kubernetes does
not know is a 422 and recorded), what it selects, and what a delete takes with it."""

from __future__ import annotations

import pytest
from fakes.kube_fake import KubeFake, selector_matches


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube-fake")
    with KubeFake(root, mode="phases") as fake:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(fake.kubeconfig(root / "kubeconfig")))
        yield fake, client.CoreV1Api(api), client.BatchV1Api(api)


def _job(name: str, **container) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "i", **container}]}}}}


def test_a_misspelled_field_is_a_422_and_recorded(kube):
    import json
    import urllib.error
    import urllib.request

    from kubernetes.client.exceptions import ApiException
    from pydantic import ValidationError

    fake, _, batch = kube
    fake.reset()
    with pytest.raises(ValidationError, match="comand"):  # this client checks dict bodies itself, before sending
        batch.create_namespaced_job("default", _job("typo", comand=["true"]))
    raw = urllib.request.Request(f"{fake.url}/apis/batch/v1/namespaces/default/jobs", method="POST",
                                 data=json.dumps(_job("typo", comand=["true"])).encode(),
                                 headers={"Authorization": "Bearer fake-token", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:  # any other client meets the API server's check
        urllib.request.urlopen(raw, timeout=10)
    assert refused.value.code == 422 and "comand" in json.loads(refused.value.read())["message"]
    assert fake.objects("jobs") == [] and len(fake.rejected) == 1
    fake.rejected.clear()
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job("nowhere", _job("x"))
    assert caught.value.status == 404
    batch.create_namespaced_job("default", _job("ok"))
    with pytest.raises(ApiException) as caught:
        batch.create_namespaced_job("default", _job("ok"))
    assert caught.value.status == 409


def test_label_selectors():
    labels = {"app": "a", "tier": "x"}
    assert selector_matches("app=a,tier in (x,y)", labels) and selector_matches("app,!gone", labels)
    assert not selector_matches("app!=a", labels) and not selector_matches("tier notin (x)", labels)


def test_delete_takes_what_the_object_owns_unless_orphaned(kube):
    from kubernetes import client

    fake, core, batch = kube
    fake.reset()
    for name, propagation in (("fg", "Foreground"), ("orphan", "Orphan")):
        job = batch.create_namespaced_job("default", _job(name, command=["true"]))
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid}
        core.create_namespaced_config_map("default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"{name}-files", "ownerReferences": [owner]}, "data": {"a": "b"}})
        batch.delete_namespaced_job(name, "default", body=client.V1DeleteOptions(propagation_policy=propagation))
    assert [c["metadata"]["name"] for c in fake.objects("configmaps")] == ["orphan-files"]
    assert fake.objects("jobs") == []
