"""Alerts in words, and where their runbook is: a section of ``docs/operations.md``.

The link goes to ``JOBS_RUNBOOK_URL`` plus the section's anchor (GitHub's heading slugs). Left empty (the
default), the admin serves the repository's ``docs/operations.md`` itself, with the same anchors, so the
link opens wherever the admin does; point it at the docs' page in your repository host to link there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.html import escape

RUNBOOK_FILE = Path(settings.BASE_DIR) / "docs" / "operations.md"


@dataclass(frozen=True)
class AlertGuide:
    title: str
    # The heading in docs/operations.md that says what to do.
    section: str


ALERT_GUIDES = {
    "broker_unreachable": AlertGuide("Broker unreachable", "JobsBrokerUnreachable"),
    "dead_letter_queue": AlertGuide("Dead-letter queue not empty", "Operator runbook: the dead-letter queue"),
    "queue_backlog": AlertGuide("Queue backlog", "JobsQueueBacklog"),
    "success_rate": AlertGuide("Success rate low", "JobsFailureRatioHigh"),
    "queue_unconsumed": AlertGuide("Queue without a worker", "JobsQueueWithoutConsumer"),
    "workers_database_unreachable": AlertGuide("Workers cannot reach the database", "JobsDatabaseUnreachable"),
    "leases_expired": AlertGuide("Running jobs past their lease", "Operations overview and alerts"),
}


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def alert_guide(code: str) -> AlertGuide:
    return ALERT_GUIDES.get(code, AlertGuide(code.replace("_", " ").capitalize(), "Operations overview and alerts"))


def runbook_url(*, code: str, local_url: str) -> str:
    """The runbook section for alert ``code``: under ``JOBS_RUNBOOK_URL``, or the admin's copy at ``local_url``."""
    base = getattr(settings, "JOBS_RUNBOOK_URL", "") or local_url
    return f"{base}#{heading_anchor(alert_guide(code).section)}"


def runbook_html() -> str:
    """docs/operations.md as plain HTML: headings with their anchors, the rest as preformatted text."""
    try:
        text = RUNBOOK_FILE.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"<p>{escape(str(RUNBOOK_FILE))} is not on this server; set JOBS_RUNBOOK_URL to where the docs are.</p>"
    parts: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        heading = re.match(r"^(#{1,4}) (.+)$", line)
        if heading:
            if block:
                parts.append(f'<pre class="runbook-text">{escape(chr(10).join(block).strip(chr(10)))}</pre>')
                block = []
            level = min(len(heading.group(1)) + 1, 4)
            title = heading.group(2)
            parts.append(f'<h{level} id="{heading_anchor(title)}">{escape(title)}</h{level}>')
        else:
            block.append(line)
    if block:
        parts.append(f'<pre class="runbook-text">{escape(chr(10).join(block).strip(chr(10)))}</pre>')
    return "".join(parts)
