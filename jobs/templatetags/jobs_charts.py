"""``{% jobs_overview_charts %}`` (the overview's pictures) and ``{% flower_task_url job %}`` for admin templates."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings

from jobs.ops.charts import flower_task_url as _flower_task_url
from jobs.ops.charts import overview_charts, render_overview_charts

register = template.Library()


@register.inclusion_tag("admin/jobs/overview_charts.html")
def jobs_overview_charts() -> dict[str, Any]:
    charts = overview_charts()
    return {"charts": render_overview_charts(charts), "span_label": charts.span_label}


@register.simple_tag
def flower_task_url(job: Any) -> str:
    return _flower_task_url(
        flower_url=getattr(settings, "FLOWER_URL", ""), celery_task_id=getattr(job, "celery_task_id", "") or ""
    )
