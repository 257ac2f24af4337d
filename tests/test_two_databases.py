"""The queue in a database of its own: tests/two_databases/, run in a pytest process
of their own with tests.settings_two_databases (a second database alias and
``DBQ_DATABASE = "queue"``), so that the rest of the suite keeps one database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.worker
def test_the_two_database_suite_passes():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBQ_DATABASE")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--ds=tests.settings_two_databases",
            "tests/two_databases",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
