"""The README's demo jobs: a two-step chain that passes data through the workspace,
and a job that fails."""

import logging

logger = logging.getLogger("django_dbq.demo")


def stamp(job):
    """Creation hook: runs in the creating process before the row is saved."""
    job.workspace.setdefault("name", "world")


def look_up_name(job):
    job.workspace["greeting"] = f"Hello, {job.workspace['name']}!"


def greet(job):
    logger.info("demo_greeting says: %s", job.workspace["greeting"])


def explode(job):
    raise RuntimeError("this demo job fails on purpose")


def report_failure(job, exception):
    logger.info("failure hook: job %s failed with %r", job.pk, exception)
