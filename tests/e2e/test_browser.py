"""The live page in real headless Chromium (Debian's), served by the real stack."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from deploy.stack import Stack
from tests.conftest import access_token_for
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
