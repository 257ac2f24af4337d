"""The admin of periodic jobs: the schedules, with their next and last fire and
the last job's outcome. Schedules declared in ``DBQ_SCHEDULES`` are listed
read-only (change them in the setting); the others are added, edited, enabled,
disabled and deleted here, validated as the setting is (django_dbq.E013-E016),
so a bad expression or zone is a form error."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import schedules
from ..models import Job, Schedule
from ..scheduling import firing
from . import display
from .forms import WorkspaceField, job_name_choices


class ScheduleForm(forms.ModelForm):
    job_name = forms.ChoiceField(label="Job", choices=job_name_choices)
    timezone = forms.ChoiceField(
        choices=lambda: [(z, z) for z in sorted(zoneinfo.available_timezones())], initial="UTC"
    )
    workspace = WorkspaceField(help_text="A JSON object: the workspace of each job it creates.")

    class Meta:
        model = Schedule
        fields = ["name", *firing.DEFINITION_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        problems = schedules.field_problems(
            "This schedule",
            job=data.get("job_name"),
            cron=(data.get("cron") or "").strip(),
            every=data.get("every_seconds"),
            timezone=data.get("timezone"),
            workspace=data.get("workspace"),
            queue=data.get("queue_name"),
            priority=data.get("priority"),
            missed=data.get("missed"),
        )
        if problems:
            raise ValidationError([f"{p.msg} {p.hint}" for p in problems])
        data["cron"] = (data.get("cron") or "").strip()
        return data


@admin.action(description="Enable the selected schedules", permissions=["change"])
def enable(modeladmin: Any, request: Any, queryset: Any) -> None:
    _switch(modeladmin, request, queryset, True)


@admin.action(description="Disable the selected schedules", permissions=["change"])
def disable(modeladmin: Any, request: Any, queryset: Any) -> None:
    _switch(modeladmin, request, queryset, False)


def _switch(modeladmin: Any, request: Any, queryset: Any, on: bool) -> None:
    now = timezone.now()
    rows = queryset.filter(from_settings=False, enabled=not on)
    values: dict[str, Any] = {"enabled": on, "modified": now}
    if on:
        values["last_tick"] = now  # the ticks while it was disabled are not missed ones
    changed = rows.update(**values)
    skipped = queryset.count() - changed
    modeladmin.message_user(
        request,
        f"{'Enabled' if on else 'Disabled'} {changed} schedule(s)"
        + (
            f"; left {skipped} alone (declared in DBQ_SCHEDULES, or already so)."
            if skipped
            else "."
        ),
        messages.SUCCESS if changed else messages.INFO,
    )


class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name",
        "job_name",
        "when",
        "enabled",
        "source",
        "next_fire_display",
        "last_fire_display",
        "last_job_display",
    )
    list_filter = ("enabled", "from_settings", "job_name")
    search_fields = ("name", "job_name")
    actions = [enable, disable]

    class Media:
        css = {"all": ("django_dbq/admin.css",)}

    @admin.display(description="when")
    def when(self, schedule: Schedule) -> str:
        if schedule.every_seconds:
            return f"every {schedule.every_seconds} s"
        return f"{schedule.cron} ({schedule.timezone})"

    @admin.display(description="source", ordering="from_settings")
    def source(self, schedule: Schedule) -> str:
        return "DBQ_SCHEDULES" if schedule.from_settings else "admin"

    @admin.display(description="next fire")
    def next_fire_display(self, schedule: Schedule) -> Any:
        return display.moment(firing.next_fire(schedule))

    @admin.display(description="last fire", ordering="last_tick")
    def last_fire_display(self, schedule: Schedule) -> Any:
        return display.moment(schedule.last_tick)

    @admin.display(description="last job")
    def last_job_display(self, schedule: Schedule) -> Any:
        if schedule.last_job_id is None:
            return display.NOTHING
        job = Job.objects.filter(pk=schedule.last_job_id).only("pk", "state").first()
        if job is None:
            return format_html('<span class="dbq-muted">deleted</span>')
        try:
            url = reverse(f"{self.admin_site.name}:django_dbq_job_change", args=[job.pk])
        except NoReverseMatch:
            return display.state_badge(job.state)
        return format_html('<a href="{}">{}</a>', url, display.state_badge(job.state))

    def get_readonly_fields(self, request: Any, obj: Schedule | None = None) -> Any:
        if obj is None:
            return ()
        shown = ("next_fire_display", "last_fire_display", "last_job_display")
        return (*self.form.Meta.fields, *shown) if obj.from_settings else shown

    def has_change_permission(self, request: Any, obj: Schedule | None = None) -> bool:
        """Schedules of DBQ_SCHEDULES are shown, never edited here."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or not obj.from_settings)

    def has_delete_permission(self, request: Any, obj: Schedule | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.from_settings)

    def save_model(self, request: Any, obj: Schedule, form: Any, change: bool) -> None:
        now = timezone.now()
        if not change:
            obj.created = now
        elif "enabled" in form.changed_data and obj.enabled:
            obj.last_tick = now  # the ticks while it was disabled are not missed ones
        obj.modified = now
        obj.from_settings = False
        super().save_model(request, obj, form, change)
