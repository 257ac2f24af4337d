"""tests.settings without JOBS (and without TASKS, which would make JOBS optional)."""

from tests.settings import *  # noqa: F403

del JOBS  # noqa: F821
TASKS = {}
