"""Usernames unique after NFKC normalisation and case folding, emails case-insensitively,
both enforced by the database (accounts/names.py says why a key column for names and an
index on lower(email) for emails).

Destroys nothing: if existing accounts already collide, the migration stops before any
change (it runs in one transaction), naming them; `manage.py account_collisions` lists
and renames them (docs/accounts.md).
"""

import django.db.models.functions.text
from django.db import migrations, models

from accounts.names import Account, AccountCollisionError, collisions_of, username_key


def fill_username_keys(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    users = list(User.objects.order_by("date_joined", "pk").only("pk", "username", "email"))
    found = collisions_of(Account(u.pk, u.username, u.email) for u in users)
    if found:
        raise AccountCollisionError(found)
    for user in users:
        user.username_key = username_key(user.username)
    User.objects.bulk_update(users, ["username_key"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_user_blocked_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="username_key",
            field=models.CharField(editable=False, max_length=255, null=True),
        ),
        migrations.RunPython(fill_username_keys, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="user",
            name="username_key",
            field=models.CharField(editable=False, max_length=255),
        ),
        migrations.AlterField(
            model_name="user",
            name="email",
            field=models.EmailField(max_length=254, verbose_name="email address"),
        ),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                fields=("username_key",), name="user_username_key_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.CheckConstraint(
                condition=~models.Q(username_key=""), name="user_username_key_set"
            ),
        ),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("email"),
                name="user_email_ci_unique",
                violation_error_message="This email is already registered.",
            ),
        ),
    ]
