"""The Job admin: a list operators can act from, and add and change pages.

- The list shows each job's state as a badge, its attempts and step, when it runs,
  how long it has waited or run, its last error and the worker holding it. It
  has no date hierarchy: that needs time zone support in the database (MariaDB
  without time zone tables would fail the page).
- The state is never a form field: it changes only through the actions
  (:mod:`django_dbq.admin.actions`). A job no worker holds (NEW, READY, FAILED)
  can be edited (queue, priority, run_after, workspace); a PROCESSING or
  COMPLETED one is shown read-only. An edit is saved only if the job did not
  change since the page was opened (:func:`django_dbq.store.edit`).
- Only finished jobs can be deleted.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from .. import store
from ..exceptions import InvalidJobError, InvalidWorkspaceError, UnknownJobError
from ..models import Job
from ..states import FINISHED_STATES, RUNNABLE_STATES, JobStates
from . import actions, display
from .dashboard import Dashboard
from .filters import (
    ContextTypeFilter,
    ErrorsFilter,
    JobNameFilter,
    ScheduledFilter,
    UniqueKeyFilter,
)
from .forms import JobAddForm, JobChangeForm


class Refused(Exception):
    """A save or delete that must not happen (the job changed under the operator); the
    message is shown and nothing is written."""


class JobAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "state_badge",
        "name_display",
        "queue",
        "priority",
        "attempts_display",
        "step_display",
        "run_after_display",
        "elapsed_display",
        "last_error_display",
        "worker_display",
    )
    list_filter = (
        "state",
        "queue_name",
        JobNameFilter,
        ScheduledFilter,
        ErrorsFilter,
        UniqueKeyFilter,
        ("context_type", ContextTypeFilter),
    )
    # The id (a UUID, whole) is matched in get_search_results.
    search_fields = ("name", "=context_id", "=unique_key")
    search_help_text = (
        "A job's id, a job name (or part of one), a context object's id, or a unique key."
    )
    ordering = ("-created",)
    list_per_page = 50
    show_full_result_count = False  # one COUNT fewer on a big table
    actions = actions.ACTIONS
    form = JobChangeForm
    add_form = JobAddForm

    class Media:
        css = {"all": ("django_dbq/admin.css",)}

    # --- the list ------------------------------------------------------------------------

    @admin.display(description="id", ordering="id")
    def short_id(self, job: Job) -> Any:
        return format_html('<code title="{}">{}</code>', job.pk, str(job.pk)[:8])

    @admin.display(description="state", ordering="state")
    def state_badge(self, job: Job) -> Any:
        return display.state_badge(job.state)

    @admin.display(description="name", ordering="name")
    def name_display(self, job: Job) -> Any:
        if job.unique_key is None:
            return job.name
        return format_html(
            '{}<br><span class="dbq-muted" title="unique key">key {}</span>',
            job.name,
            job.unique_key,
        )

    @admin.display(description="queue", ordering="queue_name")
    def queue(self, job: Job) -> str:
        return job.queue_name

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, job: Job) -> str:
        return display.attempts(job)

    @admin.display(description="step")
    def step_display(self, job: Job) -> str:
        return display.step(job)

    @admin.display(description="runs", ordering="run_after")
    def run_after_display(self, job: Job) -> Any:
        """When a waiting job runs; a finished or running job's run_after is history."""
        if job.run_after is None or job.state not in RUNNABLE_STATES:
            return ""
        return format_html(
            '<span class="dbq-nowrap" title="{}">{}</span>',
            job.run_after.isoformat(),
            display.relative(job.run_after),
        )

    @admin.display(description="time")
    def elapsed_display(self, job: Job) -> Any:
        return format_html('<span class="dbq-nowrap">{}</span>', display.elapsed(job))

    @admin.display(description="last error")
    def last_error_display(self, job: Job) -> Any:
        line = display.last_error(job)
        return format_html('<span class="dbq-last-error">{}</span>', line) if line else ""

    @admin.display(description="worker")
    def worker_display(self, job: Job) -> str:
        return job.lease_owner if job.state == JobStates.PROCESSING else ""

    def get_search_results(self, request: Any, queryset: Any, search_term: str) -> Any:
        found, duplicates = super().get_search_results(request, queryset, search_term)
        try:
            pk = uuid.UUID(search_term.strip())
        except ValueError:
            return found, duplicates
        return found | queryset.filter(pk=pk), duplicates

    def get_actions(self, request: Any, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions are shown (the list or the change form).
        if action_location is None:
            found = super().get_actions(request)
        else:
            found = super().get_actions(request, action_location=action_location)
        # Django's own deletes jobs whatever their state; delete_finished replaces it.
        found.pop("delete_selected", None)
        return found

    def get_urls(self) -> list[Any]:
        # The dashboard's pages (admin/django_dbq/job/dashboard/) go before the
        # catch-all "<object_id>/" pattern of the change page.
        return Dashboard(self).urls() + super().get_urls()

    # --- permissions ----------------------------------------------------------------------

    def has_change_permission(self, request: Any, obj: Job | None = None) -> bool:
        """Jobs a worker holds or has completed are shown, never edited."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.state in store.EDITABLE_STATES)

    def has_delete_permission(self, request: Any, obj: Job | None = None) -> bool:
        """Only finished jobs can be deleted (cancel a waiting one first)."""
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or obj.state in FINISHED_STATES)

    # --- add and change pages ---------------------------------------------------------------

    def get_form(self, request: Any, obj: Job | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: Any, obj: Job | None = None) -> Any:
        if obj is None:
            return [(None, {"fields": self.add_form.Meta.fields})]
        editable = self.has_change_permission(request, obj)
        main: tuple[str, ...] = ("state_badge", "id", "name", "queue_name", "priority", "run_after")
        main += ("workspace", "seen_modified") if editable else ("workspace_display",)
        progress: tuple[str, ...] = ("step_display", "next_task", "attempts_display")
        if obj.state == JobStates.PROCESSING:
            progress += ("worker_display",)
        if obj.batch_key is not None:
            progress += ("batch_key",)
        if obj.unique_key is not None:
            progress += ("unique_key",)
        progress += ("timeline_display", "context_display")
        return [
            (None, {"fields": main}),
            ("Progress", {"fields": progress}),
            ("Errors, newest first", {"fields": ("errors_display",)}),
        ]

    def get_readonly_fields(self, request: Any, obj: Job | None = None) -> Any:
        if obj is None:
            return ()
        return (
            "state_badge",
            "id",
            "name",
            "workspace_display",
            "step_display",
            "next_task",
            "attempts_display",
            "worker_display",
            "batch_key",
            "unique_key",
            "timeline_display",
            "context_display",
            "errors_display",
        )

    @admin.display(description="workspace")
    def workspace_display(self, job: Job) -> Any:
        text = json.dumps(job.workspace, indent=2, ensure_ascii=False, default=repr)
        return format_html('<pre class="dbq-workspace">{}</pre>', text)

    @admin.display(description="timeline")
    def timeline_display(self, job: Job) -> Any:
        return display.timeline(job)

    @admin.display(description="errors")
    def errors_display(self, job: Job) -> Any:
        return display.errors_block(job)

    @admin.display(description="context object")
    def context_display(self, job: Job) -> Any:
        if not job.context_type_id:
            return display.NOTHING
        content_type = job.context_type
        model = content_type.model_class()
        try:
            target = job.context_object
        except (ObjectDoesNotExist, ValidationError, ValueError, TypeError, AttributeError):
            target = None  # a stored id that does not fit the model, or the model is gone
        label = str(target) if target is not None else f"{content_type} {job.context_id}"
        if target is None:
            return format_html('{} <span class="dbq-muted">(not found)</span>', label)
        if model is not None and self.admin_site.is_registered(model):
            try:
                url = reverse(
                    f"{self.admin_site.name}:{model._meta.app_label}_{model._meta.model_name}_change",
                    args=(quote(job.context_id),),
                )
            except NoReverseMatch:
                url = ""
            if url:
                return format_html('<a href="{}">{}</a> ({})', url, label, content_type)
        return format_html("{} ({})", label, content_type)

    def save_model(self, request: Any, obj: Job, form: Any, change: bool) -> None:
        if not change:
            try:
                obj.save()  # validates, runs the creation hook, inserts
            except (InvalidJobError, InvalidWorkspaceError, UnknownJobError) as exc:
                raise Refused(f"The job was not created: {exc}") from None
            return
        values = form.edited_values()
        if values and not store.edit(obj.pk, form.cleaned_data["seen_modified"], values):
            raise Refused(
                "The job changed while you edited it (a worker or another operator wrote "
                "it): nothing was saved. Here it is as it is now."
            )

    def changeform_view(
        self, request: Any, object_id: Any = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        if request.method == "POST" and object_id is not None:
            gone = self._no_longer(request, object_id, store.EDITABLE_STATES, "change")
            if gone:
                return gone
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Refused as refused:  # its transaction was rolled back: nothing was written
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request: Any, obj: Job) -> None:
        result = store.delete_finished([obj.pk], f"admin user {request.user.get_username()}")
        if not result.changed:
            raise Refused("The job is no longer finished (it was retried?): it was not deleted.")

    def delete_view(self, request: Any, object_id: Any, extra_context: Any = None) -> Any:
        if request.method == "POST":
            gone = self._no_longer(request, object_id, FINISHED_STATES, "delete")
            if gone:
                return gone
        try:
            return super().delete_view(request, object_id, extra_context)
        except Refused as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return HttpResponseRedirect(self._change_url(object_id))

    def _no_longer(self, request: Any, object_id: Any, states: Any, what: str) -> Any:
        """A redirect with a message if the job left ``states`` while the operator's page
        was open (Django would answer 403 Forbidden); else ``None``."""
        obj = self.get_object(request, unquote(object_id))
        allowed = getattr(admin.ModelAdmin, f"has_{what}_permission")(self, request, obj)
        if obj is None or not allowed or obj.state in states:
            return None
        self.message_user(
            request,
            f"This job is now {obj.state}: it can no longer be {what}d here. Nothing was "
            "saved; here it is as it is now.",
            messages.ERROR,
        )
        return HttpResponseRedirect(self._change_url(object_id))

    def _change_url(self, object_id: Any) -> str:
        opts = self.opts
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=(quote(object_id),),
        )

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        store.delete_finished(
            list(queryset.values_list("pk", flat=True)),
            f"admin user {request.user.get_username()}",
        )
