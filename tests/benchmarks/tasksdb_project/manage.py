#!/usr/bin/env python
"""manage.py of the tiny django-tasks-db project the benchmark runs as a peer.

Run with the interpreter of the suite's django-tasks-db virtual environment
(Django 6, django-tasks-db 0.13), never with the project's own.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tdb_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
