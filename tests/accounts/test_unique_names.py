"""One account per name: usernames are compared after NFKC normalisation and case
folding, emails case-insensitively, and PostgreSQL's unique constraints decide races
between real concurrent registrations (threads, each with its own connection)."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import PASSWORD, UserFactory

PASSWORD_NEW = "a-long-unusual-pass-42"
FULL_WIDTH = str.maketrans(
    {chr(c): chr(c - 0x21 + 0xFF01) for c in range(0x21, 0x7F)}
)  # ASCII '!'..'~' to their full-width forms


def full_width(text: str) -> str:
    return text.translate(FULL_WIDTH)


def accounts_named(name: str) -> list[User]:
    """The accounts whose name is `name` once compared (NFKC, case folded)."""
    key = unicodedata.normalize("NFKC", name).casefold()
    return [
        u for u in User.objects.all() if unicodedata.normalize("NFKC", u.username).casefold() == key
    ]


def register(username: str, email: str) -> Any:
    return APIClient().post(
        "/api/v1/auth/register/",
        {"username": username, "email": email, "password": PASSWORD_NEW},
        format="json",
    )


def run_concurrently(calls: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Start every call at once (a barrier) and collect the results in order."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a registration hung"
    return results


def outcome(response: Any) -> tuple[int, str]:
    """(status, the field the error names, or "")."""
    if response.status_code == 201:
        return 201, ""
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}, body
    return response.status_code, ",".join(body["error"]["details"].get("fields", {}))


# --- races ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_account_when_one_name_registers_sixteen_times_at_once(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REGISTRATIONS_PER_IP = "1000/h"
    names = ["racer", "RACER", full_width("racer"), "Racer"]
    calls = [
        (lambda i=i: outcome(register(names[i % 4], f"racer{i}@example.com"))) for i in range(16)
    ]
    results = run_concurrently(calls)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results).count((201, "")) == 1, results
    assert sorted(results)[1:] == [(400, "username")] * 15, results
    assert len(accounts_named("racer")) == 1


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_account_when_one_email_in_many_cases_registers_at_once(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REGISTRATIONS_PER_IP = "1000/h"
    emails = ["twin@example.com", "TWIN@example.com", "Twin@Example.Com", "twin@EXAMPLE.COM"]
    calls = [(lambda i=i: outcome(register(f"twin{i}", emails[i % 4]))) for i in range(8)]
    results = run_concurrently(calls)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results) == [(201, ""), *[(400, "email")] * 7], results
    assert User.objects.filter(email__iexact="twin@example.com").count() == 1


# --- one request at a time --------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_full_width_look_alike_of_a_name() -> None:
    UserFactory(username="praltfx142")
    response = register(full_width("praltfx142"), "lookalike@example.com")
    assert outcome(response) == (400, "username")
    assert response.json()["error"]["code"] == "invalid"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_it_stores_a_full_width_name_in_its_normal_form() -> None:
    response = register(full_width("Wide1"), "wide@example.com")
    assert response.status_code == 201, response.json()
    assert response.json()["username"] == "Wide1"
    assert User.objects.get().username == "Wide1"


@pytest.mark.django_db
def test_it_refuses_an_email_that_differs_only_in_case() -> None:
    UserFactory(username="carol", email="Carol@Example.COM")
    response = register("carol2", "carol@example.com")
    assert outcome(response) == (400, "email")


@pytest.mark.django_db
def test_the_database_refuses_two_names_with_one_key() -> None:
    UserFactory(username="dave")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username=full_width("DAVE"), email="d2@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="dave2", email="DAVE@example.com")


# --- logins with the normalised name -----------------------------------------------------


def login(username: str, password: str = PASSWORD) -> Any:
    return APIClient().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


@pytest.mark.django_db
def test_it_logs_in_by_any_form_of_the_name(alice) -> None:  # type: ignore[no-untyped-def]
    for name in ("alice", "ALICE", full_width("alice"), full_width("Alice")):
        assert login(name).status_code == 200, name


@pytest.mark.django_db
def test_every_form_of_a_name_spends_its_one_failure_budget(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_FAILURES_PER_USERNAME = "3/h"
    for name in ("alice", "ALICE", full_width("alice")):
        assert login(name, "wrong-password").status_code == 401
    assert login(full_width("ALICE")).status_code == 429


@pytest.mark.django_db
def test_the_admin_logs_in_by_any_form_of_the_name() -> None:
    UserFactory(username="Boss", is_staff=True, is_superuser=True)
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": full_width("boss"), "password": PASSWORD}
    )
    assert response.status_code == 302, response.content[:500]
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_the_admin_form_refuses_a_look_alike_name_and_a_case_twin_email(alice) -> None:  # type: ignore[no-untyped-def]
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    form = {
        "username": full_width("alice"),
        "email": "someone@example.com",
        "usable_password": "true",
        "password1": PASSWORD_NEW,
        "password2": PASSWORD_NEW,
    }
    response = client.post("/admin/accounts/user/add/", form)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    response = client.post(
        "/admin/accounts/user/add/", {**form, "username": "alice2", "email": alice.email.upper()}
    )
    assert response.status_code == 200
    assert "This email is already registered." in response.content.decode()
    assert User.objects.count() == 2
    response = client.post("/admin/accounts/user/add/", {**form, "username": "alice2"})
    assert response.status_code == 302


@pytest.mark.django_db
def test_bulk_created_accounts_are_keyed_and_refused_alike() -> None:
    User.objects.bulk_create(
        [User(username="Bulk1", email="b1@example.com"), User(username="bulk2", email="b2@x.org")]
    )
    assert set(User.objects.values_list("username_key", flat=True)) == {"bulk1", "bulk2"}
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(username=full_width("BULK1"), email="b3@example.com")])
