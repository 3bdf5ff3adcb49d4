"""/metrics answers METRICS_ALLOWED_NETWORKS or METRICS_TOKEN, in the app itself; and
every alert rule names a metric the service exports."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def networks(settings):  # type: ignore[no-untyped-def]
    def set_networks(*cidrs: str) -> None:
        settings.METRICS_NETWORKS = [ipaddress.ip_network(c) for c in cidrs]

    return set_networks


def test_it_answers_loopback_by_default(client: Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"scoreboard_http_request_duration_seconds" in response.content


def test_it_refuses_other_addresses_with_403_in_the_envelope(client: Client) -> None:
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert b"scoreboard_" not in response.content


def test_it_answers_a_configured_network(client: Client, networks) -> None:  # type: ignore[no-untyped-def]
    networks("10.0.0.0/8")
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_behind_a_proxy_it_judges_the_client_not_the_proxy(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = 1
    # nginx (127.0.0.1) forwards a public client: refused, although the peer is loopback.
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 403
    # A client writing its own X-Forwarded-For only adds entries to the left.
    response = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1, 198.51.100.4"
    )
    assert response.status_code == 403


def test_it_answers_the_bearer_token_from_anywhere(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer scrape-token-0123456789"
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization", ["Bearer wrong-token", "Basic c2NyYXBlOnRva2Vu", "Bearer", "Bearer "]
)
def test_it_answers_a_bad_token_with_401(client: Client, settings, authorization: str) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_token_is_refused_when_none_is_configured(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


def test_settings_refuse_a_malformed_network() -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS" in result.stderr


def _exported_sample_names() -> set[str]:
    """Every sample name the service's metrics can produce."""
    from prometheus_client.metrics import MetricWrapperBase

    import core.metrics as metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_every_alert_rule_names_only_exported_metrics() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exported = _exported_sample_names()
    checked = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            named = set(re.findall(r"\b(scoreboard_[a-z0-9_]+)", rule["expr"]))
            assert named, f"{rule['alert']} names no scoreboard metric"
            assert named <= exported, f"{rule['alert']}: {sorted(named - exported)} not exported"
            checked += 1
    assert checked >= 6
