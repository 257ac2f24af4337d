"""Signals sent by the worker, from the thread that runs the job.

- ``job_started(sender=Job, job)``: a step of the job is about to run.
- ``job_finished(sender=Job, job, duration)``: the job's last step succeeded.
- ``job_failed(sender=Job, job, exception)``: the job ended FAILED.
- ``job_retried(sender=Job, job, exception, run_after)``: an attempt failed and
  the job will run again after ``run_after``.

A receiver that raises is logged and otherwise ignored: it cannot fail a job.
"""

from django.dispatch import Signal

job_started = Signal()
job_finished = Signal()
job_failed = Signal()
job_retried = Signal()

# Internal: sent for new jobs when DBQ_RUN_SYNCHRONOUSLY is on, with ``job_ids`` and
# ``using``; django_dbq.integrations.synchronous runs them when the transaction commits.
run_synchronously = Signal()
