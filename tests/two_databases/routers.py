"""A router of the two-database test project only.

``tests.Player`` has a foreign key to ``django_dbq.Job`` (a tracked operation
tags the rows it creates), ``tests.Card`` one to ``Player`` and ``Player`` one to
``tests.Game``. A foreign key cannot cross databases, and deleting a job follows
it (``on_delete``) in the job's database, so these models live with the jobs, in
the queue database: the documented rule for models that refer to jobs.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

WITH_THE_JOBS = {"game", "player", "card"}


def _with_the_jobs(app_label: str, model_name: str | None) -> bool:
    return app_label == "tests" and model_name in WITH_THE_JOBS


class JobRelatedModelsWithTheQueue:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self.db_for_write(model, **hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        if _with_the_jobs(model._meta.app_label, model._meta.model_name):
            return settings.DBQ_DATABASE
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if _with_the_jobs(app_label, model_name):
            return db == settings.DBQ_DATABASE
        return None
