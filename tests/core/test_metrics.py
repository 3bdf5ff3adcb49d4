"""/metrics: Prometheus text with request latency by route and status, and DB time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_it_exposes_request_latency_by_route_and_status(client: Client) -> None:
    client.get("/api/v1/no-such-thing/")
    client.get("/api/schema/")
    client.post("/admin/login/", {"username": "nobody", "password": "wrong"})  # queries the DB
    response = client.get("/metrics", HTTP_HOST="10.0.0.9")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert (
        'scoreboard_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}'
        in text
    )
    assert 'route="/api/schema/",status="200"' in text
    assert "scoreboard_db_query_duration_seconds_bucket" in text


def test_it_ships_alert_rules_for_every_spec_threshold() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {
        "ScoreboardHighLatencyP99",
        "ScoreboardHighErrorRate",
        "ScoreboardFraudFlagsHigh",
        "ScoreboardWebSocketDrops",
        "ScoreboardRedisSlow",
        "ScoreboardDatabasePoolNearlyFull",
        "ScoreboardStaffLoginLockout",
    }
    text = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    metric_names = {
        "scoreboard_http_request_duration_seconds",
        "scoreboard_fraud_decisions_total",
        "scoreboard_completions_total",
        "scoreboard_websocket_closes_total",
        "scoreboard_websocket_opens_total",
        "scoreboard_redis_latency_seconds",
        "scoreboard_db_pool_connections",
        "scoreboard_login_lockouts_total",
    }
    import core.metrics as metrics

    exported = {m._name for m in vars(metrics).values() if hasattr(m, "_name")}
    for name in metric_names:
        assert name in text
        assert name.removesuffix("_total") in exported
