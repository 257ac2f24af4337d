"""Tests of django_dbq.db: the database backends, claiming and inserting rows."""
