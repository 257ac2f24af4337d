"""Scale out (docs/scaling.rst): the row through which one worker per interval is
elected to do the rescue pass, and, on PostgreSQL, an index that tells an idle
listening worker when the next scheduled job is due (so it need not poll)."""

from django.db import migrations, models

TABLE = "django_dbq_job"
DUE_INDEX = "django_dbq_due"


def add_due_index(apps, schema_editor):
    # PostgreSQL only: the one database whose workers LISTEN instead of polling. Partial,
    # so a job enqueued to run now (run_after NULL) costs no write to it.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX {DUE_INDEX} ON "{TABLE}" (run_after) '
            "WHERE state IN ('NEW', 'READY') AND run_after IS NOT NULL"
        )


def drop_due_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {DUE_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('django_dbq', '0014_flow_control'),
    ]

    operations = [
        migrations.CreateModel(
            name='Chore',
            fields=[
                ('name', models.CharField(max_length=64, primary_key=True, serialize=False)),
                ('due_at', models.DateTimeField()),
                ('taken_by', models.CharField(blank=True, max_length=128)),
            ],
            options={
                'db_table': 'django_dbq_chore',
            },
        ),
        migrations.RunPython(add_due_index, drop_due_index, elidable=False),
    ]
