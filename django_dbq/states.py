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

# django-db-queue's name for the finished state: an Enum alias of COMPLETED (not a
# sixth state), so that ``Job.STATES.COMPLETE`` in code written for it keeps working.
# Django's choices refuse duplicate values at class creation, so the alias is added
# the way Enum keeps its own aliases: in the member map, not among the member names.
JobStates._member_map_["COMPLETE"] = JobStates.COMPLETED
type.__setattr__(JobStates, "COMPLETE", JobStates.COMPLETED)
