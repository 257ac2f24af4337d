"""tests.settings with a dedicated queue database: ``DBQ_DATABASE = "queue"``.

Used only by tests/two_databases/, which tests/test_two_databases.py runs in a
pytest subprocess of its own, so the rest of the suite keeps its one database.
The queue database is a second SQLite file, or a second database on the server of
``DATABASE_URL``; its test database has a name of its own, and so has the default
one's (it must not be the main run's)::

    DBQ_TEST_SUFFIX=x pytest --ds=tests.settings_two_databases tests/two_databases

Processes started by those tests get ``DBQ_DATABASE_NAME`` and
``DBQ_QUEUE_DATABASE_NAME``: the two test databases.
"""

import copy
import os

from tests.settings import *  # noqa: F403
from tests.settings import BASE_DIR, DATABASES, TEST_SUFFIX


def _two(default: dict) -> dict:
    default = copy.deepcopy(default)
    queue = copy.deepcopy(default)
    if default["ENGINE"].endswith("sqlite3"):
        if not os.environ.get("DBQ_DATABASE_NAME"):
            default["NAME"] = str(BASE_DIR / "db-2db.sqlite3")
        queue["NAME"] = str(BASE_DIR / "queue-2db.sqlite3")
        default["TEST"] = {"NAME": str(BASE_DIR / f"test-db{TEST_SUFFIX}-2db.sqlite3")}
        queue["TEST"] = {"NAME": str(BASE_DIR / f"test-queue{TEST_SUFFIX}-2db.sqlite3")}
    else:
        # The main run's test database name (test_<name><suffix>), plus _2db / _2db_queue.
        name = default["TEST"]["NAME"]
        default["TEST"] = {**default["TEST"], "NAME": f"{name}_2db"}
        queue["TEST"] = {**queue["TEST"], "NAME": f"{name}_2db_queue"}
        queue["NAME"] = f"{queue['NAME']}_queue"
    if os.environ.get("DBQ_QUEUE_DATABASE_NAME"):
        queue["NAME"] = os.environ["DBQ_QUEUE_DATABASE_NAME"]
    return {"default": default, "queue": queue}


DATABASES = _two(DATABASES["default"])
DBQ_DATABASE = "queue"
DATABASE_ROUTERS = [
    "tests.two_databases.routers.JobRelatedModelsWithTheQueue",
    "django_dbq.routers.QueueRouter",
]
