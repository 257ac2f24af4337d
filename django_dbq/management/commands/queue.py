from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_dbq.exceptions import DbqError
from django_dbq.management.options import parse_queue_names, require_migrated
from django_dbq.operations import pauses


class Command(BaseCommand):
    help = (
        "Pause or resume queues, or list the paused ones. Workers claim nothing from a "
        "paused queue (within a second); running jobs finish; the pause survives restarts."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        pause = actions.add_parser("pause", help="Pause queues.")
        pause.add_argument("queue_names", nargs="+", metavar="QUEUE")
        pause.add_argument("--by", default="", help="Who pauses them (shown in the admin).")
        resume = actions.add_parser("resume", help="Resume paused queues.")
        resume.add_argument("queue_names", nargs="+", metavar="QUEUE")
        actions.add_parser("list", help="List the paused queues.")

    def handle(self, *args, **options):
        try:
            names = parse_queue_names(options.get("queue_names") or [])
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        action = options["action"]
        if action == "list":
            found = pauses.paused()
            if not found:
                self.stdout.write("No queue is paused.")
            for pause in found:
                since = timezone.localtime(pause.paused_at).isoformat(timespec="seconds")
                by = f" by {pause.paused_by}" if pause.paused_by else ""
                self.stdout.write(f"{pause.queue_name}: paused since {since}{by}")
            return
        for name in names:
            if action == "pause":
                by = options["by"] or "manage.py queue pause"
                if pauses.pause(name, by=by):
                    self.stdout.write(
                        f"Paused queue {name!r}: workers stop claiming from it within "
                        f"{pauses.CHECK_SECONDS:g}s; running jobs finish."
                    )
                else:
                    self.stdout.write(f"Queue {name!r} was already paused.")
            elif pauses.resume(name):
                self.stdout.write(f"Resumed queue {name!r}.")
            else:
                self.stdout.write(f"Queue {name!r} was not paused.")
