"""The columns django-db-queue and django_dbq share take django_dbq's definitions.

The workspace is never NULL; the states are the five of django_dbq (a CHECK
constraint keeps them so); queue names are up to 64 characters and task paths
up to 255; priorities are 32-bit. The single-column indexes of django-db-queue
(state, queue_name, priority, created, run_after) go: migration 0010 creates
the partial indexes the claim, the rescue and the pruning use instead.
"""

import django.utils.timezone
from django.db import migrations, models

STATES = [
    ("NEW", "New"),
    ("READY", "Ready"),
    ("PROCESSING", "Processing"),
    ("COMPLETED", "Completed"),
    ("FAILED", "Failed"),
]


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0008_convert_rows")]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="workspace",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(choices=STATES, default="NEW", max_length=20),
        ),
        migrations.AlterField(
            model_name="job",
            name="next_task",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AlterField(
            model_name="job",
            name="queue_name",
            field=models.CharField(default="default", max_length=64),
        ),
        migrations.AlterField(
            model_name="job",
            name="priority",
            field=models.IntegerField(default=0, help_text="Higher runs first."),
        ),
        migrations.AlterField(
            model_name="job",
            name="run_after",
            field=models.DateTimeField(
                blank=True, help_text="Do not run before this.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="created",
            field=models.DateTimeField(default=django.utils.timezone.now, editable=False),
        ),
        migrations.AddConstraint(
            model_name="job",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("state__in", ["NEW", "READY", "PROCESSING", "COMPLETED", "FAILED"])
                ),
                name="django_dbq_job_state_known",
            ),
        ),
    ]
