from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,63}$", "Use lowercase letters, digits, - and _."
)


class ActionTypeQuerySet(models.QuerySet["ActionType"]):
    def active(self) -> ActionTypeQuerySet:
        return self.filter(active=True)


class ActionType(models.Model):
    """Something a user can complete for points; defined by staff."""

    id = models.SlugField(primary_key=True, max_length=64, validators=[slug_validator])
    name = models.CharField(max_length=120)
    reward = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    cooldown_seconds = models.PositiveIntegerField(default=0)
    min_duration_seconds = models.PositiveIntegerField(default=0)
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ActionTypeQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reward__gte=1), name="action_reward_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(daily_cap__isnull=True) | models.Q(daily_cap__gte=1),
                name="action_daily_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"
