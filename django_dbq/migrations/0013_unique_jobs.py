"""Unique jobs: ``unique_key``, and ``active_key`` (the job's name and key while it
waits or runs, NULL once it finished) under a unique index that keeps one active
job per name and key.

The index is written in SQL, frozen here: partial (non-NULL keys only) on
PostgreSQL and SQLite, plain on MySQL and MariaDB, where NULLs do not collide.
Both columns are nullable without a default, so SQLite adds them with ALTER TABLE
(no table rebuild, which would drop the indexes of migrations 0010 and 0011).
"""


from django.db import migrations, models


TABLE = "django_dbq_job"
INDEX = "django_dbq_active_key"


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"CREATE UNIQUE INDEX {INDEX} ON {TABLE} (active_key)")
    else:
        schema_editor.execute(
            f'CREATE UNIQUE INDEX {INDEX} ON "{TABLE}" (active_key) WHERE active_key IS NOT NULL'
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
        ('django_dbq', '0012_schedules'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='active_key',
            field=models.CharField(blank=True, editable=False, max_length=310, null=True),
        ),
        migrations.AddField(
            model_name='job',
            name='unique_key',
            field=models.CharField(blank=True, db_index=True, editable=False, help_text='While a job of this name and key waits or runs, creating another returns it instead.', max_length=200, null=True),
        ),
        migrations.RunPython(install, remove),
    ]
