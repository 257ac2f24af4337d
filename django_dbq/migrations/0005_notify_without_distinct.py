"""The NOTIFY trigger function without ``SELECT DISTINCT`` (PostgreSQL only).

PostgreSQL already sends one notification per channel and payload per
transaction, however often ``pg_notify`` is called, so the distinct queue names
were looked up for nothing: the lookup cost about 5% of the server time of a
one-row INSERT. The function is replaced in place; the trigger that calls it is
unchanged. Other databases have no trigger and nothing to do.
"""

from django.db import migrations

# One NOTIFY per runnable row inserted: PostgreSQL folds identical notifications of
# one transaction into one, so a bulk insert still sends one per queue.
FUNCTION = """
    CREATE OR REPLACE FUNCTION django_dbq_notify_insert() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('django_dbq', queue_name)
        FROM new_jobs WHERE state IN ('NEW', 'READY');
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """

# The function as migration 0002 first created it, for migrating back.
PREVIOUS = """
    CREATE OR REPLACE FUNCTION django_dbq_notify_insert() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('django_dbq', q.queue_name)
        FROM (SELECT DISTINCT queue_name FROM new_jobs
              WHERE state IN ('NEW', 'READY')) AS q;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("django_dbq", "0004_context_index")]

    operations = [migrations.RunPython(forward, backward)]
