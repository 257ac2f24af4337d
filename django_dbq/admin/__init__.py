"""The Django admin of django_dbq: the Job list, its filters and actions, and the add
and change pages (see docs/admin.rst).

It is the top (interface) layer: every change it makes to a job's state goes
through the operators' writes of :mod:`django_dbq.store`, guarded so that a job a
worker claimed in the meantime is left alone.
"""

from django.contrib import admin

from ..models import Job
from .jobs import JobAdmin

admin.site.register(Job, JobAdmin)

__all__ = ["JobAdmin"]
