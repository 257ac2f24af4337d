"""Rows of django-db-queue become rows of django_dbq.

- ``COMPLETE`` becomes ``COMPLETED``;
- ``STOPPING`` (a worker was told to stop while it ran the job) goes back to
  ``READY``, no attempt spent: its next step runs again;
- a NULL workspace (django-db-queue allows one) becomes ``{}``;
- a state neither knows is marked ``FAILED`` with an error saying what it was
  (such a row would never be claimed, rescued or pruned);
- ``PROCESSING`` rows are left as they are: django-db-queue has no leases, so
  their worker may be long dead, or still running if it was not stopped. A
  django_dbq worker rescues a ``PROCESSING`` row without a lease like any job
  whose worker was lost (``READY`` again, the attempt not counted as its start
  was never recorded). Stop the old workers before the new ones start.

``READY`` rows in the middle of a chain keep their ``next_task`` and go on from
that step. The statements are plain UPDATEs by state, so a table of millions is
converted in a few statements.
"""

from django.db import migrations
from django.utils import timezone

STATES = ["NEW", "READY", "PROCESSING", "COMPLETED", "FAILED"]
OLD = ["COMPLETE", "STOPPING"]


def convert(apps, schema_editor):
    Job = apps.get_model("django_dbq", "Job")
    jobs = Job.objects.using(schema_editor.connection.alias)
    now = timezone.now()
    jobs.filter(state="COMPLETE").update(state="COMPLETED")
    jobs.filter(state="STOPPING").update(state="READY")
    jobs.filter(workspace__isnull=True).update(workspace={})
    fail_unknown_states(apps, schema_editor, now=now)


def fail_unknown_states(apps, schema_editor, *, now=None):
    Job = apps.get_model("django_dbq", "Job")
    jobs = Job.objects.using(schema_editor.connection.alias)
    now = now or timezone.now()
    for job in jobs.exclude(state__in=STATES).iterator():
        message = (
            f"The job's state {job.state!r} is not one of {', '.join(STATES)}; "
            "marked FAILED by migration django_dbq 0008."
        )
        record = {
            "attempt": job.attempts,
            "task": job.next_task,
            "type": "django_dbq.exceptions.InvalidJobError",
            "message": message,
            "message_line": message[:200],
            "traceback": "",
            "worker": "",
            "at": now.isoformat(),
        }
        errors = job.errors if isinstance(job.errors, list) else []
        jobs.filter(pk=job.pk).update(
            state="FAILED",
            errors=[*errors, record],
            finished_at=now,
            lease_expires_at=None,
            modified=now,
        )


def back(apps, schema_editor):
    Job = apps.get_model("django_dbq", "Job")
    Job.objects.using(schema_editor.connection.alias).filter(state="COMPLETED").update(
        state="COMPLETE"
    )


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0007_job_fields")]

    operations = [migrations.RunPython(convert, back)]
