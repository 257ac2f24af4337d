"""The Job list's bulk actions: retry failed jobs, run scheduled jobs now, cancel
waiting jobs, ask running jobs to stop, delete finished jobs.

Each first shows a confirmation page (what is selected, how many of those the
action applies to); the confirmed POST (with the admin's CSRF token) calls the
operator's write of :mod:`django_dbq.store`, which changes a job only if it is
still in a state the action applies to, so a job a worker claimed in the meantime
is left alone. The message says how many jobs were changed and how many skipped,
and each changed job gets an entry in the admin's history (LogEntry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from .. import store
from ..models import Job
from ..states import FINISHED_STATES, RUNNABLE_STATES, JobStates
from . import display

#: Jobs listed by name on a confirmation page (all are counted).
CONFIRM_LISTED = 50


@dataclass(frozen=True)
class Operation:
    """One bulk action: what it applies to and which store write does it."""

    name: str
    title: str  # "Retry failed jobs"
    button: str  # "Retry"
    done: str  # "Retried"
    applies_to: str  # "FAILED jobs that ..."
    eligible: Q  # the jobs it applies to, as a query ...
    applies: Callable[[Job], bool]  # ... and as a test of one job read
    skip_reason: str  # why a selected job was left alone
    write: Callable[[Sequence[Any], str], store.Changed]
    history: str  # the LogEntry change message
    deletes: bool = False


RETRY = Operation(
    name="retry_failed",
    title="Retry failed jobs",
    button="Retry",
    done="Retried",
    applies_to=(
        "FAILED jobs: each goes back to READY to run now, at the step that failed, with "
        "its attempts at that step starting again from 0. Earlier errors are kept."
    ),
    eligible=Q(state=JobStates.FAILED) & ~Q(next_task=""),
    applies=lambda job: job.state == JobStates.FAILED and bool(job.next_task),
    skip_reason="not FAILED (or a tracked operation, which cannot run again)",
    write=store.retry_failed,
    history="Retried from the admin: FAILED to READY, attempts reset, to run now.",
)
RUN_NOW = Operation(
    name="run_now",
    title="Run scheduled jobs now",
    button="Run now",
    done="Cleared the run_after of",
    applies_to="waiting jobs (NEW or READY) with a run_after: it is cleared, so they run now.",
    eligible=Q(state__in=RUNNABLE_STATES, run_after__isnull=False),
    applies=lambda job: job.state in RUNNABLE_STATES and job.run_after is not None,
    skip_reason="not waiting with a run_after",
    write=store.run_now,
    history="Run now from the admin: run_after cleared.",
)
CANCEL = Operation(
    name="cancel_waiting",
    title="Cancel waiting jobs",
    button="Cancel jobs",
    done="Cancelled",
    applies_to=(
        "waiting jobs (NEW or READY): each ends FAILED without running, with an error "
        "saying that you cancelled it. The failure hook does not run."
    ),
    eligible=Q(state__in=RUNNABLE_STATES),
    applies=lambda job: job.state in RUNNABLE_STATES,
    skip_reason="not waiting (NEW or READY)",
    write=store.cancel_waiting,
    history="Cancelled from the admin: FAILED without running.",
)
STOP = Operation(
    name="request_stop",
    title="Stop running jobs",
    button="Ask them to stop",
    done="Asked to stop:",
    applies_to=(
        "running jobs (PROCESSING): their workers are asked to stop them (within a "
        "heartbeat). A task that checks (job.checkpoint()) stops at once; one that does "
        "not is ended after DBQ_CANCEL_GRACE seconds. Either way the job ends FAILED, "
        "cancelled by you, and is not retried; one that completes first stays COMPLETED."
    ),
    eligible=Q(state=JobStates.PROCESSING),
    applies=lambda job: job.state == JobStates.PROCESSING,
    skip_reason="not running (PROCESSING)",
    write=store.request_stop,
    history="Asked to stop from the admin (cancel).",
)
DELETE = Operation(
    name="delete_finished",
    title="Delete finished jobs",
    button="Delete",
    done="Deleted",
    applies_to="finished jobs (COMPLETED or FAILED): they are deleted.",
    eligible=Q(state__in=FINISHED_STATES),
    applies=lambda job: job.state in FINISHED_STATES,
    skip_reason="not finished (COMPLETED or FAILED)",
    write=store.delete_finished,
    history="",
    deletes=True,
)


def _operator(request: Any) -> str:
    return f"admin user {request.user.get_username()}"


def _run(modeladmin: Any, request: Any, queryset: Any, operation: Operation) -> Any:
    if request.POST.get("post") == "yes":
        _apply(modeladmin, request, queryset, operation)
        return None  # back to the list
    return _confirmation(modeladmin, request, queryset, operation)


def _confirmation(
    modeladmin: Any, request: Any, queryset: Any, operation: Operation
) -> TemplateResponse:
    opts = modeladmin.model._meta
    total = queryset.count()
    eligible = queryset.filter(operation.eligible).count()
    listed = list(queryset.order_by("-created")[:CONFIRM_LISTED])
    select_across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"{operation.title}?",
        "subtitle": None,
        "opts": opts,
        "operation": operation,
        "total": total,
        "eligible": eligible,
        "skipped": total - eligible,
        "rows": [
            {"job": job, "badge": display.state_badge(job.state), "applies": operation.applies(job)}
            for job in listed
        ],
        "more": max(total - len(listed), 0),
        "select_across": select_across,
        "selected": [] if select_across else [str(job.pk) for job in queryset.only("pk")],
        "first_selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)[:1],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "back": request.get_full_path(),
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/django_dbq/job/action_confirmation.html", context)


def _apply(modeladmin: Any, request: Any, queryset: Any, operation: Operation) -> None:
    ids = list(queryset.values_list("pk", flat=True))
    before: list[Job] = []
    if operation.deletes:  # the history needs each job as it was
        before = _jobs(ids)
    result = operation.write(ids, _operator(request))
    changed = set(result.changed)
    if operation.deletes:
        LogEntry.objects.log_actions(
            request.user.pk, [job for job in before if job.pk in changed], DELETION
        )
    elif changed:
        jobs = _jobs(result.changed)
        LogEntry.objects.log_actions(request.user.pk, jobs, CHANGE, operation.history)
    modeladmin.message_user(
        request,
        _summary(operation, len(result.changed), result.skipped),
        messages.SUCCESS if result.changed and not result.skipped else messages.WARNING,
    )


def _jobs(ids: list[Any]) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, len(ids), store.OPERATOR_CHUNK):
        chunk = ids[start : start + store.OPERATOR_CHUNK]
        jobs += Job.objects.filter(pk__in=chunk).only("pk", "name", "state")
    return jobs


def _summary(operation: Operation, changed: int, skipped: int) -> str:
    text = f"{operation.done} {changed} job{'s' if changed != 1 else ''}."
    if skipped:
        text += (
            f" {skipped} skipped: {operation.skip_reason} when the action ran"
            " (a worker may have taken them meanwhile)."
        )
    return capfirst(text)


@admin.action(description="Retry the selected failed jobs", permissions=["change"])
def retry_failed(modeladmin: Any, request: Any, queryset: Any) -> Any:
    return _run(modeladmin, request, queryset, RETRY)


@admin.action(description="Run the selected scheduled jobs now", permissions=["change"])
def run_now(modeladmin: Any, request: Any, queryset: Any) -> Any:
    return _run(modeladmin, request, queryset, RUN_NOW)


@admin.action(description="Cancel the selected waiting jobs", permissions=["change"])
def cancel_waiting(modeladmin: Any, request: Any, queryset: Any) -> Any:
    return _run(modeladmin, request, queryset, CANCEL)


@admin.action(description="Stop the selected running jobs (cancel)", permissions=["change"])
def request_stop(modeladmin: Any, request: Any, queryset: Any) -> Any:
    return _run(modeladmin, request, queryset, STOP)


@admin.action(description="Delete the selected finished jobs", permissions=["delete"])
def delete_finished(modeladmin: Any, request: Any, queryset: Any) -> Any:
    return _run(modeladmin, request, queryset, DELETE)


ACTIONS = (retry_failed, run_now, cancel_waiting, request_stop, delete_finished)
