"""Fixtures of the integration tests. Imported on every Django version: django.tasks
(Django 6.0+) is imported only inside the fixtures that need it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def received() -> Iterator[list[tuple[str, type, Any]]]:
    """Every django.tasks signal sent while the test runs: (name, sender, task_result)."""
    from django.tasks.signals import task_enqueued, task_finished, task_started

    captured: list[tuple[str, type, Any]] = []
    receivers = {}
    for name, sig in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):

        def receiver(sender, task_result, _name=name, **kwargs):
            captured.append((_name, sender, task_result))

        receivers[name] = receiver
        sig.connect(receiver, dispatch_uid=f"test-tasks-{name}")
    yield captured
    for name, sig in (
        ("enqueued", task_enqueued),
        ("started", task_started),
        ("finished", task_finished),
    ):
        sig.disconnect(dispatch_uid=f"test-tasks-{name}")
