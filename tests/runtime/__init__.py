"""Tests of django_dbq.runtime: the executor, the worker, batching and the chaos run."""
