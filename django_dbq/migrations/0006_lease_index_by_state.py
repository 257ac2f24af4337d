"""The lease index covers every PROCESSING row, including one without a lease.

A row set PROCESSING by hand (the admin, an ``update()``, another system) has no
lease and no worker renewing it; the rescue now looks for such rows too, and on
PostgreSQL and SQLite the old index (``WHERE lease_expires_at IS NOT NULL``)
could not serve that. The new one is partial on ``state = 'PROCESSING'``: the
jobs being run, a small set whatever the size of the table. MySQL and MariaDB
already index (state, lease_expires_at) and need nothing.
"""

from django.db import migrations

OLD = (
    'CREATE INDEX django_dbq_lease ON "django_dbq_job" (lease_expires_at) '
    "WHERE lease_expires_at IS NOT NULL"
)
NEW = (
    'CREATE INDEX django_dbq_lease ON "django_dbq_job" (lease_expires_at) '
    "WHERE state = 'PROCESSING'"
)


def _replace(schema_editor, statement):
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute("DROP INDEX IF EXISTS django_dbq_lease")
        schema_editor.execute(statement)


def forward(apps, schema_editor):
    _replace(schema_editor, NEW)


def backward(apps, schema_editor):
    _replace(schema_editor, OLD)


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0005_notify_without_distinct")]

    operations = [migrations.RunPython(forward, backward)]
