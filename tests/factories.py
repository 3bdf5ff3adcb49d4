from __future__ import annotations

import factory
from django.contrib.auth.hashers import make_password

from accounts.models import User
from actions.models import ActionType

PASSWORD = "correct-horse-battery-staple"
# Hashed once with the configured (Argon2) hasher: hashing per user would slow every test.
_PASSWORD_HASH = make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"player{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = _PASSWORD_HASH


class ActionTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionType
        django_get_or_create = ("id",)

    id = factory.Sequence(lambda n: f"action-{n}")
    name = factory.LazyAttribute(lambda o: o.id.replace("-", " ").title())
    reward = 10
    cooldown_seconds = 0
    min_duration_seconds = 0
    daily_cap = None
    active = True
