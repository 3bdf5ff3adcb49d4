"""Boards and periods in the admin. A board is saved through `board_save` (the form runs
the same checks first, so a bad definition shows as form errors); its period rules are
read-only once it has entries; a season can be ended now. Periods, their revisions and
standings are written only by the closer: read-only here."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.errors import ApplicationError, InvalidInputError
from leaderboard.boards import (
    RULE_FIELDS,
    BoardRulesFrozenError,
    board_check,
    board_has_entries,
    board_save,
    rule_changes,
    season_end_now,
)
from leaderboard.models import Board, Period, PeriodRevision

logger = logging.getLogger(__name__)

# The form's fields as `board_save` takes them (the slug is its key).
SAVED_FIELDS = ("title", *RULE_FIELDS, "is_active")
# Error details name API fields; the form names model fields.
DETAIL_FIELDS = {"actionTypes": "action_types"}


class BoardForm(forms.ModelForm):
    # A comma-separated list reads better than JSON for a list of ids.
    action_types = forms.CharField(
        required=False,
        help_text="Comma-separated action type ids it counts; empty: every action type.",
    )

    class Meta:
        model = Board
        fields = ("slug", *SAVED_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "action_types" in self.fields and self.instance.pk:
            self.initial["action_types"] = ", ".join(self.instance.action_types)

    def clean_action_types(self) -> list[str]:
        value = self.cleaned_data.get("action_types") or ""
        return sorted({part.strip() for part in value.split(",") if part.strip()})

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        # A copy: the instance keeps the stored values until the form is valid.
        board = Board(**{f.attname: getattr(self.instance, f.attname) for f in Board._meta.fields})
        fields = {name: cleaned[name] for name in ("slug", *SAVED_FIELDS) if name in cleaned}
        changed = rule_changes(board, fields) if board.pk else set()
        for name, value in fields.items():
            setattr(board, name, value)
        if board.period != Board.Period.SEASON:
            board.starts_at = board.ends_at = None
        try:
            board_check(board, changed=changed)
        except BoardRulesFrozenError as exc:
            for name in exc.details.get("fields", []):
                self.add_error(name if name in self.fields else None, exc.message)
        except InvalidInputError as exc:
            for name, problems in exc.details.items():
                field = DETAIL_FIELDS.get(name, name)
                for problem in problems:
                    self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(Board)
class BoardAdmin(admin.ModelAdmin):
    form = BoardForm
    list_display = ("slug", "title", "period", "timezone", "is_active")
    list_filter = ("period", "is_active")
    search_fields = ("slug", "title")
    actions = ("end_season_now",)

    def get_readonly_fields(self, request: HttpRequest, obj: Board | None = None) -> Any:
        if obj is None:
            return ("created_at", "ended_early_at")
        # The slug is the board's name in every URL and credit; rules freeze on entries.
        frozen = RULE_FIELDS if board_has_entries(obj) else ()
        return ("slug", *frozen, "created_at", "ended_early_at")

    def get_fields(self, request: HttpRequest, obj: Board | None = None) -> Any:
        return ("slug", *SAVED_FIELDS, "created_at", "ended_early_at")

    def save_model(self, request: HttpRequest, obj: Board, form: Any, change: bool) -> None:
        board, _ = board_save(
            slug=obj.slug,
            actor=request.user.get_username(),
            user=request.user,
            **{name: getattr(obj, name) for name in SAVED_FIELDS},
        )
        obj.pk, obj._state.adding = board.pk, False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # its periods keep it; switch it off instead

    @admin.action(description="End season now (its period then closes)")
    def end_season_now(self, request: HttpRequest, queryset: QuerySet[Board]) -> None:
        for board in queryset:
            if board.period != Board.Period.SEASON:
                self.message_user(request, f"{board.slug} is not a season.", messages.WARNING)
                continue
            try:
                ended = season_end_now(
                    slug=board.slug, actor=request.user.get_username(), user=request.user
                )
            except ApplicationError as exc:
                self.message_user(request, f"{board.slug}: {exc.message}", messages.ERROR)
                continue
            logger.info("season %s ended early by %s", board.slug, request.user)
            self.message_user(
                request,
                f"{board.slug} ended at {ended.ends_at:%Y-%m-%d %H:%M:%S} UTC; "
                "its standings close within seconds.",
                messages.SUCCESS,
            )


class PeriodRevisionInline(admin.TabularInline):
    model = PeriodRevision
    fields = ("revision", "participants", "checksum", "cause", "created_at")
    readonly_fields = fields
    extra = 0
    ordering = ("revision",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Period)
class PeriodAdmin(admin.ModelAdmin):
    list_display = (
        "board",
        "key",
        "state",
        "starts_at",
        "ends_at",
        "participants",
        "revision",
        "closed_at",
    )
    list_filter = ("state", "board")
    search_fields = ("key", "board__slug")
    list_select_related = ("board",)
    ordering = ("board", "-starts_at")
    inlines = (PeriodRevisionInline,)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
