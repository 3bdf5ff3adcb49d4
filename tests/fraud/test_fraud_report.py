"""fraud_report: decisions, rules and the riskiest users over a period."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fraud.assess import RiskAssessment

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_reports_decisions_rules_and_riskiest_users(
    client_for, alice, mallory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from actions import services
    from tests.factories import ActionTypeFactory

    ActionTypeFactory(id="click", reward=1)

    def submit(user) -> int:  # type: ignore[no-untyped-def]
        client = client_for(user)
        token = client.post("/api/v1/actions/click/start/").json()["actionToken"]
        return client.post(
            "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
        ).status_code

    assert submit(alice) == 200
    monkeypatch.setattr(
        services,
        "fraud_assess",
        lambda **kw: RiskAssessment(score=0.7, rules={"regular_timing": 0.7}),
    )
    assert submit(mallory) == 200
    monkeypatch.setattr(
        services,
        "fraud_assess",
        lambda **kw: RiskAssessment(score=0.95, rules={"regular_timing": 0.5, "score_jump": 0.45}),
    )
    assert submit(mallory) == 403
    out = StringIO()
    call_command("fraud_report", "--since", "1h", stdout=out)
    report = out.getvalue()
    assert "completions accepted: 2" in report
    assert "completions flagged:  1" in report
    assert "completions blocked:  1" in report
    assert "regular_timing: 2" in report
    assert "score_jump: 1" in report
    lines = report.splitlines()
    riskiest = lines[lines.index("Riskiest users:") + 1 :]
    assert riskiest[0].startswith("  mallory: worst 0.95, mean 0.82, 1 flagged, 1 blocked")


def test_it_refuses_a_bad_period(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="--since"):
        call_command("fraud_report", "--since", "yesterday")
