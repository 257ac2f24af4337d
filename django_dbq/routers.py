"""The database router for a dedicated queue database (``DBQ_DATABASE``).

List it in ``DATABASE_ROUTERS`` when ``DBQ_DATABASE`` names an alias other than
``"default"``::

    DATABASES = {"default": {...}, "queue": {...}}
    DBQ_DATABASE = "queue"
    DATABASE_ROUTERS = ["django_dbq.routers.QueueRouter"]

It sends every read, write and migration of django_dbq's models (jobs, and the
tables beside them: workers, pauses, counts, schedules, limits, cancel requests)
to that alias, and lets ``django.contrib.contenttypes`` migrate there too: a job's
context object refers to a content type through a foreign key, which must point
to a table of the job's own database. It has no opinion on any other model, so
put it before or after your own routers as you like, as long as none of them
claims django_dbq's models first (the check ``django_dbq.E019`` says so).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from . import conf

APP_LABEL = "django_dbq"
CONTENTTYPES = "contenttypes"


def _is_queue_model(model: type[models.Model]) -> bool:
    return model._meta.app_label == APP_LABEL


class QueueRouter:
    """Route django_dbq's models to ``DBQ_DATABASE`` (read at every call)."""

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        """The queue's alias for django_dbq's models; for a content type read through
        a job (``job.context_type``), the job's own database."""
        if _is_queue_model(model):
            return conf.database()
        return self._content_type_of_job(model, hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        """The queue's alias for django_dbq's models; no opinion on others."""
        if _is_queue_model(model):
            return conf.database()
        return self._content_type_of_job(model, hints)

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        """django_dbq's tables only in the queue's database; contenttypes' also there
        (the jobs' foreign key points to it); no opinion on anything else."""
        if app_label == APP_LABEL:
            return db == conf.database()
        if app_label == CONTENTTYPES and db == conf.database():
            return True
        return None

    @staticmethod
    def _content_type_of_job(model: type[models.Model], hints: dict[str, Any]) -> str | None:
        instance = hints.get("instance")
        if (
            model._meta.app_label == CONTENTTYPES
            and instance is not None
            and _is_queue_model(type(instance))
        ):
            return instance._state.db or conf.database()
        return None
