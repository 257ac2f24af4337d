"""django-db-queue's first schema (its 0001_initial), so that a database it created
upgrades in place: migrations 0001 to 0006 carry django-db-queue 3.x's names and do
what its migrations did; 0007 onwards turn that table into django_dbq's."""

import uuid

from django.db import migrations, models

STATES_2015 = [
    ("NEW", "NEW"),
    ("READY", "READY"),
    ("PROCESSING", "PROCESSING"),
    ("FAILED", "FAILED"),
    ("COMPLETE", "COMPLETE"),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = []

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
                ("created", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("modified", models.DateTimeField(auto_now=True)),
                ("name", models.CharField(max_length=100)),
                (
                    "state",
                    models.CharField(
                        choices=STATES_2015, db_index=True, default="NEW", max_length=20
                    ),
                ),
                ("next_task", models.CharField(blank=True, max_length=100)),
                ("workspace", models.TextField(null=True)),
                (
                    "queue_name",
                    models.CharField(db_index=True, default="default", max_length=20),
                ),
            ],
            options={"ordering": ["-created"]},
        ),
    ]
