"""Admin for jobs: browse, filter and inspect; workers own the state changes."""

from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("name", "state", "queue_name", "priority", "attempts", "created", "modified")
    list_filter = ("state", "queue_name", "name")
    search_fields = ("=id", "name")
    readonly_fields = (
        "id",
        "created",
        "modified",
        "attempts",
        "errors",
        "started_at",
        "finished_at",
        "lease_owner",
        "lease_expires_at",
    )
    date_hierarchy = "created"
    ordering = ("-created",)
