"""A module that no JOBS entry names, for the tests of tampered rows: importing it
leaves a marker file (the path in DBQ_TAMPER_MARKER), so a test can tell that a
worker never imported it."""

import os
from pathlib import Path

_marker = os.environ.get("DBQ_TAMPER_MARKER")
if _marker:
    Path(_marker).write_text("imported\n")


def run(job):
    """A callable that looks like a task; it must never run."""
    raise AssertionError("a task path stored in a row was imported and run")
