"""The tables of the operators' tools: live workers, paused queues, per-minute counts.

None of them holds a job's state. They are written by
:mod:`django_dbq.operations` (workers heartbeat into ``WorkerRecord``, operators
pause queues, the per-minute counts are rolled up from finished jobs) and read
by the dashboard, the metrics and the health command.
"""

from __future__ import annotations

from django.db import models

QUEUE_NAME_MAX_LENGTH = 64  # as Job.queue_name


class WorkerRecord(models.Model):
    """One running worker process: written at start, at every heartbeat, and deleted
    when it stops. A record whose ``expires_at`` passed belongs to a worker that died
    without saying so; any worker deletes it at its next rescue pass."""

    id = models.BigAutoField(primary_key=True)
    owner = models.CharField(max_length=128, unique=True, help_text="As Job.lease_owner.")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    jobs_held = models.PositiveIntegerField(default=0)
    jobs_done = models.PositiveBigIntegerField(default=0, help_text="Job steps run.")

    class Meta:
        db_table = "django_dbq_worker"
        ordering = ["host", "pid"]
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.owner


class QueuePause(models.Model):
    """A paused queue: workers claim nothing from it while this row exists."""

    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH, primary_key=True)
    paused_at = models.DateTimeField()
    paused_by = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "django_dbq_queue_pause"
        ordering = ["queue_name"]
        verbose_name = "paused queue"

    def __str__(self) -> str:
        return self.queue_name


class MinuteCount(models.Model):
    """How many jobs of a queue finished in one minute (UTC), by outcome. Rolled up
    from the job table once the minute is over, so the dashboard's charts read a few
    hundred of these instead of scanning finished jobs, and pruning old jobs does not
    change the history."""

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField()
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "django_dbq_minute_count"
        ordering = ["minute", "queue_name"]
        constraints = [
            models.UniqueConstraint(fields=["minute", "queue_name"], name="django_dbq_minute_once")
        ]

    def __str__(self) -> str:
        return f"{self.queue_name} {self.minute:%Y-%m-%d %H:%M}"
