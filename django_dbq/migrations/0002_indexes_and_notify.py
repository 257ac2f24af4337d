"""The claim, lease and prune indexes (partial on PostgreSQL and SQLite) and the PostgreSQL
trigger that sends NOTIFY when jobs are inserted. Both differ by database, so
they are created by claiming.py rather than declared on the model."""

from django.db import migrations

from django_dbq import claiming


class Migration(migrations.Migration):
    # MySQL cannot run DDL inside a transaction.
    atomic = False
    dependencies = [("django_dbq", "0001_initial")]

    operations = [
        migrations.RunPython(claiming.install_schema_objects, claiming.remove_schema_objects),
    ]
