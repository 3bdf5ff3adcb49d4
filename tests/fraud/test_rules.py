"""Each fraud rule, on crafted histories that fire it and that do not."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fraud.geo import Place
from fraud.rules import RULES, PastCompletion, Signals, combine
from tests.geoip import LYON, PARIS, SYDNEY, City

NOW = 1_800_000_000.0
OLD_ACCOUNT = datetime.fromtimestamp(NOW, tz=UTC) - timedelta(days=90)


def signals(**overrides) -> Signals:  # type: ignore[no-untyped-def]
    base = Signals(
        now=NOW,
        action_id="click",
        reward=5,
        cooldown_seconds=0,
        min_duration_seconds=0,
        ip_prefix="203.0.113.0/24",
        device="d1",
        date_joined=OLD_ACCOUNT,
        score=5000,
        history=[],
        accounts_on_ip=1,
    )
    return replace(base, **overrides)


def history(gaps: list[float], **fields) -> list[PastCompletion]:  # type: ignore[no-untyped-def]
    """Past completions `gaps` seconds apart, the last one gaps[-1] before NOW; newest first."""
    out, at = [], NOW
    for gap in reversed(gaps):
        at -= gap
        out.append(
            PastCompletion(
                at=at,
                action_id=fields.get("action_id", "click"),
                ip_prefix=fields.get("ip_prefix", "203.0.113.0/24"),
                device=fields.get("device", "d1"),
                delta=fields.get("delta", 5),
                place=fields.get("place"),
            )
        )
    return out


def contribution(name: str, s: Signals) -> float:
    result = RULES[name](s)
    assert result is not None
    assert 0.0 <= result.contribution <= 1.0
    if result.contribution > 0:
        assert result.reason
    return result.contribution


def test_it_registers_every_rule_of_the_spec() -> None:
    assert set(RULES) == {
        "request_frequency",
        "score_jump",
        "regular_timing",
        "impossible_rate",
        "device_change",
        "new_account",
        "duplicate_completion",
        "ip_farm",
        "impossible_travel",
    }


def test_it_fires_on_more_completions_a_minute_than_a_person_manages() -> None:
    fast = signals(history=history([0.5] * 19))  # 120 a minute; a person: 30
    assert contribution("request_frequency", fast) == 1.0
    paced = signals(history=history([3.0] * 19))  # 20 a minute
    assert contribution("request_frequency", paced) == 0.0
    # A slow action allows fewer: one that takes 10 s, done every 5 s, is too fast.
    slow = signals(min_duration_seconds=10, history=history([5.0] * 10))
    assert contribution("request_frequency", slow) == 1.0


def test_it_fires_on_a_score_jump_against_the_users_own_history() -> None:
    jump = signals(score=3000, reward=500, history=history([60.0] * 5, delta=500))
    assert contribution("score_jump", jump) > 0.5
    steady = signals(score=50_000, reward=5, history=history([60.0] * 5))
    assert contribution("score_jump", steady) == 0.0
    # A new player's first points are no jump: the floor stands in for a history.
    first = signals(score=0, reward=25, history=[])
    assert contribution("score_jump", first) == 0.0


def test_it_fires_on_timing_as_even_as_a_timer() -> None:
    timer = signals(history=history([6.0, 6.01, 5.99, 6.0, 6.02, 5.98, 6.0, 6.0, 6.01, 6.0, 6.0]))
    assert contribution("regular_timing", timer) > 0.9
    rng = random.Random(7)
    person = signals(history=history([rng.uniform(1.5, 6.0) for _ in range(15)]))
    assert contribution("regular_timing", person) == 0.0


def test_it_grows_more_sure_of_a_timer_with_more_intervals() -> None:
    few = contribution("regular_timing", signals(history=history([6.0] * 4)))
    many = contribution("regular_timing", signals(history=history([6.0] * 12)))
    assert 0.4 <= few < many == 1.0
    assert contribution("regular_timing", signals(history=history([6.0] * 2))) == 0.0


def test_it_fires_on_completions_closer_than_the_actions_minimum_duration() -> None:
    quick = signals(
        action_id="level-up", min_duration_seconds=30, history=history([5.0], action_id="level-up")
    )
    assert contribution("impossible_rate", quick) > 0.8
    fair = signals(
        action_id="level-up", min_duration_seconds=30, history=history([45.0], action_id="level-up")
    )
    assert contribution("impossible_rate", fair) == 0.0
    other = signals(
        action_id="level-up", min_duration_seconds=30, history=history([5.0], action_id="quiz")
    )
    assert contribution("impossible_rate", other) == 0.0


def test_it_fires_on_a_new_network_and_device_right_after_the_last_completion() -> None:
    moved = signals(ip_prefix="198.51.100.0/24", device="d2", history=history([10.0]))
    assert contribution("device_change", moved) > 0.9
    network_only = signals(ip_prefix="198.51.100.0/24", history=history([10.0]))
    assert 0.5 < contribution("device_change", network_only) < 0.6
    same = signals(history=history([10.0]))
    assert contribution("device_change", same) == 0.0
    later = signals(ip_prefix="198.51.100.0/24", device="d2", history=history([3600.0]))
    assert contribution("device_change", later) == 0.0


def test_it_fires_on_an_account_younger_than_a_day() -> None:
    fresh = signals(date_joined=datetime.fromtimestamp(NOW - 60, tz=UTC))
    assert contribution("new_account", fresh) > 0.99
    half = signals(date_joined=datetime.fromtimestamp(NOW - 43_200, tz=UTC))
    assert contribution("new_account", half) == pytest.approx(0.5)
    assert contribution("new_account", signals()) == 0.0


def test_it_fires_on_the_same_action_again_within_seconds() -> None:
    double = signals(history=history([0.2]))
    assert contribution("duplicate_completion", double) == pytest.approx(0.9)
    assert contribution("duplicate_completion", signals(history=history([5.0]))) == 0.0
    other = signals(history=history([0.2], action_id="quiz"))
    assert contribution("duplicate_completion", other) == 0.0


def test_it_fires_on_many_accounts_from_one_address() -> None:
    assert contribution("ip_farm", signals(accounts_on_ip=10)) == 1.0
    assert 0 < contribution("ip_farm", signals(accounts_on_ip=5)) < 1
    assert contribution("ip_farm", signals(accounts_on_ip=2)) == 0.0


def test_it_leaves_out_the_rules_whose_signals_are_missing() -> None:
    blind = signals(history=None, accounts_on_ip=None)
    ran = {name for name, rule in RULES.items() if rule(blind) is not None}
    assert ran == {"new_account"}


def test_it_combines_contributions_into_one_risk_in_the_unit_interval() -> None:
    assert combine({}) == 0.0
    assert combine({"a": 0.5}) == 0.5
    assert combine({"a": 0.5, "b": 0.5}) == pytest.approx(0.75)
    assert combine({"a": 1.0, "b": 0.3}) == 1.0
    assert combine({"a": 2.0}) == 1.0


def test_it_sees_a_timer_through_a_missed_beat_and_a_quick_retry() -> None:
    timer = signals(history=history([6.0] * 8 + [12.0] + [6.0] * 4 + [0.05]))
    assert contribution("regular_timing", timer) > 0.9


def test_it_does_not_take_a_person_at_a_steady_pace_for_a_timer() -> None:
    """Seconds apart, within about a tenth of each other: a person in a rhythm."""
    steady = signals(history=history([2.29, 2.54, 3.38, 2.32, 2.42, 2.6, 1.67, 2.43, 2.7, 2.47]))
    assert contribution("regular_timing", steady) < 0.2


def test_it_refuses_to_start_with_fraud_settings_that_make_no_sense(settings) -> None:  # type: ignore[no-untyped-def]
    from fraud.checks import fraud_settings_check

    assert fraud_settings_check() == []
    settings.FRAUD_RULE_WEIGHTS = {"regular_timing": 1.5, "typo_rule": 0.5}
    settings.FRAUD_REVIEW_WEIGHTS = {"hour_spread": -0.1}
    settings.FRAUD_BLOCK_THRESHOLD = 0.4
    ids = sorted(error.id for error in fraud_settings_check())
    assert ids == ["fraud.E001", "fraud.E002", "fraud.E002", "fraud.E003"]


def test_it_reads_weights_from_the_environment() -> None:
    from tests.support import run_django

    done = run_django(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.FRAUD_RULE_WEIGHTS['ip_farm'], s.FRAUD_RULE_WEIGHTS['regular_timing'])",
        ],
        env={"DEBUG": "1", "FRAUD_RULE_WEIGHTS": "ip_farm=0,regular_timing=0.7"},
    )
    assert done.stdout.split() == ["0.0", "0.7"], done.stderr


def place(city: City) -> Place:
    return Place(city.latitude, city.longitude, city.radius_km, city.country, city.name)


def travel(here: City, there: City, seconds_before: float) -> Signals:
    """This completion from `here`, the user's last one from `there` `seconds_before`."""
    return signals(place=place(here), history=history([seconds_before], place=place(there)))


def test_it_fires_on_paris_then_sydney_four_minutes_apart() -> None:
    s = travel(SYDNEY, PARIS, 240)
    assert contribution("impossible_travel", s) == 1.0
    result = RULES["impossible_travel"](s)
    assert result is not None
    assert result.reason.startswith("Paris, FR to Sydney, AU: 16,961 km in 4 min")
    assert result.evidence is not None
    assert (result.evidence["from"]["city"], result.evidence["to"]["city"]) == ("Paris", "Sydney")
    assert result.evidence["distanceKm"] == 16961
    assert result.evidence["seconds"] == 240
    # the least distance (less both accuracy radii) over the time: about 254,000 km/h
    assert result.evidence["speedKmh"] == pytest.approx((16961 - 40) / (4 / 60), rel=0.001)


def test_it_does_not_fire_on_a_journey_a_traveller_can_make() -> None:
    assert contribution("impossible_travel", travel(LYON, PARIS, 3600)) == 0.0
    assert contribution("impossible_travel", travel(SYDNEY, PARIS, 86400)) == 0.0
    assert contribution("impossible_travel", travel(PARIS, PARIS, 10)) == 0.0


def test_it_never_fires_below_the_minimum_distance(settings) -> None:  # type: ignore[no-untyped-def]
    """Paris to Lyon (392 km) in four minutes: closer than city-level GeoIP can tell
    apart by default (FRAUD_TRAVEL_MIN_KM, 500 km); fires with a smaller minimum."""
    assert contribution("impossible_travel", travel(LYON, PARIS, 240)) == 0.0
    settings.FRAUD_TRAVEL_MIN_KM = 100
    assert contribution("impossible_travel", travel(LYON, PARIS, 240)) == 1.0


def test_it_grows_with_the_speed_from_the_plausible_one_to_twice_it(settings) -> None:  # type: ignore[no-untyped-def]
    # Paris to Sydney, 16,921 km at least: 20 h is 846 km/h, 12 h 1,410 km/h, 6 h 2,820 km/h
    assert contribution("impossible_travel", travel(SYDNEY, PARIS, 20 * 3600)) == 0.0
    assert 0.3 < contribution("impossible_travel", travel(SYDNEY, PARIS, 12 * 3600)) < 0.5
    assert contribution("impossible_travel", travel(SYDNEY, PARIS, 6 * 3600)) == 1.0
    settings.FRAUD_TRAVEL_MAX_KMH = 5000
    assert contribution("impossible_travel", travel(SYDNEY, PARIS, 6 * 3600)) == 0.0


def test_it_compares_with_the_last_completion_that_has_a_place() -> None:
    placed = history([240], place=place(PARIS))
    unplaced = history([60, 30])  # from private or unknown addresses since
    s = signals(place=place(SYDNEY), history=[*unplaced, *placed])
    assert contribution("impossible_travel", s) == 1.0
    assert contribution("impossible_travel", signals(place=place(SYDNEY), history=unplaced)) == 0


def test_it_stands_aside_without_a_place_for_this_completion() -> None:
    assert RULES["impossible_travel"](signals(history=history([240], place=place(PARIS)))) is None


def test_impossible_travel_alone_flags_and_never_blocks(settings) -> None:  # type: ignore[no-untyped-def]
    weight = settings.FRAUD_RULE_WEIGHTS["impossible_travel"]
    risk = combine({"impossible_travel": weight * 1.0})
    assert settings.FRAUD_FLAG_THRESHOLD <= risk < settings.FRAUD_BLOCK_THRESHOLD
