"""The claim, batch, lease and prune indexes (partial on PostgreSQL and SQLite) and the
PostgreSQL trigger that sends NOTIFY when jobs are inserted. Both differ by
database, so they are written out here in SQL rather than declared on the model.

The SQL is frozen as it was when this migration was written: a migration must
run the same statements whatever today's code looks like.
"""

from django.db import migrations

TABLE = '"django_dbq_job"'
RUNNABLE = "'NEW', 'READY'"
FINISHED = "'COMPLETED', 'FAILED'"
INDEXES = ("django_dbq_claim", "django_dbq_batch", "django_dbq_lease", "django_dbq_prune")

# PostgreSQL and SQLite: partial indexes. Each row version sits in at most one of them,
# so a state change touches the primary key and one small index.
PARTIAL_INDEXES = [
    f"CREATE INDEX django_dbq_claim ON {TABLE} (queue_name, priority DESC, created) "
    f"WHERE state IN ({RUNNABLE}) AND batch_key IS NULL",
    f"CREATE INDEX django_dbq_batch ON {TABLE} (name, queue_name, batch_key, created) "
    f"WHERE state IN ({RUNNABLE}) AND batch_key IS NOT NULL",
    f"CREATE INDEX django_dbq_lease ON {TABLE} (lease_expires_at) "
    "WHERE lease_expires_at IS NOT NULL",
    f"CREATE INDEX django_dbq_prune ON {TABLE} (created) WHERE state IN ({FINISHED})",
]
# MySQL / MariaDB: no partial indexes; the state leads.
MYSQL_INDEXES = [
    "CREATE INDEX django_dbq_claim ON django_dbq_job "
    "(state, batch_key, queue_name, priority DESC, created)",
    "CREATE INDEX django_dbq_batch ON django_dbq_job (state, name, queue_name, batch_key, created)",
    "CREATE INDEX django_dbq_lease ON django_dbq_job (state, lease_expires_at)",
    "CREATE INDEX django_dbq_prune ON django_dbq_job (state, created)",
]
NOTIFY_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION django_dbq_notify_insert() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('django_dbq', q.queue_name)
        FROM (SELECT DISTINCT queue_name FROM new_jobs
              WHERE state IN ({RUNNABLE})) AS q;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """
TRIGGER = (
    f"CREATE TRIGGER django_dbq_job_notify AFTER INSERT ON {TABLE} "
    "REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT "
    "EXECUTE FUNCTION django_dbq_notify_insert()"
)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in MYSQL_INDEXES if vendor == "mysql" else PARTIAL_INDEXES:
        schema_editor.execute(statement)
    if vendor == "postgresql":
        schema_editor.execute(NOTIFY_FUNCTION)
        schema_editor.execute(TRIGGER)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS django_dbq_job_notify ON {TABLE}")
        schema_editor.execute("DROP FUNCTION IF EXISTS django_dbq_notify_insert()")
    for index in INDEXES:
        if vendor == "mysql":
            schema_editor.execute(f"DROP INDEX {index} ON django_dbq_job")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {index}")


class Migration(migrations.Migration):
    # MySQL cannot run DDL inside a transaction.
    atomic = False
    dependencies = [("django_dbq", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
