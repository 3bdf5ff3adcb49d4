"""The live page in real headless Chromium (Debian's), served by the real stack (and, for
the player panel, by the embedded default)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client

from deploy.stack import Stack
from leaderboard.boards import board_save
from tests.conftest import access_token_for
from tests.e2e.embedded import embedded_server
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required for the browser test (apt-get install chromium)")
    return start_stack(web=1, ws=1, worker=False)


def complete(stack: Stack, token: str, action_id: str) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        token = http.post(f"/api/v1/actions/{action_id}/start/", headers=headers).json()[
            "actionToken"
        ]
        response = http.post(
            "/api/v1/actions/complete/",
            headers=headers,
            json={"actionId": action_id, "actionToken": token},
        )
        assert response.status_code == 200, response.text
        return response.json()


def test_it_shows_a_new_score_live_without_reloading(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    ActionTypeFactory(id="browser-click", reward=40)
    carol, dave = UserFactory(username="carol"), UserFactory(username="<b>dave</b>")
    # Tokens first: the ORM may not run inside Playwright's event loop.
    carol_token, dave_token = access_token_for(carol), access_token_for(dave)
    complete(stack, carol_token, "browser-click")
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 760})  # a phone
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{stack.url}/")
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=10_000)
        expect(page.locator(".row").first).to_contain_text("carol", timeout=10_000)
        page.evaluate("window.__notReloaded = true")

        complete(stack, dave_token, "browser-click")
        complete(stack, dave_token, "browser-click")
        top = page.locator(".row").first
        expect(top).to_contain_text("<b>dave</b>", timeout=5_000)  # escaped, shown as text
        expect(top.locator(".score")).to_have_text("80", timeout=5_000)
        assert page.evaluate("window.__notReloaded") is True
        assert page.locator(".row b").count() == 0  # the name was not parsed as HTML
        page.screenshot(path=str(ARTIFACTS / "live-board.png"), full_page=True)
        browser.close()
    assert errors == []


@contextmanager
def chromium(**context: Any) -> Iterator[tuple[Any, list[str]]]:
    """A browser context of Debian's Chromium, and the console errors of its pages."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        ctx = browser.new_context(**context)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        try:
            yield ctx, errors
        finally:
            browser.close()


def create_board(slug: str, title: str, period: str, **fields: Any) -> None:
    """A board as staff define it (`create_board` and the admin call this service)."""
    board_save(slug=slug, title=title, period=period, **fields)


def wait_for_boards(stack: Stack, *slugs: str) -> None:
    """The boards as the servers list them (a process may keep its list for a moment)."""
    deadline = time.monotonic() + 15
    listed: list[str] = []
    while time.monotonic() < deadline:
        answer = httpx.get(f"{stack.url}/api/v1/boards/", timeout=5)
        if answer.status_code == 200:
            listed = [board["slug"] for board in answer.json()["boards"]]
            if set(slugs) <= set(listed):
                return
        time.sleep(0.3)
    raise AssertionError(f"boards {slugs} never listed: {listed}")


def session_cookie(user, url: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The browser's session of a logged-in user (the session the admin login makes)."""
    client = Client()
    client.force_login(user)
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": url,
    }


def countdown_seconds(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.locator("#countdown").get_attribute("data-seconds"))


def test_it_shows_a_tab_per_board_and_the_selected_board_live(stack: Stack) -> None:
    from playwright.sync_api import expect

    ActionTypeFactory(id="board-click", reward=30)
    dave, erin = UserFactory(username="dave"), UserFactory(username="erin")
    dave_token, erin_token = access_token_for(dave), access_token_for(erin)
    create_board("daily", "Today", "day")
    create_board("weekly", "This week", "week", week_starts_on=1)
    wait_for_boards(stack, "global", "daily", "weekly")
    erin_session = session_cookie(erin, stack.url)
    with chromium(viewport={"width": 1000, "height": 800}) as (ctx, errors):
        ctx.add_cookies([erin_session])
        page = ctx.new_page()
        page.goto(f"{stack.url}/")
        tabs = page.get_by_role("tab")
        expect(tabs).to_have_count(3, timeout=10_000)
        expect(tabs).to_have_text(["All time", "Today", "This week"])
        expect(tabs.first).to_have_attribute("aria-selected", "true")
        expect(page.locator("#countdown")).to_have_text("Next reset: never")
        expect(page.locator("#winners")).to_be_hidden()  # no periods for all time

        page.get_by_role("tab", name="Today").click()
        expect(page.get_by_role("tab", name="Today")).to_have_attribute("aria-selected", "true")
        expect(tabs.first).to_have_attribute("aria-selected", "false")
        assert page.evaluate("location.hash") == "#board=daily"
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=10_000)
        expect(page.locator("#empty")).to_be_visible(timeout=10_000)
        expect(page.locator("#winners")).to_be_visible()
        expect(page.locator("#winners-empty")).to_be_visible(timeout=10_000)

        complete(stack, dave_token, "board-click")
        top = page.locator(".row").first
        expect(top).to_contain_text("dave", timeout=5_000)
        expect(top.locator(".score")).to_have_text("30", timeout=5_000)

        countdown = page.locator("#countdown")
        expect(countdown).to_have_text(re.compile(r"^Next reset in \d"))
        first = countdown_seconds(page)
        assert 0 < first <= 25 * 3600  # a day, and a DST day at most
        page.wait_for_timeout(2_200)
        assert countdown_seconds(page) < first  # it counts down

        # The hash keeps the tab on reload; the logged-in viewer's own row stands out.
        page.goto(f"{stack.url}/#board=weekly")
        expect(page.get_by_role("tab", name="This week")).to_have_attribute(
            "aria-selected", "true", timeout=10_000
        )
        expect(page.locator(".row").first).to_contain_text("dave", timeout=10_000)
        expect(page.locator(".row.mine")).to_have_count(0)
        complete(stack, erin_token, "board-click")
        mine = page.locator(".row.mine")
        expect(mine).to_contain_text("erin", timeout=5_000)
        expect(mine.locator(".rank")).to_have_text("#2")  # equal score, reached later
        expect(page.locator("#me-score")).to_have_text("30")
        expect(page.locator("#me-rank")).to_have_text("#2")
        page.screenshot(path=str(ARTIFACTS / "live-boards.png"), full_page=True)
    assert errors == []


def test_it_moves_on_to_the_next_period_when_one_ends(stack: Stack) -> None:
    """A season that ends while the page is open: the rollover frame ends the countdown
    and the finished season's winners appear."""
    from playwright.sync_api import expect

    ActionTypeFactory(id="sprint-click", reward=25)
    frank = UserFactory(username="frank")
    frank_token = access_token_for(frank)
    now = datetime.now(UTC).replace(microsecond=0)
    ends = now + timedelta(seconds=20)
    create_board("sprint", "Sprint", "season", starts_at=now - timedelta(hours=1), ends_at=ends)
    wait_for_boards(stack, "sprint")
    complete(stack, frank_token, "sprint-click")
    with chromium(viewport={"width": 800, "height": 800}) as (ctx, errors):
        page = ctx.new_page()
        page.goto(f"{stack.url}/#board=sprint")
        expect(page.get_by_role("tab", name="Sprint")).to_have_attribute(
            "aria-selected", "true", timeout=10_000
        )
        expect(page.locator(".row").first).to_contain_text("frank", timeout=10_000)
        expect(page.locator("#countdown")).to_have_text(re.compile(r"^Season ends in \d+s$"))
        expect(page.locator("#winners-empty")).to_be_visible(timeout=10_000)

        left = (ends - datetime.now(UTC)).total_seconds()
        expect(page.locator("#countdown")).to_have_text("Season over", timeout=(left + 5) * 1000)
        winner = page.locator("#winner-rows .winner")
        expect(winner).to_have_count(1, timeout=5_000)
        expect(winner).to_contain_text("frank")
        expect(winner.locator(".score")).to_have_text("25")
        expect(page.locator("#winners-period")).to_have_text("(sprint)")
    assert errors == []


def test_it_fits_a_phone_with_every_tab_in_reach(stack: Stack) -> None:
    from playwright.sync_api import expect

    titles = ["Today", "This week", "This month", "Quizzes of the week", "Winter season"]
    for n, title in enumerate(titles):
        create_board(f"phone-{n}", title, ("day", "week", "month", "week", "month")[n])
    wait_for_boards(stack, *(f"phone-{n}" for n in range(len(titles))))
    ActionTypeFactory(id="phone-click", reward=1_234_567)
    long_name = UserFactory(username="a-long-name-that-could-push-the-page-sideways-" + "x" * 40)
    complete(stack, access_token_for(long_name), "phone-click")
    with chromium(viewport={"width": 375, "height": 740}, is_mobile=True) as (ctx, errors):
        page = ctx.new_page()
        page.goto(f"{stack.url}/")
        tabs = page.get_by_role("tab")
        expect(tabs).to_have_count(len(titles) + 1, timeout=10_000)
        for n in range(len(titles) + 1):
            tab = tabs.nth(n)
            box = tab.bounding_box()
            assert box is not None
            assert box["x"] >= 0, (n, box)
            assert box["x"] + box["width"] <= 375, (n, box)
            tab.click()
            expect(tab).to_have_attribute("aria-selected", "true")
            expect(page.locator(".row").first).to_contain_text("a-long-name", timeout=5_000)
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
        page.screenshot(path=str(ARTIFACTS / "live-boards-phone.png"), full_page=True)
    assert errors == []


EMBEDDED_SETUP = r"""
import json
from django.test import Client
from accounts.models import User
from actions.models import ActionType
ActionType.objects.create(id="warm-up", name="Warm-up", reward=7, min_duration_seconds=2)
ActionType.objects.create(id="boost", name="Boost", reward=100)
ActionType.objects.create(id="daily-bonus", name="Daily bonus", reward=1, cooldown_seconds=3600)
api = Client(HTTP_HOST="127.0.0.1")
def post(path, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    r = api.post(path, json.dumps(body), content_type="application/json", **headers)
    assert r.status_code in (200, 201), r.content
    return r.json()
for name in ("ann", "ben", "cai"):  # three players ahead of ours: the top 3 is theirs
    login = {"username": name, "password": "a-Long-passw0rd!"}
    post("/api/v1/auth/register/", {**login, "email": f"{name}@example.com"})
    token = post("/api/v1/auth/token/", login)["access"]
    started = post("/api/v1/actions/boost/start/", {}, token)
    done = {"actionId": "boost", "actionToken": started["actionToken"]}
    post("/api/v1/actions/complete/", done, token)
player = User.objects.create_user(username="player", email="p@example.com", password="x-Long-9!")
browser = Client(HTTP_HOST="127.0.0.1")
browser.force_login(player)
print(json.dumps({"session": browser.cookies["sessionid"].value}))
"""


def test_a_player_starts_and_completes_an_action_on_the_embedded_default(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with (
        embedded_server(tmp_path, EMBEDDED_SETUP, LEADERBOARD_TOP_N="3") as server,
        chromium(viewport={"width": 375, "height": 740}) as (ctx, errors),
    ):
        ctx.add_cookies([{"name": "sessionid", "value": server.data["session"], "url": server.url}])
        page = ctx.new_page()
        page.goto(f"{server.url}/")
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=10_000)
        expect(page.locator(".row")).to_have_count(3, timeout=10_000)
        panel = page.get_by_role("region", name="Play")
        expect(panel).to_be_visible()
        action = panel.get_by_label("Action")
        expect(action.locator("option")).to_have_count(3, timeout=10_000)
        action.select_option("warm-up")
        complete_button = panel.get_by_role("button", name="Complete")
        expect(complete_button).to_be_disabled()

        panel.get_by_role("button", name="Start").click()
        expect(page.locator("#player-wait")).to_have_text(re.compile(r"^Complete in \d"))
        expect(complete_button).to_be_disabled()
        expect(complete_button).to_be_enabled(timeout=5_000)  # earliestCompletionAt passed
        complete_button.click()
        result = page.locator("#player-result")
        expect(result).to_have_text("+7 points: score 7, rank #4", timeout=5_000)
        # Outside the top 3, the page still tells the player where they stand.
        expect(page.locator("#me-score")).to_have_text("7")
        expect(page.locator("#me-rank")).to_have_text("#4")
        expect(page.locator(".row.mine")).to_have_count(0)

        # A refusal shows the error envelope's sentence, and the score stays.
        action.select_option("daily-bonus")
        for answer in (
            "+1 points: score 8, rank #4",
            "This action is cooling down; try again later.",
        ):
            panel.get_by_role("button", name="Start").click()
            expect(result).to_have_text("Started Daily bonus (+1).", timeout=5_000)
            expect(complete_button).to_be_enabled(timeout=5_000)
            complete_button.click()
            expect(result).to_have_text(answer, timeout=5_000)
            expect(complete_button).to_be_disabled()  # the token is used up either way
        expect(result).to_have_attribute("data-kind", "error")
        expect(page.locator("#me-score")).to_have_text("8")
        page.screenshot(path=str(ARTIFACTS / "live-player.png"), full_page=True)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
    # The browser reports the refused completion's 409 as a failed resource; nothing else.
    unexpected = [e for e in errors if "status of 409" not in e]
    assert unexpected == [], server.log.read_text()[-3000:]
