"""A fake that raises fails the test that met it, even when the client retried past the 500 (or the
dropped connection) the fake answered with. Proven by running small tests under the suite's own
conftest in a separate pytest process and reading their outcomes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent

INNER = '''
import ssl
import urllib.error
import urllib.request

import pytest
from fakes.azureml_fake import AzureMLFake
from fakes.fault_proxy import FaultProxy
from fakes.vertex_fake import VertexFake


def get(url, context=None):
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def choking(fake):
    """Make the fake's request handling raise once, then serve as before (the client's retry succeeds)."""
    real = fake.handle

    def handle(*args, **kwargs):
        fake.handle = real
        raise ZeroDivisionError("the fake's own bug")

    fake.handle = handle


def test_vertex_fake_answers_its_bug_with_a_500_and_the_retry_passes():
    with VertexFake(buckets=("b",)) as gcp:
        choking(gcp)
        assert get(gcp.endpoint + "/storage/v1/b/b") == 500
        assert get(gcp.endpoint + "/storage/v1/b/b") == 200


def test_azureml_fake_answers_its_bug_with_a_500_and_the_retry_passes():
    with AzureMLFake() as azure:
        context = ssl.create_default_context(cafile=str(azure.ca_file))
        choking(azure)
        assert get(azure.url + "discovery", context) == 500
        assert get(azure.url + "discovery", context) == 200


def test_a_proxy_bug_drops_the_connection_and_the_retry_passes():
    with VertexFake(buckets=("b",)) as gcp, FaultProxy(gcp.endpoint) as proxy:
        real = proxy._decide

        def decide(key):
            proxy._decide = real
            raise KeyError("the proxy's own bug")

        proxy._decide = decide
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(proxy.endpoint + "/storage/v1/b/b")
        assert get(proxy.endpoint + "/storage/v1/b/b") == 200


def test_a_fake_that_raised_nothing_passes():
    with VertexFake(buckets=("b",)) as gcp:
        assert get(gcp.endpoint + "/storage/v1/b/b") == 200
        assert get(gcp.endpoint + "/storage/v1/b/missing") == 404  # an answered error is no bug
'''


def test_a_fake_that_raised_fails_its_test_at_teardown(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makeconftest((TESTS / "conftest.py").read_text())  # the suite's own teardown check
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(TESTS.parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("errors"), outcomes.get("failed")) == (4, 3, None), \
        result.stdout.str()
    output = result.stdout.str()
    for test, fake, bug in [("vertex_fake", "VertexFake", "ZeroDivisionError: the fake's own bug"),
                            ("azureml_fake", "AzureMLFake", "ZeroDivisionError: the fake's own bug"),
                            ("a_proxy_bug", "FaultProxy", "KeyError: \"the proxy's own bug\"")]:
        assert f"ERROR at teardown of test_{test}" in output or f"ERROR test_inner.py::test_{test}" in output, output
        assert f"{fake}: Traceback" in output and bug in output, output
    assert "ERROR test_inner.py::test_a_fake_that_raised_nothing_passes" not in output
