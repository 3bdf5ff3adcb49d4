from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "score", "is_banned", "is_active", "date_joined")
    list_filter = ("is_banned", "is_active", "is_staff")
    # Bans go through the review desk's audited actions (they end sessions and take the
    # user off the board), never through this form.
    readonly_fields = (
        "score",
        "score_reached_at",
        "is_banned",
        "banned_at",
        "date_joined",
        "last_login",
    )
    # The email is asked for on creation too: it is unique (case-insensitively), so a
    # second account without one would be refused by the database.
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "usable_password", "password1", "password2"),
            },
        ),
    )
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Scoreboard", {"fields": ("score", "score_reached_at", "is_banned", "banned_at")}),
    )
