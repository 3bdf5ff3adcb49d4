"""Migration accounts 0005 (one account per name) on a database that already holds
accounts which collide: it stops, names them, changes nothing; the command resolves
them and the migration then goes through."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from accounts.models import User

BEFORE = ("accounts", "0004_user_blocked_index")
AFTER = ("accounts", "0005_username_key_email_ci")
WIDE = "ｐｒａｌｔｆｘ１４２"  # noqa: RUF001 - the full-width look-alike of praltfx142

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def old_schema() -> Iterator[type]:
    """The database as it was before 0005, and its User model; migrated back to the
    latest state afterwards, whatever the test did."""
    call_command("migrate", *BEFORE, verbosity=0)
    apps = MigrationExecutor(connection).loader.project_state([BEFORE]).apps
    try:
        yield apps.get_model("accounts", "User")
    finally:
        call_command("migrate", verbosity=0)


def columns() -> set[str]:
    with connection.cursor() as cursor:
        described = connection.introspection.get_table_description(cursor, "accounts_user")
    return {column.name for column in described}


def test_it_stops_on_colliding_accounts_names_them_and_changes_nothing(old_schema) -> None:  # type: ignore[no-untyped-def]
    old_schema.objects.create(username="praltfx142", email="p@example.com", password="!")
    old_schema.objects.create(username=WIDE, email="wide@example.com", password="!")
    old_schema.objects.create(username="erin", email="Erin@example.com", password="!")
    old_schema.objects.create(username="erin_b", email="erin@EXAMPLE.com", password="!")
    old_schema.objects.create(username="frank", email="frank@example.com", password="!")

    with pytest.raises(Exception, match="share a username or an email") as stopped:
        call_command("migrate", *AFTER, verbosity=0)
    message = str(stopped.value)
    for named in ("'praltfx142'", repr(WIDE), "Erin@example.com", "erin@EXAMPLE.com"):
        assert named in message
    assert "frank" not in message
    assert "account_collisions" in message
    assert AFTER[1] not in {
        name
        for app, name in MigrationRecorder(connection).applied_migrations()
        if app == "accounts"
    }
    assert "username_key" not in columns()
    assert old_schema.objects.count() == 5

    listed = StringIO()
    with pytest.raises(CommandError, match="2 collisions left"):
        call_command("account_collisions", stdout=listed)
    assert WIDE in listed.getvalue()

    erin_b = old_schema.objects.get(username="erin_b")
    out = StringIO()
    call_command(
        "account_collisions",
        "--rename",
        "--set-email",
        str(erin_b.pk),
        "erin.b@example.com",
        stdout=out,
    )
    assert "No accounts collide." in out.getvalue()

    call_command("migrate", *AFTER, verbosity=0)
    assert "username_key" in columns()
    names = dict(User.objects.values_list("username", "username_key"))
    assert names["praltfx142"] == "praltfx142"  # the oldest keeps its name
    assert names[f"{WIDE}-2"] == "praltfx142-2"
    assert User.objects.get(username="erin_b").email == "erin.b@example.com"
    assert User.objects.count() == 5
