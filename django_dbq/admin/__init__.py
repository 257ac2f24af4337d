"""The Django admin of django_dbq: the Job list, its filters and actions, and the add
and change pages (see docs/admin.rst).

It is the top (interface) layer: every change it makes to a job's state goes
through the operators' writes of :mod:`django_dbq.store`, guarded so that a job a
worker claimed in the meantime is left alone.
"""

from django.contrib import admin

from ..models import Job, Schedule
from .jobs import JobAdmin
from .schedules import ScheduleAdmin

admin.site.register(Job, JobAdmin)
admin.site.register(Schedule, ScheduleAdmin)

__all__ = ["JobAdmin", "ScheduleAdmin"]
