"""Bar charts of finished jobs, drawn on the server as inline SVG.

No JavaScript and no CDN: the page works on a server without internet access,
and the chart is part of the HTML the browser tests read. Every label is
escaped (``format_html``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..operations.stats import Bucket

WIDTH, HEIGHT = 640, 140
LEFT, BOTTOM, TOP = 44, 22, 8
COMPLETED, FAILED = "#2e7d32", "#c62828"


def _nice_max(value: int) -> int:
    """``value`` rounded up to two significant digits (253 -> 260), at least 1."""
    step = 10 ** max(0, len(str(max(value, 1))) - 2)
    return max(1, -(-value // step) * step)


def _n(number: float) -> str:
    """A coordinate (format_html would not apply a numeric format to its arguments)."""
    return f"{number:.1f}"


def bars(
    buckets: Sequence[Bucket],
    *,
    label_when: Callable[[datetime.datetime], bool],
    label_format: str,
    unit: str,
    title: str,
) -> SafeString:
    """Completed (green) stacked under failed (red) per bucket, oldest on the left;
    an x label under the buckets whose local start ``label_when`` picks (``strftime``
    format, local time)."""
    count = max(1, len(buckets))
    top = _nice_max(max([b.completed + b.failed for b in buckets] + [1]))
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    step = plot_w / count
    width = max(1.0, step * 0.8)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    shapes = []
    for index, bucket in enumerate(buckets):
        x = LEFT + index * step + (step - width) / 2
        start = timezone.localtime(bucket.start)
        tip = (
            f"{start:%Y-%m-%d %H:%M} ({unit}): {bucket.completed} completed, {bucket.failed} failed"
        )
        done_top = y(bucket.completed)
        shapes.append(
            format_html(
                '<g class="dbq-bar"><title>{}</title>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/></g>',
                tip,
                _n(x),
                _n(done_top),
                _n(width),
                _n(TOP + plot_h - done_top),
                COMPLETED,
                _n(x),
                _n(y(bucket.completed + bucket.failed)),
                _n(width),
                _n(done_top - y(bucket.completed + bucket.failed)),
                FAILED,
            )
        )
        if label_when(start):
            shapes.append(
                format_html(
                    '<text x="{}" y="{}" class="dbq-chart-label">{}</text>',
                    _n(x),
                    HEIGHT - 6,
                    f"{start:{label_format}}",
                )
            )
    axis = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="dbq-chart-axis"/>'
        '<text x="{}" y="{}" text-anchor="end" class="dbq-chart-label">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="dbq-chart-label">0</text>',
        LEFT,
        TOP + plot_h,
        WIDTH - 4,
        TOP + plot_h,
        LEFT - 6,
        TOP + 10,
        top,
        LEFT - 6,
        TOP + plot_h,
    )
    return format_html(
        '<svg class="dbq-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg">{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        axis,
        format_html_join("", "{}", ((shape,) for shape in shapes)),
    )


def per_minute(buckets: Sequence[Bucket]) -> SafeString:
    return bars(
        buckets,
        label_when=lambda start: start.minute % 10 == 0,
        label_format="%H:%M",
        unit="minute",
        title="Jobs finished per minute, last hour",
    )


def per_hour(buckets: Sequence[Bucket]) -> SafeString:
    return bars(
        buckets,
        # Hours are UTC hours: in a zone off UTC by a half hour they start at :30.
        label_when=lambda start: start.hour % 4 == 0,
        label_format="%H:%M",
        unit="hour",
        title="Jobs finished per hour, last 24 hours",
    )
