from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import create_job, require_migrated


class Command(BaseCommand):
    help = "Create a job. Prints the new job's id."

    def add_arguments(self, parser):
        parser.add_argument("job_name", help="A name from the JOBS setting.")
        parser.add_argument("--queue_name", "--queue-name", default="default", dest="queue_name")
        parser.add_argument("--workspace", default=None, help="A JSON object.")
        # Parsed by us, not argparse, so that a bad value gets a one-line error.
        parser.add_argument("--priority", default="0", help="Integer; higher runs first.")
        parser.add_argument(
            "--run-after",
            "--run_after",
            default=None,
            dest="run_after",
            help="ISO-8601 date-time or relative time (+10m, 2h, 1d).",
        )

    def handle(self, *args, **options):
        try:
            require_migrated()
            job = create_job(
                options["job_name"],
                queue_name=options["queue_name"],
                workspace=options["workspace"],
                priority=options["priority"],
                run_after=options["run_after"],
            )
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(job.pk))
