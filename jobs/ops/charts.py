"""Charts for the admin's *Overview and alerts* page: index-bound reads of the last 24 hours, drawn as SVG.

Every read is bounded by ``finished_at >= now - 24 h`` and served by the partial index on
``finished_at`` (or, for the dead-letter queue, by the dead jobs and the replays' partial index),
so the page stays fast on a table of millions of jobs. The pictures are plain server-rendered SVG
(no JavaScript, no CDN).

- jobs finished per minute, by outcome;
- run time p50/p95/p99 per job type (the last attempt of each job that finished);
- queue wait p50/p95/p99 per queue (enqueue to the first attempt's start, jobs that finished first time);
- the dead-letter queue's size over the day, rebuilt from when its jobs died and were replayed
  (a job an operator *retried* left no trace of its stay, so it is not in the picture).

The two time charts are drawn over the shortest of the last 1, 6 or 24 hours that holds everything
that happened in the day, so a burst of recent work is drawn wide, not as a sliver at "now".
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Min
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from jobs.models import Job

S = Job.Status
WINDOW = timedelta(hours=24)
# The time charts' spans, shortest first: the first that holds the day's events is drawn.
SPANS = (timedelta(hours=1), timedelta(hours=6), WINDOW)
# Points drawn for the dead-letter queue's size over the span.
_DEAD_LETTER_STEPS = 96
OUTCOMES = (S.SUCCEEDED, S.FAILED, S.DEAD, S.CANCELLED)
PERCENTILES = (0.5, 0.95, 0.99)
# At most this many durations per group are read on databases without percentile_cont (SQLite).
_PYTHON_PERCENTILE_SAMPLE = 20_000


@dataclass(frozen=True)
class Percentiles:
    name: str
    count: int
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class OverviewCharts:
    since: datetime
    now: datetime
    finished_per_minute: dict[str, list[tuple[datetime, int]]]
    run_time: list[Percentiles]
    queue_wait: list[Percentiles]
    dead_letter: list[tuple[datetime, int]]
    # What the time charts show: the last ``span`` (all of the day's events fall in it).
    span: timedelta = WINDOW

    @property
    def span_label(self) -> str:
        hours = round(self.span.total_seconds() / 3600)
        return "hour" if hours == 1 else f"{hours} hours"


def overview_charts(*, now: datetime | None = None) -> OverviewCharts:
    """The data behind the overview's charts, over the last 24 hours (the time charts over the shortest
    span in ``SPANS`` holding every event of the day)."""
    now = now or timezone.now()
    since = now - WINDOW
    finished = _finished_per_minute(since)
    deaths, replays = _dead_letter_changes(since)
    events = [at for points in finished.values() for at, _ in points] + deaths + replays
    earliest = min(events, default=since)
    # A minute of margin: the per-minute buckets start at the minute, drawn a minute wide.
    span = next(span for span in SPANS if now - span <= earliest - timedelta(minutes=1) or span == WINDOW)
    return OverviewCharts(
        since=since, now=now, finished_per_minute=finished,
        run_time=_percentiles(since, group="type", start="started_at", attempts_only_first=False),
        queue_wait=_percentiles(since, group="queue", start="enqueued_at", attempts_only_first=True),
        dead_letter=_dead_letter_over_time(now - span, now, deaths=deaths, replays=replays,
                                           step=span / _DEAD_LETTER_STEPS),
        span=span,
    )  # fmt: skip


def _finished_recently(since: datetime) -> Any:
    return Job.objects.filter(finished_at__gte=since).order_by()


def finished_per_minute_query(since: datetime, *, trunc: type[TruncMinute | TruncHour] = TruncMinute) -> Any:
    """(status, minute, count) of jobs finished since ``since``: a range scan of the ``finished_at`` index.

    ``trunc=TruncHour`` counts per hour instead (the dashboard's week)."""
    return (
        _finished_recently(since)
        .filter(status__in=OUTCOMES)
        .annotate(minute=trunc("finished_at"))
        .values_list("status", "minute")
        .annotate(count=Count("id"))
    )


def _finished_per_minute(
    since: datetime, *, trunc: type[TruncMinute | TruncHour] = TruncMinute
) -> dict[str, list[tuple[datetime, int]]]:
    rows = finished_per_minute_query(since, trunc=trunc)
    series: dict[str, list[tuple[datetime, int]]] = {status.value: [] for status in OUTCOMES}
    for status, minute, count in rows:
        series[status].append((minute, count))
    for points in series.values():
        points.sort()
    return series


def _percentiles(since: datetime, *, group: str, start: str, attempts_only_first: bool) -> list[Percentiles]:
    """p50/p95/p99 of ``finished_at``-or-``started_at`` minus ``start`` per ``group``, jobs finished since."""
    end = "started_at" if start == "enqueued_at" else "finished_at"
    if connection.vendor == "postgresql":
        return _percentiles_sql(since, group=group, start=start, end=end, attempts_only_first=attempts_only_first)
    jobs = _finished_recently(since).filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
    if attempts_only_first:
        jobs = jobs.filter(attempt=1)
    durations: dict[str, list[float]] = defaultdict(list)
    rows = jobs.order_by("-finished_at").values_list(group, start, end)[: _PYTHON_PERCENTILE_SAMPLE * 10]
    for name, began, ended in rows:
        if len(durations[name]) < _PYTHON_PERCENTILE_SAMPLE:
            durations[name].append(max(0.0, (ended - began).total_seconds()))
    return [_from_sample(name, values) for name, values in sorted(durations.items())]


def percentiles_statement(
    since: datetime, *, group: str, start: str, end: str, attempts_only_first: bool
) -> tuple[str, list[Any]]:
    """PostgreSQL: one statement, percentile_cont over the jobs finished since ``since`` (the ``finished_at`` index)."""
    quote = connection.ops.quote_name
    table = quote(Job._meta.db_table)
    seconds = f"EXTRACT(EPOCH FROM ({quote(end)} - {quote(start)}))"
    first_only = "AND attempt = 1" if attempts_only_first else ""
    sql = f"""
        SELECT {quote(group)}, count(*),
               percentile_cont(ARRAY[%s, %s, %s]) WITHIN GROUP (ORDER BY {seconds})
          FROM {table}
         WHERE finished_at >= %s AND {quote(start)} IS NOT NULL AND {quote(end)} IS NOT NULL {first_only}
         GROUP BY {quote(group)} ORDER BY {quote(group)}
    """  # noqa: S608 - names come from model metadata and this module, values are parameters
    return sql, [*PERCENTILES, since]


def _percentiles_sql(
    since: datetime, *, group: str, start: str, end: str, attempts_only_first: bool
) -> list[Percentiles]:
    sql, params = percentiles_statement(
        since, group=group, start=start, end=end, attempts_only_first=attempts_only_first
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        Percentiles(name=name, count=count, p50=max(0.0, p[0]), p95=max(0.0, p[1]), p99=max(0.0, p[2]))
        for name, count, p in rows
    ]


def _from_sample(name: str, values: list[float]) -> Percentiles:
    values.sort()

    def at(fraction: float) -> float:
        # Linear interpolation between closest ranks, as percentile_cont does.
        position = fraction * (len(values) - 1)
        low, high = math.floor(position), math.ceil(position)
        return values[low] + (values[high] - values[low]) * (position - low)

    return Percentiles(name=name, count=len(values), p50=at(0.5), p95=at(0.95), p99=at(0.99))


def _dead_letter_changes(since: datetime) -> tuple[list[datetime], list[datetime]]:
    """When jobs died since ``since``, and when dead jobs were first replayed (so left the queue)."""
    # finished_at and Min() may be NULL in general; the filters on them (>= since) leave none here.
    deaths = cast(
        "list[datetime]",
        list(
            Job.objects.filter(status=S.DEAD, finished_at__gte=since).order_by().values_list("finished_at", flat=True)
        ),
    )
    # When each dead job left the queue: its first replay.
    replays = cast(
        "list[datetime]",
        list(
            Job.objects.filter(replay_of__isnull=False, replay_of__status=S.DEAD, created_at__gte=since)
            .order_by()
            .values("replay_of")
            .annotate(first=Min("created_at"))
            .filter(first__gte=since)
            .values_list("first", flat=True)
        ),
    )
    return deaths, replays


def _dead_letter_over_time(
    since: datetime, now: datetime, *, deaths: list[datetime], replays: list[datetime], step: timedelta
) -> list[tuple[datetime, int]]:
    size_now = Job.objects.dead_letter().count()
    points = []
    moment = now
    while moment >= since:
        # Walking back from now: a death after `moment` was not in the queue yet, a replay after it still was.
        size = size_now - sum(1 for at in deaths if at > moment) + sum(1 for at in replays if at > moment)
        points.append((moment, max(0, size)))
        moment -= step
    points.reverse()
    return points


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "dead": "#6a1b9a", "cancelled": "#757575"}
PERCENTILE_COLOURS = {"p50": "#1565c0", "p95": "#ef6c00", "p99": "#c62828"}
# Narrow enough that a phone (about 350 px of card) scales the text no smaller than about 9 px; no minimum
# width, so a chart never scrolls inside its card.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 560, 250, 44, 12, 52, 28
FONT_SIZE, CHAR_WIDTH = 14, 7.6


def _svg(body: list[str], *, title: str, height: int = HEIGHT) -> SafeString:
    return mark_safe(  # noqa: S308 - every text below is escaped
        f'<svg class="jobs-chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="sans-serif" font-size="{FONT_SIZE}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _time_axis(since: datetime, now: datetime, x: Any) -> list[str]:
    """Four or five ticks back from "now": minutes over an hour, hours over longer spans, days over a week."""
    minutes = round((now - since).total_seconds() / 60)
    days = minutes > 2 * 24 * 60  # the dashboard's week: a tick a day
    intervals = round(minutes / (24 * 60)) if days else 4 if minutes >= 24 * 60 else 3
    body = []
    for index in range(intervals, -1, -1):
        ago = minutes * index / intervals
        px = x(now - timedelta(minutes=ago))
        label = ("now" if index == 0 else f"-{ago:.0f} min" if minutes <= 60 else f"-{ago / 1440:g} d" if days
                 else f"-{ago / 60:g} h")  # fmt: skip
        body.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#ddd"/>')
        anchor = "end" if index == 0 else "middle" if index < intervals else "start"
        body.append(f'<text x="{px:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" fill="#555">{label}</text>')
    return body


def y_ticks(peak: int) -> list[int]:
    """Whole, distinct counts for the y-axis, from 0 to a round top at or above ``peak`` (1, 2, 5 x 10^n)."""
    if peak <= 2:
        return list(range(max(1, peak) + 1))
    magnitude = 10 ** math.floor(math.log10(peak))
    top = next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= peak)
    return [0, top // 2, top] if top % 2 == 0 else [0, top]


def line_chart(
    series: dict[str, list[tuple[datetime, int]]], *, since: datetime, now: datetime, title: str, unit: str,
    colours: dict[str, str], step: bool = False, bucket: timedelta = timedelta(minutes=1),
) -> SafeString:  # fmt: skip
    """Lines from ``since`` to ``now`` (missing buckets, minutes by default, are zeros when ``step`` is False)."""
    ticks = y_ticks(max([count for points in series.values() for at, count in points if at >= since] + [0]))
    peak = ticks[-1]
    span = (now - since).total_seconds()

    def x(at: datetime) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * max(0.0, min(1.0, (at - since).total_seconds() / span))

    def y(value: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / peak

    body = _time_axis(since, now, x)
    for tick in ticks:
        body.append(f'<text class="y-tick" x="{LEFT - 6}" y="{y(tick) + 5:.1f}" text-anchor="end" fill="#555">'
                    f"{tick}</text>")  # fmt: skip
    body.append(f'<text x="2" y="14" fill="#555">{escape(unit)}:</text>')
    # The legend under the unit, wrapping onto a second line rather than running off the picture.
    legend_x, legend_y = 2.0, 34
    for name, points in series.items():
        points = [(at, count) for at, count in points if at >= since - bucket]
        colour = colours.get(name, "#333")
        if step:
            coords = [f"{x(at):.1f},{y(count):.1f}" for at, count in points]
        else:
            # Zero between the minutes that saw jobs, so a quiet hour reads as zero, not a slope.
            coords = []
            for at, count in points:
                coords += [f"{x(at - bucket):.1f},{y(0):.1f}", f"{x(at):.1f},{y(count):.1f}",
                           f"{x(at + bucket):.1f},{y(0):.1f}"]  # fmt: skip
        if coords:
            body.append(f'<polyline class="series series-{escape(name)}" fill="none" stroke="{colour}" '
                        f'stroke-width="1.5" points="{" ".join(coords)}"/>')  # fmt: skip
        total = sum(count for _, count in points)
        label = f"{name} ({total})" if not step else name
        width = 30 + CHAR_WIDTH * len(label)
        if legend_x > 2 and legend_x + width > WIDTH:  # onto a second line, in the plot's top margin
            legend_x, legend_y = 2.0, legend_y + 16
        body.append(f'<rect x="{legend_x:.1f}" y="{legend_y - 11}" width="11" height="11" fill="{colour}"/>'
                    f'<text x="{legend_x + 15:.1f}" y="{legend_y}" fill="#333">{escape(label)}</text>')  # fmt: skip
        legend_x += width
    return _svg(body, title=title)


def _seconds_label(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def percentile_chart(rows: list[Percentiles], *, title: str, empty: str) -> SafeString:
    """Horizontal bars (log scale, 10 ms to 30 min): p50, p95 and p99 for each row."""
    label_width, row_height, top_margin = 150, 56, 8
    height = top_margin + BOTTOM + row_height * max(1, len(rows))
    low, high = math.log10(0.01), math.log10(1800)

    def x(seconds: float) -> float:
        fraction = (math.log10(max(0.01, min(1800.0, seconds))) - low) / (high - low)
        return label_width + (WIDTH - label_width - RIGHT) * fraction

    body = []
    for tick in (0.01, 0.1, 1, 10, 60, 1800):
        px = x(tick)
        anchor = "end" if tick == 1800 else "middle"
        body.append(f'<line x1="{px:.1f}" y1="{top_margin}" x2="{px:.1f}" y2="{height - BOTTOM}" stroke="#ddd"/>'
                    f'<text x="{px:.1f}" y="{height - 10}" text-anchor="{anchor}" fill="#555">'
                    f"{_seconds_label(tick)}</text>")  # fmt: skip
    if not rows:
        body.append(f'<text x="{label_width}" y="{top_margin + 20}" fill="#555">{escape(empty)}</text>')
    for index, row in enumerate(rows):
        top = top_margin + index * row_height
        body.append(f'<text x="{label_width - 6}" y="{top + 15}" text-anchor="end" fill="#333">{escape(row.name)}</text>'
                    f'<text x="{label_width - 6}" y="{top + 31}" text-anchor="end" fill="#777">{row.count} jobs</text>')  # fmt: skip
        for offset, (name, value) in enumerate((("p50", row.p50), ("p95", row.p95), ("p99", row.p99))):
            bar_top = top + 3 + offset * 9
            body.append(
                f'<rect class="bar bar-{name}" x="{label_width}" y="{bar_top}" width="{max(1.0, x(value) - label_width):.1f}" '
                f'height="8" fill="{PERCENTILE_COLOURS[name]}"><title>{escape(row.name)} {name}: '
                f"{_seconds_label(value)}</title></rect>"
            )
        body.append(f'<text x="{label_width}" y="{top + 47}" fill="#333">p50 {_seconds_label(row.p50)} · '
                    f"p95 {_seconds_label(row.p95)} · p99 {_seconds_label(row.p99)}</text>")  # fmt: skip
    return _svg(body, title=title, height=height)


def render_overview_charts(charts: OverviewCharts) -> dict[str, SafeString]:
    """The four SVG pictures, by name, for the overview's template."""
    drawn_since = charts.now - charts.span
    return {
        "finished": line_chart(
            charts.finished_per_minute, since=drawn_since, now=charts.now, unit="jobs / minute",
            title=f"Jobs finished per minute by outcome, last {charts.span_label}", colours=COLOURS,
        ),
        "run_time": percentile_chart(charts.run_time, title="Run time p50 / p95 / p99 per job type, last 24 hours",
                                     empty="no job finished in the last 24 hours"),
        "queue_wait": percentile_chart(charts.queue_wait, title="Queue wait p50 / p95 / p99 per queue, last 24 hours",
                                       empty="no job finished its first attempt in the last 24 hours"),
        "dead_letter": line_chart(
            {"dead-letter queue": charts.dead_letter}, since=drawn_since, now=charts.now, unit="dead jobs waiting",
            title=f"Dead-letter queue size, last {charts.span_label}", colours={"dead-letter queue": COLOURS["dead"]}, step=True,
        ),
    }  # fmt: skip


# ---------------------------------------------------------------------------
# The dashboard's throughput: jobs finished by outcome over a range an operator picks
# ---------------------------------------------------------------------------

# Range key -> (span, counted per minute or per hour); the first is the default.
THROUGHPUT_RANGES: dict[str, tuple[timedelta, type[TruncMinute | TruncHour]]] = {
    "1h": (timedelta(hours=1), TruncMinute), "6h": (timedelta(hours=6), TruncMinute),
    "24h": (WINDOW, TruncMinute), "7d": (timedelta(days=7), TruncHour),
}  # fmt: skip
DEFAULT_THROUGHPUT_RANGE = "1h"


@dataclass(frozen=True)
class Throughput:
    range_key: str
    since: datetime
    now: datetime
    # Jobs finished per minute (per hour over 7 days), by outcome.
    per_bucket: dict[str, list[tuple[datetime, int]]]

    @property
    def bucket(self) -> timedelta:
        return timedelta(hours=1) if THROUGHPUT_RANGES[self.range_key][1] is TruncHour else timedelta(minutes=1)

    @property
    def totals(self) -> dict[str, int]:
        return {status: sum(count for _, count in points) for status, points in self.per_bucket.items()}

    @property
    def failure_percent(self) -> float | None:
        """Failed and dead among the jobs that succeeded, failed or died (cancelled ones say nothing)."""
        totals = self.totals
        judged = totals[S.SUCCEEDED] + totals[S.FAILED] + totals[S.DEAD]
        return 100 * (totals[S.FAILED] + totals[S.DEAD]) / judged if judged else None


def throughput(*, range_key: str = DEFAULT_THROUGHPUT_RANGE, now: datetime | None = None) -> Throughput:
    """Jobs finished by outcome over the last ``range_key`` (``THROUGHPUT_RANGES``; unknown keys read as the
    default), through the ``finished_at`` index like the overview's charts."""
    range_key = range_key if range_key in THROUGHPUT_RANGES else DEFAULT_THROUGHPUT_RANGE
    now = now or timezone.now()
    span, trunc = THROUGHPUT_RANGES[range_key]
    since = now - span
    return Throughput(range_key=range_key, since=since, now=now,
                      per_bucket=_finished_per_minute(since, trunc=trunc))  # fmt: skip


def render_throughput(found: Throughput) -> SafeString:
    unit = "jobs / hour" if found.bucket == timedelta(hours=1) else "jobs / minute"
    return line_chart(found.per_bucket, since=found.since, now=found.now, unit=unit, colours=COLOURS,
                      title=f"Jobs finished by outcome, last {found.range_key}", bucket=found.bucket)  # fmt: skip


def flower_task_url(*, flower_url: str, celery_task_id: str) -> str:
    """The task's page in Flower, or '' without a Flower URL or a task."""
    if not flower_url or not celery_task_id:
        return ""
    return f"{flower_url.rstrip('/')}/task/{celery_task_id}"
