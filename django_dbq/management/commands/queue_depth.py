from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import parse_queue_names, require_migrated
from django_dbq.models import Job


class Command(BaseCommand):
    help = "Print the number of waiting (NEW or READY) jobs per queue."

    def add_arguments(self, parser):
        parser.add_argument("queue_names", nargs="*", help="Queues to report (default: all).")
        parser.add_argument(
            "--exclude_future_jobs",
            "--exclude-future-jobs",
            action="store_true",
            dest="exclude_future_jobs",
            help="Do not count jobs whose run_after is in the future.",
        )

    def handle(self, *args, **options):
        try:
            parse_queue_names(options["queue_names"])
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        depths = Job.get_queue_depths(exclude_future_jobs=options["exclude_future_jobs"])
        names = options["queue_names"] or sorted({"default", *depths})
        self.stdout.write(
            "event=queue_depths " + " ".join(f"{name}={depths.get(name, 0)}" for name in names)
        )
