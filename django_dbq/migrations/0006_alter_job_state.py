"""django-db-queue's 0006: the STOPPING state (a worker told to stop mid-job)."""

from django.db import migrations, models

STATES_3X = [
    ("NEW", "New"),
    ("READY", "Ready"),
    ("PROCESSING", "Processing"),
    ("STOPPING", "Stopping"),
    ("FAILED", "Failed"),
    ("COMPLETE", "Complete"),
]


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0005_job_run_after")]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(choices=STATES_3X, db_index=True, default="NEW", max_length=20),
        ),
    ]
