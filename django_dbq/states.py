"""The five states of a job, and the groups of them that queries and writes use."""

from __future__ import annotations

from django.db import models


class JobStates(models.TextChoices):
    NEW = "NEW", "New"
    READY = "READY", "Ready"
    PROCESSING = "PROCESSING", "Processing"
    COMPLETED = "COMPLETED", "Completed"
    FAILED = "FAILED", "Failed"


#: Jobs a worker may claim (when their ``run_after`` has passed).
RUNNABLE_STATES = (JobStates.NEW, JobStates.READY)
#: Jobs that will not run again; ``delete_old_jobs`` prunes them.
FINISHED_STATES = (JobStates.COMPLETED, JobStates.FAILED)
