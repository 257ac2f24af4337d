from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import parse_hours, require_migrated
from django_dbq.models import Job


class Command(BaseCommand):
    help = "Delete COMPLETED and FAILED jobs created more than --hours ago (default 24)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", default="24", help="Age in hours (default 24).")

    def handle(self, *args, **options):
        try:
            hours = parse_hours(options["hours"])
            require_migrated()
            deleted = Job.objects.delete_old(hours=hours)
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Deleted {deleted} job(s) finished and created more than {hours:g}h ago")
