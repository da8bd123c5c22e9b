"""The chaos drills' job type. Its body records every execution outside the job tables.

Each execution appends ``start`` and, if it gets that far, ``end`` lines (job id, attempt,
pid, time) to the file named by ``CHAOS_EXECUTIONS``, with O_APPEND writes small enough to
be atomic: a SIGKILL leaves a start without an end, and nothing the platform writes (or
fails to write) can change the count. Workers load this module with ``--include``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from jobs.public import JobContext, job_type

# Small, as a bound on a drill's slowest body; rescues wait for the attempt's lease, not for this.
TIME_LIMIT = int(os.environ.get("CHAOS_TIME_LIMIT", "20"))


def record_execution(event: str, ctx: JobContext) -> None:
    path = os.environ.get("CHAOS_EXECUTIONS")
    if not path:
        return
    line = f"{event} {ctx.job_id} {ctx.attempt} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@job_type("chaos.work", queue="default", time_limit=TIME_LIMIT, soft_time_limit=max(1, TIME_LIMIT - 2))
def work(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` between recording its start and its end."""
    record_execution("start", ctx)
    time.sleep(float(payload.get("seconds", 0.05)))
    record_execution("end", ctx)
    return {"pid": os.getpid()}
