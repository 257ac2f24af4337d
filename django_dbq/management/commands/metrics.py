import json

from django.core.management.base import BaseCommand, CommandError

from django_dbq.exceptions import DbqError
from django_dbq.management.options import require_migrated
from django_dbq.operations import exposition, stats


def _seconds(value):
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


class Command(BaseCommand):
    help = (
        "Print the dashboard's figures: per queue ready, scheduled and processing jobs, "
        "the wait of the oldest ready job, jobs completed and failed in the last 24 hours; "
        "live workers; as a table, JSON or Prometheus' text format."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--format",
            choices=["table", "json", "prometheus"],
            default="table",
            help="table (default), json, or prometheus (needs prometheus-client: "
            'pip install "django-dbq[prometheus]").',
        )

    def handle(self, *args, **options):
        try:
            require_migrated()
        except DbqError as exc:
            raise CommandError(str(exc)) from None
        if options["format"] == "prometheus":
            try:
                exposition.content_type()
            except exposition.MetricsUnavailable as exc:
                raise CommandError(str(exc)) from None
        snapshot = stats.snapshot()
        if options["format"] == "json":
            self.stdout.write(json.dumps(snapshot.as_dict(), indent=2))
        elif options["format"] == "prometheus":
            self.stdout.write(exposition.render(snapshot).decode(), ending="")
        else:
            self._table(snapshot)

    def _table(self, snapshot):
        header = ("queue", "ready", "scheduled", "processing", "lag", "done 24h", "failed 24h")
        rows = [
            (
                (item.queue or "(all)") + (" (paused)" if item.paused else ""),
                str(item.ready),
                str(item.scheduled),
                str(item.processing),
                _seconds(item.lag(snapshot.taken_at)),
                str(item.completed_24h),
                str(item.failed_24h),
            )
            for item in [*snapshot.queues, snapshot.totals]
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(cells):
            first = cells[0].ljust(widths[0])
            rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
            return "  ".join([first, *rest])

        self.stdout.write(line(header))
        for row in rows:
            self.stdout.write(line(row))
        last = snapshot.per_minute[-2]
        self.stdout.write(
            f"\nLast whole minute: {last.completed} completed, {last.failed} failed.\n"
            f"Live workers: {len(snapshot.workers)}"
        )
        for worker in snapshot.workers:
            age = (snapshot.taken_at - worker.heartbeat_at).total_seconds()
            self.stdout.write(
                f"  {worker.owner}  queues={','.join(worker.queues)} "
                f"concurrency={worker.concurrency} held={worker.jobs_held} "
                f"done={worker.jobs_done} heartbeat={_seconds(max(0.0, age))} ago"
            )
