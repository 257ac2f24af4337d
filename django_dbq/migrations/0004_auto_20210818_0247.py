"""django-db-queue's 0004: the workspace becomes a JSON column (still nullable)."""

from django.db import migrations, models

STATES_2021 = [
    ("NEW", "New"),
    ("READY", "Ready"),
    ("PROCESSING", "Processing"),
    ("FAILED", "Failed"),
    ("COMPLETE", "Complete"),
]


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0003_auto_20180713_1000")]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(
                choices=STATES_2021, db_index=True, default="NEW", max_length=20
            ),
        ),
        migrations.AlterField(
            model_name="job", name="workspace", field=models.JSONField(null=True)
        ),
    ]
