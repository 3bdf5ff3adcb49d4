"""Impossible travel through the complete endpoint behind a trusted proxy: the client's
address from X-Forwarded-For, its place from a City database written at test time
(tests/geoip.py), the last place kept with the user's history in the real Redis; the
fraud log and the review desk name both places; without a database the rule is off and
the system check says so."""

from __future__ import annotations

import io
import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_redis import get_redis_connection

from fraud import geo
from fraud.assess import fraud_assess
from fraud.models import AuditEvent, FraudLog
from fraud.rules import PastCompletion
from fraud.signals import RedisSignalStore, device_of, ip_prefix
from tests.factories import ActionTypeFactory, UserFactory
from tests.geoip import (
    LYON_IP,
    PARIS_IP,
    PRIVATE_IPS,
    SYDNEY_IP,
    SYDNEY_IPV6,
    UNKNOWN_IP,
)
from tests.support import run_django

pytestmark = pytest.mark.django_db(transaction=True)

UA = "pytest-client"


@pytest.fixture
def proxied(settings):  # type: ignore[no-untyped-def]
    """One trusted proxy in front (as nginx): the client is the last X-Forwarded-For hop."""
    settings.TRUSTED_PROXY_COUNT = 1


@pytest.fixture
def player(db):  # type: ignore[no-untyped-def]
    """An account three months old (the new-account rule stays out of the way)."""
    return UserFactory(username="traveller", date_joined=timezone.now() - timedelta(days=90))


@pytest.fixture
def actions(db) -> list[str]:  # type: ignore[no-untyped-def]
    """Distinct actions, so back-to-back completions are no duplicate of each other."""
    ids = ["quiz", "level", "daily", "share"]
    for action_id in ids:
        ActionTypeFactory(id=action_id, reward=5)
    return ids


def from_ip(client, start, complete, action_id: str, ip: str):  # type: ignore[no-untyped-def]
    """Complete `action_id` from `ip`, as the proxy forwards it (a client's own entry on
    the left is ignored)."""
    forwarded = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": f"6.6.6.6, {ip}"}
    response = complete(client, action_id, start(client, action_id), **forwarded)
    assert response.status_code == 200, response.content
    return response


def accepted_rules(response) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return AuditEvent.objects.get(
        kind=AuditEvent.Kind.COMPLETION_ACCEPTED, completion_id=response.json()["completionId"]
    ).payload["rules"]


def test_sydney_minutes_after_paris_is_flagged_and_the_log_names_both_places(
    geoip, proxied, client_for, player, actions, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(player)
    paris = from_ip(client, start, complete, actions[0], PARIS_IP)
    assert paris.json()["flagged"] is False
    sydney = from_ip(client, start, complete, actions[1], SYDNEY_IP)
    assert sydney.json()["flagged"] is True  # flagged, not blocked (200)

    log = FraudLog.objects.get(event=FraudLog.Event.FLAGGED)
    assert str(log.completion_id) == sydney.json()["completionId"]
    assert log.rules["impossible_travel"] == pytest.approx(0.6)
    assert 0.5 <= log.risk_score < 0.9
    assert log.reasons["impossible_travel"].startswith("Paris, FR to Sydney, AU: 16,961 km in")
    assert log.ip == SYDNEY_IP
    assert log.details["place"] == {"country": "AU", "city": "Sydney"}
    travel = log.details["evidence"]["impossible_travel"]
    assert (travel["from"]["city"], travel["from"]["country"]) == ("Paris", "FR")
    assert (travel["to"]["city"], travel["to"]["country"]) == ("Sydney", "AU")
    assert travel["distanceKm"] == 16961
    assert travel["speedKmh"] > 100_000
    # Every completion's audit record says where it came from.
    audit = AuditEvent.objects.get(completion_id=paris.json()["completionId"])
    assert audit.payload["place"] == {"country": "FR", "city": "Paris"}


@pytest.mark.parametrize(
    ("seconds_before", "here", "fires"),
    [
        (240, SYDNEY_IP, True),  # Paris, then Sydney four minutes later
        (240, SYDNEY_IPV6, True),  # the same over IPv6
        (3600, LYON_IP, False),  # Paris, then Lyon an hour later
        (86400 - 60, SYDNEY_IP, False),  # Paris, then Sydney a day later
    ],
)
def test_it_judges_the_journey_from_the_last_completions_place(
    geoip, proxied, client_for, player, actions, start, complete, seconds_before, here, fires
) -> None:  # type: ignore[no-untyped-def]
    """The last completion, from Paris, as the signal store kept it `seconds_before`."""
    paris = geo.place_of(PARIS_IP)
    assert paris is not None
    past = PastCompletion(
        time.time() - seconds_before, "quiz", ip_prefix(PARIS_IP), device_of(""), 5, paris
    )
    RedisSignalStore().remember(user_id=player.pk, past=past)
    response = from_ip(client_for(player), start, complete, actions[1], here)
    assert ("impossible_travel" in accepted_rules(response)) is fires
    assert response.json()["flagged"] is fires


@pytest.mark.parametrize("address", [*PRIVATE_IPS, UNKNOWN_IP])
def test_private_and_unknown_addresses_never_fire_it(
    geoip, proxied, client_for, player, actions, start, complete, address
) -> None:  # type: ignore[no-untyped-def]
    """The test database places 10/8, 192.168/16, 127/8 and ::1 in Sydney: they are left
    alone because they are private, not because no database knows them."""
    client = client_for(player)
    from_ip(client, start, complete, actions[0], PARIS_IP)
    response = from_ip(client, start, complete, actions[1], address)
    assert "impossible_travel" not in accepted_rules(response)
    assert (
        "place" not in AuditEvent.objects.get(completion_id=response.json()["completionId"]).payload
    )
    # Nor does a completion from Sydney after it compare with a place it never had.
    assert geo.place_of(address) is None


def test_the_last_place_travels_with_the_history_no_sql_no_extra_round_trip(
    geoip,
    proxied,
    client_for,
    player,
    actions,
    start,
    complete,
    redis_calls,
    drains_held,
    django_assert_num_queries,
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(player)
    from_ip(client, start, complete, actions[0], PARIS_IP)
    token = start(client, actions[1])
    redis_calls.clear()
    lyon = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": LYON_IP}
    assert complete(client, actions[1], token, **lyon).status_code == 200
    # the account state; the rate limits with the fraud signals; everything after commit:
    # the same commands as without a place (tests/actions/test_round_trips.py)
    assert len(redis_calls) == 3, redis_calls
    # ... and the action types' generation (tests/actions/test_round_trips.py)
    read = ["LRANGE", "ZADD", "ZREMRANGEBYSCORE", "ZCARD", "EXPIRE", "GET", "GET"]
    assert redis_calls[1].split()[4:] == read
    assert redis_calls[2].split()[-4:] == ["LPUSH", "LTRIM", "EXPIRE", "SET"]
    history = get_redis_connection("strict").lrange(
        f"{RedisSignalStore().base}:u:{player.pk}", 0, -1
    )
    assert history[0].decode().endswith("|45.7640;4.8357;20;FR;Lyon")
    assert history[1].decode().endswith("|48.8566;2.3522;20;FR;Paris")

    redis_calls.clear()
    with django_assert_num_queries(0):
        risk = fraud_assess(
            user=player,
            action_id=actions[2],
            reward=5,
            cooldown_seconds=0,
            min_duration_seconds=0,
            ip=SYDNEY_IP,
            user_agent=UA,
            now=timezone.now(),
        )
    assert len(redis_calls) == 1
    assert "Lyon, FR to Sydney, AU" in risk.reasons["impossible_travel"]


def test_without_a_database_the_rule_is_off_and_the_check_warns(
    settings, proxied, client_for, player, actions, start, complete
) -> None:  # type: ignore[no-untyped-def]
    settings.GEOIP_PATH = ""
    client = client_for(player)
    from_ip(client, start, complete, actions[0], PARIS_IP)
    response = from_ip(client, start, complete, actions[1], SYDNEY_IP)
    assert response.json()["flagged"] is False
    assert "impossible_travel" not in accepted_rules(response)

    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)  # a warning, not an error: no exception
    assert "fraud.W001" in err.getvalue()
    assert "impossible_travel fraud rule is off" in err.getvalue()
    # Turned off on purpose: nothing to say.
    settings.FRAUD_RULE_WEIGHTS = {**settings.FRAUD_RULE_WEIGHTS, "impossible_travel": 0.0}
    err = io.StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "fraud.W00" not in err.getvalue()


def test_an_unusable_database_turns_the_rule_off_with_a_warning_not_an_error(
    settings, tmp_path, proxied, client_for, player, actions, start, complete, caplog, geoip_file
) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "GeoLite2-City.mmdb"
    broken.write_bytes(b"not a MaxMind database")
    for path in (str(broken), str(tmp_path / "missing.mmdb")):
        settings.GEOIP_PATH = path
        err = io.StringIO()
        call_command("check", stdout=io.StringIO(), stderr=err)
        assert "fraud.W002" in err.getvalue(), path

    settings.GEOIP_PATH = str(broken)
    client = client_for(player)
    with caplog.at_level(logging.WARNING, logger="fraud.geo"):
        from_ip(client, start, complete, actions[0], PARIS_IP)
        response = from_ip(client, start, complete, actions[1], SYDNEY_IP)
    assert "impossible_travel" not in accepted_rules(response)
    assert caplog.text.count("GeoIP database unusable") == 1  # said once per process

    settings.GEOIP_PATH = str(geoip_file)  # the directory form works as well as the file
    settings.GEOIP_PATH = str(geoip_file.parent)
    err = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=err)
    assert "fraud.W00" not in err.getvalue()
    assert geo.place_of(PARIS_IP) is not None


def test_the_review_desk_shows_where_each_completion_came_from_and_the_journey(
    geoip, proxied, client_for, player, actions, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(player)
    from_ip(client, start, complete, actions[0], PARIS_IP)
    from_ip(client, start, complete, actions[1], SYDNEY_IP)
    log = FraudLog.objects.get(event=FraudLog.Event.FLAGGED)
    desk = Client()
    desk.force_login(UserFactory(username="reviewer", is_staff=True, is_superuser=True))

    listing = desk.get("/admin/fraud/fraudlog/").content.decode()
    assert "Sydney, AU" in listing
    page = desk.get(f"/admin/fraud/fraudlog/{log.pk}/change/").content.decode()
    assert "Impossible travel" in page
    assert "Paris, FR (" in page
    assert "Sydney, AU (" in page
    assert "16,961 km in" in page
    assert "km/h" in page
    user_page = desk.get(f"/admin/fraud/reviewuser/{player.pk}/change/").content.decode()
    assert "Sydney, AU" in user_page
    completions = desk.get("/admin/actions/completion/").content.decode()
    assert "Paris, FR" in completions
    assert "Sydney, AU" in completions


def test_places_need_no_gdal(geoip_file) -> None:  # type: ignore[no-untyped-def]
    """Django's GeoIP2 wrapper imports and reads the database without GDAL (or GEOS): a
    fresh process places an address and has loaded neither."""
    done = run_django(
        [
            "-c",
            "import sys, django; django.setup(); from fraud.geo import place_of; "
            f"print(place_of({PARIS_IP!r}).label()); "
            "print(sorted(m for m in sys.modules if m.startswith(('django.contrib.gis.gdal', "
            "'django.contrib.gis.geos'))))",
        ],
        env={"DEBUG": "1", "GEOIP_PATH": str(geoip_file)},
    )
    assert done.stdout.split("\n")[:2] == ["Paris, FR", "[]"], done.stderr
