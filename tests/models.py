"""Models used only by the test suite."""

from django.db import models


class Execution(models.Model):
    """One run of a test task, written by the task itself (see tests/tasks.py)."""

    job_id = models.UUIDField(db_index=True)
    pid = models.IntegerField()
    thread = models.CharField(max_length=64, default="")
    started = models.FloatField()
    finished = models.FloatField()
