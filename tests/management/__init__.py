"""Tests of django_dbq.management: option parsing and the management commands."""
