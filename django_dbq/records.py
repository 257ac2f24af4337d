"""The tables beside the jobs: live workers, paused queues, per-minute counts, and
the schedules of periodic jobs with the ticks they fired.

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


class Schedule(models.Model):
    """A periodic job: a job of ``job_name`` is created at every tick of ``cron`` (in
    ``timezone``) or every ``every_seconds``. Declared in the ``DBQ_SCHEDULES``
    setting (``from_settings``, kept in step with it by the workers) or added in the
    admin. ``last_tick`` is the latest tick handled (fired, or passed over under
    the ``skip`` policy); it only moves forward (see
    :mod:`django_dbq.scheduling.firing`)."""

    MISSED_CHOICES = [
        ("once", "once: run one job for the ticks missed"),
        ("skip", "skip: run none for the ticks missed"),
    ]

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=100, unique=True)
    job_name = models.CharField(max_length=100)
    cron = models.CharField(max_length=200, blank=True, help_text="5 fields, as crontab(5).")
    every_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Instead of cron: a tick every N seconds."
    )
    timezone = models.CharField(max_length=64, default="UTC")
    workspace = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=QUEUE_NAME_MAX_LENGTH, default="default")
    priority = models.IntegerField(default=0)
    missed = models.CharField(max_length=8, choices=MISSED_CHOICES, default="once")
    enabled = models.BooleanField(default=True)
    from_settings = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField()
    modified = models.DateTimeField()
    last_tick = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_job_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "django_dbq_schedule"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ScheduleTick(models.Model):
    """One tick of a schedule that fired, and the job it created. The unique
    constraint on (schedule, tick) is the database's guarantee that a tick fires
    once, whatever the number of workers firing at the same moment."""

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="ticks")
    tick = models.DateTimeField()
    job_id = models.UUIDField()
    fired_at = models.DateTimeField()
    fired_by = models.CharField(max_length=128, blank=True)

    class Meta:
        db_table = "django_dbq_schedule_tick"
        ordering = ["schedule", "tick"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick"], name="django_dbq_tick_once")
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} {self.tick.isoformat()}"


class FlowLimit(models.Model):
    """The row a limited job type or queue's claims take turns on (see
    :mod:`django_dbq.limits`), with its rate's token bucket: ``tokens`` jobs may be
    started now; the bucket refills at the rate since ``refilled_at``."""

    key = models.CharField(max_length=128, primary_key=True)
    tokens = models.FloatField(default=0.0)
    refilled_at = models.DateTimeField()

    class Meta:
        db_table = "django_dbq_flow_limit"

    def __str__(self) -> str:
        return self.key


class CancelRequest(models.Model):
    """A request to stop a running job. The worker that holds the job sees it at its
    next lease renewal; the task can check for it (``job.cancel_requested()``,
    ``job.checkpoint()``), and a task that does not stop within
    ``DBQ_CANCEL_GRACE`` seconds is ended. Deleted with the job's end."""

    job_id = models.UUIDField(primary_key=True)
    requested_at = models.DateTimeField()
    requested_by = models.CharField(max_length=255, blank=True)

    class Meta:
        db_table = "django_dbq_cancel_request"

    def __str__(self) -> str:
        return str(self.job_id)


class Chore(models.Model):
    """A housekeeping pass that one worker per interval does for all (the rescue of
    lost workers' jobs): the worker whose guarded UPDATE moves ``due_at`` forward
    does it; the others see the row already moved and skip it."""

    name = models.CharField(max_length=64, primary_key=True)
    due_at = models.DateTimeField()
    taken_by = models.CharField(max_length=128, blank=True)

    class Meta:
        db_table = "django_dbq_chore"

    def __str__(self) -> str:
        return self.name
