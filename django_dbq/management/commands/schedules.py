import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_dbq.exceptions import DbqError
from django_dbq.management.options import require_migrated
from django_dbq.models import Job, Schedule
from django_dbq.scheduling import firing


def _when(value):
    if value is None:
        return "-"
    return timezone.localtime(value).isoformat(timespec="seconds")


class Command(BaseCommand):
    help = (
        "List the periodic jobs (DBQ_SCHEDULES and the admin's schedules) with their next "
        "and last fire times and the last job's state. Brings the table in step with "
        "DBQ_SCHEDULES first, as every worker does when it starts."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format", choices=["table", "json"], default="table", help="table or json."
        )

    def handle(self, *args, **options):
        try:
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        firing.sync_settings()
        now = timezone.now()
        rows = list(Schedule.objects.all())
        states = dict(
            Job.objects.filter(pk__in=[r.last_job_id for r in rows if r.last_job_id]).values_list(
                "pk", "state"
            )
        )
        listed = [
            {
                "name": row.name,
                "job": row.job_name,
                "when": f"every {row.every_seconds}s"
                if row.every_seconds
                else f"{row.cron} ({row.timezone})",
                "enabled": row.enabled,
                "source": "settings" if row.from_settings else "admin",
                "missed": row.missed,
                "next_fire": firing.next_fire(row, now),
                "last_tick": row.last_tick,
                "last_job": str(row.last_job_id) if row.last_job_id else None,
                "last_job_state": states.get(row.last_job_id, "deleted")
                if row.last_job_id
                else None,
            }
            for row in rows
        ]
        if options["format"] == "json":
            for item in listed:
                item["next_fire"] = item["next_fire"] and item["next_fire"].isoformat()
                item["last_tick"] = item["last_tick"] and item["last_tick"].isoformat()
            self.stdout.write(json.dumps(listed, indent=2))
            return
        if not listed:
            self.stdout.write(
                "No schedules (declare them in DBQ_SCHEDULES or add them in the admin)."
            )
            return
        header = ("name", "job", "when", "on", "source", "next fire", "last fire", "last job")
        table = [
            (
                item["name"],
                item["job"],
                item["when"],
                "yes" if item["enabled"] else "no",
                item["source"],
                _when(item["next_fire"]),
                _when(item["last_tick"]),
                item["last_job_state"] or "-",
            )
            for item in listed
        ]
        widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            self.stdout.write(
                "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
