"""django_dbq's columns beside django-db-queue's: attempts and errors, the lease,
batching, context objects and the position in the chain. All are nullable or have
a default, so existing rows get them without a rewrite of their data: no attempt
spent, no errors, no lease, step NULL (a job's step is then found from its
``next_task``)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_dbq", "0006_alter_job_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="step",
            field=models.PositiveSmallIntegerField(
                blank=True,
                editable=False,
                help_text="Position of next_task in its chain (NULL: its first position).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="attempts",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Attempts started at the current step (reset when a step succeeds).",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="errors",
            field=models.JSONField(
                blank=True, default=list, help_text="One entry per failed attempt."
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="finished_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="lease_owner",
            field=models.CharField(blank=True, default="", max_length=128),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="job",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="batch_key",
            field=models.CharField(
                blank=True,
                help_text="Jobs of a batch job type are batched per queue and batch key; "
                "NULL for jobs of other types.",
                max_length=100,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="context_type",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="contenttypes.contenttype",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="context_id",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
    ]
