"""The Job list's filters beyond the plain field ones: job name (from JOBS, without
scanning the table), scheduled in the future, has errors.

None of them needs time zone support in the database (MariaDB without time zone
tables): they compare stored values with a moment computed in Python.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from .. import job_types
from ..exceptions import JobConfigurationError


class JobNameFilter(admin.SimpleListFilter):
    """The job types of JOBS (and django_dbq's built-in ones)."""

    title = "job name"
    parameter_name = "name"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        try:
            names = set(job_types.job_types())
        except JobConfigurationError:
            names = set()
        names |= set(job_types.BUILTIN_JOB_TYPES)
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: Any, queryset: Any) -> Any:
        return queryset.filter(name=self.value()) if self.value() else queryset


class ScheduledFilter(admin.SimpleListFilter):
    """Whether ``run_after`` is in the future (a job that will not run yet)."""

    title = "scheduled"
    parameter_name = "scheduled"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("future", "In the future"), ("due", "Not in the future")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "future":
            return queryset.filter(run_after__gt=now)
        if self.value() == "due":
            return queryset.filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
        return queryset


class ErrorsFilter(admin.SimpleListFilter):
    """Whether the job has recorded errors (failed attempts, a cancel)."""

    title = "has errors"
    parameter_name = "errors"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.exclude(errors=[])
        if self.value() == "no":
            return queryset.filter(errors=[])
        return queryset


class UniqueKeyFilter(admin.SimpleListFilter):
    """Whether a job has a unique key, and whether it still holds it (waits or runs)."""

    title = "unique key"
    parameter_name = "unique"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("holds", "Holds its key (waiting or running)"),
            ("any", "Has a key"),
            ("none", "No key"),
        ]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() == "holds":
            return queryset.filter(active_key__isnull=False)
        if self.value() == "any":
            return queryset.filter(unique_key__isnull=False)
        if self.value() == "none":
            return queryset.filter(unique_key__isnull=True)
        return queryset


class ContextTypeFilter(admin.RelatedOnlyFieldListFilter):
    """The content types of the jobs' context objects, read from the jobs' database.

    Django's ``RelatedOnlyFieldListFilter`` reads them from the content types'
    default database; with the queue in a database of its own (``DBQ_DATABASE``) the
    jobs' ``context_type`` ids are those of the queue database's table.
    """

    def field_choices(self, field: Any, request: Any, model_admin: Any) -> list[tuple[Any, str]]:
        jobs = model_admin.get_queryset(request)
        used = jobs.order_by().exclude(context_type=None).values("context_type").distinct()
        content_types = ContentType.objects.db_manager(jobs.db).filter(pk__in=used)
        return [(ct.pk, str(ct)) for ct in content_types.order_by("app_label", "model")]
