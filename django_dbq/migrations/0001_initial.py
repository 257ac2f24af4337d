import django.db.models.deletion
import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("queue_name", models.CharField(default="default", max_length=64)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("NEW", "New"),
                            ("READY", "Ready"),
                            ("PROCESSING", "Processing"),
                            ("COMPLETED", "Completed"),
                            ("FAILED", "Failed"),
                        ],
                        default="NEW",
                        max_length=20,
                    ),
                ),
                ("next_task", models.CharField(blank=True, max_length=255)),
                ("workspace", models.JSONField(blank=True, default=dict)),
                ("priority", models.IntegerField(default=0, help_text="Higher runs first.")),
                (
                    "run_after",
                    models.DateTimeField(
                        blank=True, help_text="Do not run before this.", null=True
                    ),
                ),
                (
                    "created",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("modified", models.DateTimeField(auto_now=True)),
                (
                    "attempts",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Attempts started at the current step (reset when a step succeeds).",
                    ),
                ),
                (
                    "errors",
                    models.JSONField(
                        blank=True, default=list, help_text="One entry per failed attempt."
                    ),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("lease_owner", models.CharField(blank=True, max_length=128)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "batch_key",
                    models.CharField(
                        blank=True,
                        help_text="Jobs of a batch job type are batched per queue and batch key; NULL for jobs of other types.",
                        max_length=100,
                        null=True,
                    ),
                ),
                ("context_id", models.CharField(blank=True, default="", max_length=255)),
                (
                    "context_type",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
            ],
            options={
                "ordering": ["-priority", "created"],
            },
        ),
    ]
