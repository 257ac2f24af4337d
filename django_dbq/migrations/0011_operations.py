"""The operators' tables (live workers, paused queues, per-minute counts) and an
index of finished jobs by finish time, from which the per-minute counts are rolled
up. The index differs by database and is written out in SQL, frozen here: partial
and covering on PostgreSQL, partial on SQLite, covering on MySQL and MariaDB."""

from django.db import migrations, models

TABLE = "django_dbq_job"
INDEX = "django_dbq_finished"


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX {INDEX} ON "{TABLE}" (finished_at) INCLUDE (queue_name, state) '
            "WHERE finished_at IS NOT NULL"
        )
    elif vendor == "mysql":
        schema_editor.execute(f"CREATE INDEX {INDEX} ON {TABLE} (finished_at, queue_name, state)")
    else:
        schema_editor.execute(
            f'CREATE INDEX {INDEX} ON "{TABLE}" (finished_at) WHERE finished_at IS NOT NULL'
        )


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {INDEX} ON {TABLE}")
    else:
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    # MySQL cannot run DDL inside a transaction.
    atomic = False

    dependencies = [
        ("django_dbq", "0010_indexes_and_notify"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuePause",
            fields=[
                ("queue_name", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("paused_at", models.DateTimeField()),
                ("paused_by", models.CharField(blank=True, max_length=255)),
            ],
            options={
                "verbose_name": "paused queue",
                "db_table": "django_dbq_queue_pause",
                "ordering": ["queue_name"],
            },
        ),
        migrations.CreateModel(
            name="WorkerRecord",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "owner",
                    models.CharField(help_text="As Job.lease_owner.", max_length=128, unique=True),
                ),
                ("host", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("queues", models.JSONField(default=list)),
                ("concurrency", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField()),
                ("heartbeat_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField(db_index=True)),
                ("jobs_held", models.PositiveIntegerField(default=0)),
                (
                    "jobs_done",
                    models.PositiveBigIntegerField(default=0, help_text="Job steps run."),
                ),
            ],
            options={
                "verbose_name": "worker",
                "db_table": "django_dbq_worker",
                "ordering": ["host", "pid"],
            },
        ),
        migrations.CreateModel(
            name="MinuteCount",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("minute", models.DateTimeField()),
                ("queue_name", models.CharField(max_length=64)),
                ("completed", models.PositiveIntegerField(default=0)),
                ("failed", models.PositiveIntegerField(default=0)),
            ],
            options={
                "db_table": "django_dbq_minute_count",
                "ordering": ["minute", "queue_name"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("minute", "queue_name"), name="django_dbq_minute_once"
                    )
                ],
            },
        ),
        migrations.RunPython(install, remove),
    ]
