"""The queue dashboard: an admin page with each queue's waiting work, the jobs
finished per minute and per hour (charts drawn on the server), the live workers,
and a button to pause or resume each queue.

Viewing it needs the view permission on jobs; pausing and resuming need the
change permission, and go through a POST with Django's CSRF check, like every
admin change. The figures come from :func:`django_dbq.operations.stats.snapshot`:
plain reads, no job row locked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ..operations import pauses, stats
from ..states import JobStates
from . import charts, display

#: Seconds between reloads of the page while "live" is on.
REFRESH_SECONDS = 10


class Dashboard:
    """The dashboard's views, for one ``JobAdmin`` (its site and permissions)."""

    def __init__(self, model_admin: Any) -> None:
        self.model_admin = model_admin
        self.site = model_admin.admin_site

    def urls(self) -> list[Any]:
        wrap = self.site.admin_view
        return [
            path("dashboard/", wrap(self.view), name="django_dbq_job_dashboard"),
            path("dashboard/queue/", wrap(self.queue_action), name="django_dbq_job_queue_action"),
        ]

    def _url(self, name: str) -> str:
        return reverse(f"{self.site.name}:django_dbq_job_{name}")

    def view(self, request: Any) -> Any:
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        snapshot = stats.snapshot()
        now = snapshot.taken_at
        changelist = self._url("changelist")

        def jobs_link(queue: str | None, **query: str) -> str:
            if queue is not None:
                query["queue_name__exact"] = queue
            return f"{changelist}?{urlencode(query)}" if query else changelist

        rows = []
        for item in [*snapshot.queues, snapshot.totals]:
            lag = item.lag(now)
            pause = snapshot.pauses.get(item.queue or "")
            rows.append(
                {
                    "figures": item,
                    "name": item.queue,
                    "lag": display.duration(lag) if lag is not None else display.NOTHING,
                    "lag_seconds": "" if lag is None else f"{lag:.3f}",
                    "ready_url": jobs_link(item.queue, state__exact=JobStates.READY),
                    "scheduled_url": jobs_link(item.queue, scheduled="future"),
                    "processing_url": jobs_link(item.queue, state__exact=JobStates.PROCESSING),
                    "failed_url": jobs_link(item.queue, state__exact=JobStates.FAILED),
                    "pause": pause,
                    "paused_since": display.relative(pause.paused_at, now) if pause else "",
                }
            )
        workers = [
            {
                "record": worker,
                "started": display.relative(worker.started_at, now),
                "heartbeat": display.relative(worker.heartbeat_at, now),
            }
            for worker in snapshot.workers
        ]
        live = request.GET.get("live", "1") != "0"
        context = {
            **self.site.each_context(request),
            "title": "Queue dashboard",
            "opts": self.model_admin.opts,
            "snapshot": snapshot,
            "rows": rows,
            "workers": workers,
            "per_minute_chart": charts.per_minute(snapshot.per_minute),
            "per_hour_chart": charts.per_hour(snapshot.per_hour),
            "last_minute": snapshot.per_minute[-2],
            "can_pause": self.model_admin.has_change_permission(request),
            "action_url": self._url("queue_action"),
            "changelist_url": changelist,
            "live": live,
            "refresh_seconds": REFRESH_SECONDS,
        }
        return TemplateResponse(request, "admin/django_dbq/dashboard.html", context)

    def queue_action(self, request: Any) -> Any:
        """Pause or resume a queue (POST ``queue`` and ``action``)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.model_admin.has_change_permission(request):
            raise PermissionDenied
        queue, action = request.POST.get("queue", ""), request.POST.get("action", "")
        live = "?live=0" if request.POST.get("live") == "0" else ""
        back = HttpResponseRedirect(self._url("dashboard") + live)
        if action not in ("pause", "resume"):
            self.model_admin.message_user(
                request, f"Unknown action {action!r}: pause or resume.", messages.ERROR
            )
            return back
        try:
            if action == "pause":
                by = f"admin user {request.user.get_username()}"
                changed = pauses.pause(queue, by=by)
                text = (
                    f"Paused queue {queue!r}: workers stop claiming from it within "
                    f"{pauses.CHECK_SECONDS:g} s; running jobs finish."
                    if changed
                    else f"Queue {queue!r} was already paused."
                )
            else:
                changed = pauses.resume(queue)
                text = f"Resumed queue {queue!r}."
                if not changed:
                    text = f"Queue {queue!r} was not paused."
        except ValueError as exc:
            self.model_admin.message_user(request, str(exc), messages.ERROR)
            return back
        self.model_admin.message_user(request, text, messages.SUCCESS if changed else messages.INFO)
        return back
