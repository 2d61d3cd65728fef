"""The openai client is built once per distinct settings and credentials per process
(backends/azure_openai/client.py make_client), as boto3's are: the backend is built afresh for each
submit of a sweep, and building a client costs more than a fake's answer."""

from __future__ import annotations

import pytest

from backends.azure_openai.client import make_client

SETTINGS = {"endpoint": "http://127.0.0.1:9", "api_version": "2024-10-21"}


def test_the_same_settings_and_key_share_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "key-one")
    first = make_client("azure_openai", SETTINGS)
    assert make_client("azure_openai", dict(SETTINGS)) is first
    assert first.api_key == "key-one"


def test_another_key_endpoint_or_version_gets_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "key-one")
    first = make_client("azure_openai", SETTINGS)
    assert make_client("azure_openai", {**SETTINGS, "endpoint": "http://127.0.0.1:10"}) is not first
    assert make_client("azure_openai", {**SETTINGS, "api_version": "2025-04-01-preview"}) is not first
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "key-two")
    second = make_client("azure_openai", SETTINGS)
    assert second is not first and second.api_key == "key-two"
