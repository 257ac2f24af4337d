"""The indexes of django_dbq and, on PostgreSQL, the trigger that wakes workers.

Both differ by database, so they are written out here in SQL rather than
declared on the model, frozen as they were when this migration was written (a
migration runs the same statements whatever today's code looks like):

- claim: runnable jobs (NEW, READY) not of a batch type, by queue, priority and
  age; batch: runnable jobs of batch types, by name, queue, key and age;
  lease: PROCESSING jobs by lease expiry (rows without a lease included: the
  rescue looks for those too); prune: finished jobs by age; context: jobs by
  context object (only those that have one).
- On PostgreSQL and SQLite they are partial, so each row version sits in at
  most one of the first four and a state change touches one small index; on
  MySQL and MariaDB (no partial indexes) the state leads.
- The PostgreSQL trigger sends ``NOTIFY`` per runnable row inserted; the server
  folds identical notifications of a transaction into one per queue and
  delivers them at commit.

SQLite rebuilds a table to alter it, and a rebuild drops indexes the model does
not declare: a later migration that alters the job table on SQLite must create
these again (``install`` here can be called for that).
"""

from django.db import migrations

TABLE = "django_dbq_job"
RUNNABLE = "'NEW', 'READY'"
FINISHED = "'COMPLETED', 'FAILED'"
INDEXES = ("django_dbq_claim", "django_dbq_batch", "django_dbq_lease", "django_dbq_prune")
CONTEXT_INDEX = "django_dbq_context"

PARTIAL_INDEXES = [
    f'CREATE INDEX django_dbq_claim ON "{TABLE}" (queue_name, priority DESC, created) '
    f"WHERE state IN ({RUNNABLE}) AND batch_key IS NULL",
    f'CREATE INDEX django_dbq_batch ON "{TABLE}" (name, queue_name, batch_key, created) '
    f"WHERE state IN ({RUNNABLE}) AND batch_key IS NOT NULL",
    f'CREATE INDEX django_dbq_lease ON "{TABLE}" (lease_expires_at) '
    "WHERE state = 'PROCESSING'",
    f'CREATE INDEX django_dbq_prune ON "{TABLE}" (created) WHERE state IN ({FINISHED})',
    f'CREATE INDEX django_dbq_context ON "{TABLE}" (context_type_id, context_id) '
    "WHERE context_type_id IS NOT NULL",
]
MYSQL_INDEXES = [
    f"CREATE INDEX django_dbq_claim ON {TABLE} "
    "(state, batch_key, queue_name, priority DESC, created)",
    f"CREATE INDEX django_dbq_batch ON {TABLE} (state, name, queue_name, batch_key, created)",
    f"CREATE INDEX django_dbq_lease ON {TABLE} (state, lease_expires_at)",
    f"CREATE INDEX django_dbq_prune ON {TABLE} (state, created)",
    f"CREATE INDEX django_dbq_context ON {TABLE} (context_type_id, context_id)",
]
NOTIFY_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION django_dbq_notify_insert() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('django_dbq', queue_name)
        FROM new_jobs WHERE state IN ({RUNNABLE});
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """
TRIGGER = (
    f'CREATE TRIGGER django_dbq_job_notify AFTER INSERT ON "{TABLE}" '
    "REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT "
    "EXECUTE FUNCTION django_dbq_notify_insert()"
)


def _context_type_indexes(schema_editor):
    """Plain indexes on context_type_id alone (MySQL makes one for the foreign key)."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [
        name
        for name, info in constraints.items()
        if info["index"]
        and info["columns"] == ["context_type_id"]
        and not info["unique"]
        and not info["primary_key"]
    ]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in MYSQL_INDEXES if vendor == "mysql" else PARTIAL_INDEXES:
        schema_editor.execute(statement)
    if vendor == "mysql":
        # The composite index now serves the foreign key; drop the one MySQL made.
        for name in _context_type_indexes(schema_editor):
            schema_editor.execute(f"ALTER TABLE {TABLE} DROP INDEX `{name}`")
    if vendor == "postgresql":
        schema_editor.execute(NOTIFY_FUNCTION)
        schema_editor.execute(TRIGGER)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f'DROP TRIGGER IF EXISTS django_dbq_job_notify ON "{TABLE}"')
        schema_editor.execute("DROP FUNCTION IF EXISTS django_dbq_notify_insert()")
    if vendor == "mysql":
        # MySQL will not drop the foreign key's only index: give it its own back first.
        schema_editor.execute(
            f"CREATE INDEX {TABLE}_context_type_id ON {TABLE} (context_type_id)"
        )
    for index in (*INDEXES, CONTEXT_INDEX):
        if vendor == "mysql":
            schema_editor.execute(f"DROP INDEX {index} ON {TABLE}")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {index}")


class Migration(migrations.Migration):
    # MySQL cannot run DDL inside a transaction.
    atomic = False
    dependencies = [("django_dbq", "0009_job_schema")]

    operations = [migrations.RunPython(install, remove)]
