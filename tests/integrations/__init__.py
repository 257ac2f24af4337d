"""Tests of django_dbq.integrations: the django.tasks backend, tracking, sync mode."""
