"""The reviewer's path through the review desk in real headless Chromium (Debian's), on the
real stack (nginx, gunicorn, daphne) with its Content-Security-Policy: log in, open the
desk, open the user a script got flagged and blocked, read why, reverse a completion with
a note, ban with a note; the board drops them and the audit trail has both notes.
Screenshots at desktop and phone width go to test-artifacts/ (not in git)."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from deploy.stack import Stack
from fraud.audit import audit_drain
from fraud.models import AuditEvent
from fraud.rules import PastCompletion
from fraud.signals import RedisSignalStore, device_of, ip_prefix
from tests.conftest import access_token_for
from tests.e2e.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.factories import PASSWORD, ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCRIPT_UA = "timer-script/1.0 (bot)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    # nginx passes the host without its port (`Host $host`), so the admin's forms on a
    # port other than 80/443 need their origin trusted, as an operator's would.
    port = free_port()
    return start_stack(
        web=1,
        ws=1,
        worker=False,
        port=port,
        extra_env={"CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}"},
    )


def script_on_a_timer(stack: Stack, token: str, *, every: float = 0.3, most: int = 9) -> list[int]:
    """Complete `click` every `every` seconds through the API until the rules block it."""
    statuses: list[int] = []
    headers = {"Authorization": f"Bearer {token}", "User-Agent": SCRIPT_UA}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        beat = time.monotonic()
        for i in range(most):
            action_token = http.post("/api/v1/actions/click/start/").json()["actionToken"]
            # The first completion warms the server up off the beat; then a steady timer.
            time.sleep(max(0.0, beat + i * every - time.monotonic()) if i else 0.0)
            if i == 0:
                beat = time.monotonic()
            done = http.post(
                "/api/v1/actions/complete/", json={"actionId": "click", "actionToken": action_token}
            )
            statuses.append(done.status_code)
            if done.status_code == 403:
                break
    return statuses


def board_names(stack: Stack) -> list[str]:
    entries = httpx.get(f"{stack.url}/api/v1/leaderboard/", timeout=10).json()["entries"]
    return [entry["username"] for entry in entries]


def board_names_settled(stack: Stack, expected: set[str]) -> set[str]:
    """The anonymous board's names as nginx serves it: cached for up to a second (SPEC)."""
    deadline = time.monotonic() + 5
    names = set(board_names(stack))
    while names != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        names = set(board_names(stack))
    return names


def test_a_reviewer_reads_why_reverses_with_a_note_and_bans(stack: Stack) -> None:
    from playwright.sync_api import expect, sync_playwright

    ActionTypeFactory(id="click", reward=10)
    UserFactory(username="reviewer", is_staff=True, is_superuser=True)
    mallory, alice = UserFactory(username="mallory"), UserFactory(username="alice")
    mallory_token, alice_token = access_token_for(mallory), access_token_for(alice)
    script_on_a_timer(stack, alice_token, most=1)
    statuses = script_on_a_timer(stack, mallory_token)
    if statuses[-1] != 403:
        # A busy machine's jitter hid the timer from the rules: give them the exact beat
        # (in the stack's own Redis) and complete once more.
        store, now = RedisSignalStore(), time.time()
        for i in range(15, 0, -1):
            past = PastCompletion(
                now - i * 0.3, "click", ip_prefix("127.0.0.1"), device_of(SCRIPT_UA), 10
            )
            store.remember(user_id=mallory.pk, past=past)
        statuses += script_on_a_timer(stack, mallory_token, most=1)
    assert statuses[-1] == 403, statuses  # flagged on the way, then blocked
    audit_drain()  # what the worker does about a second later
    assert board_names_settled(stack, {"mallory", "alice"}) == {"mallory", "alice"}
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # A CSP violation (an inline script or style) is a console error in Chromium.
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

        page.goto(f"{stack.url}/admin/")
        page.fill("#id_username", "reviewer")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_be_visible()

        page.goto(f"{stack.url}/admin/fraud/reviewuser/")
        expect(page.locator(".desk-counts")).to_contain_text("1 Watch")
        page.screenshot(path=str(ARTIFACTS / "desk-list-desktop.png"), full_page=True)
        page.get_by_role("link", name="mallory", exact=True).click()

        summary = page.locator(".desk-summary")
        expect(summary).to_contain_text("Why mallory is on the desk")
        expect(summary).to_contain_text(re.compile(r"Watch, rolling risk \d+ %"))
        expect(summary).to_contain_text("Timed like a script")
        expect(summary).to_contain_text(re.compile(r"intervals within 0\.\d\ds of"))
        expect(summary).to_contain_text("An ordinary player")
        expect(page.locator(".desk-chart svg circle.desk-dot-blocked")).to_have_count(1)
        expect(page.locator(".desk-row-flagged").first).to_contain_text("timer-script/1.0 (bot)")
        page.screenshot(path=str(ARTIFACTS / "desk-user-desktop.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "desk-user-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # Reverse the newest flagged completion, with a note.
        flagged = page.locator(".desk-row-flagged input[name=completions]").first
        flagged.check()
        page.get_by_role("button", name="Reverse selected completions").click()
        expect(page.locator("h1")).to_have_text("Reverse completions of mallory?")
        expect(page.locator(".desk-changes")).to_contain_text("Points removed: 10 (1 completion,")
        page.screenshot(path=str(ARTIFACTS / "desk-reverse-confirm-desktop.png"), full_page=True)
        # The note is required: the browser will not send the form without one.
        expect(page.locator("textarea[name=note]")).to_have_attribute("required", "")
        page.fill("textarea[name=note]", "timer script, 0.3 s apart")
        page.get_by_role("button", name="Yes, reverse selected completions").click()
        expect(page.locator(".messagelist")).to_contain_text("1 completion reversed")
        expect(page.locator(".desk-decisions")).to_contain_text("timer script, 0.3 s apart")

        # Ban, with a note.
        page.locator("a[data-act=ban]").click()
        expect(page.locator(".desk-changes")).to_contain_text("Off the board at once: now rank 1")
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "desk-ban-confirm-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.fill("textarea[name=note]", "scripted account")
        page.get_by_role("button", name="Yes, ban").click()
        expect(page.locator(".messagelist")).to_contain_text("Banned mallory.")
        expect(page.locator(".desk-headline")).to_contain_text("Banned")
        expect(page.locator("a[data-act=unban]")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "desk-user-banned-desktop.png"), full_page=True)

        page.goto(f"{stack.url}/admin/fraud/auditevent/?q=mallory")
        expect(page.locator("#result_list")).to_contain_text("scripted account")
        expect(page.locator("#result_list")).to_contain_text("timer script, 0.3 s apart")
        browser.close()
    # The admin has no favicon; anything else missing (a stylesheet, a script) is a fault.
    assert [url for url in missing if not url.endswith("/favicon.ico")] == []
    assert [e for e in errors if "404" not in e] == []
    assert board_names_settled(stack, {"alice"}) == {"alice"}
    banned = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_BANNED, user=mallory)
    reversed_ = AuditEvent.objects.get(kind=AuditEvent.Kind.COMPLETION_REVERSED, user=mallory)
    assert (banned.payload["actor"], banned.payload["note"]) == ("reviewer", "scripted account")
    assert reversed_.payload["note"] == "timer script, 0.3 s apart"
    assert reversed_.payload["delta"] == -10
