"""What a domain app tells the operator's console about its job types, without the console knowing the domain.

A domain app registers, per job type (through ``jobs.public.job_admin_hooks_register``, usually from its
``admin.py``):

- ``record_link(job_id, payload)``: the admin page of the record the job works on (a sync run, an export),
  shown on the job's page;
- ``replay_advice(payloads)``: a warning shown on the replay confirmation, before anything is replayed, when
  replaying these jobs would not do what an operator expects, with a link to what would help instead.

Both are read-only and must be cheap: they run on page views. A hook that raises is logged and ignored,
so a domain bug never breaks the console.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminLink:
    """A link on an admin page: what it opens, and where."""

    label: str
    url: str


@dataclass(frozen=True)
class ReplayAdvice:
    """Said before a replay is confirmed: what the replay would (not) do, and what would help instead."""

    message: str
    link: AdminLink | None = None


RecordLink = Callable[[str, dict[str, Any]], AdminLink | None]
ReplayAdviser = Callable[[Sequence[dict[str, Any]]], ReplayAdvice | None]


@dataclass(frozen=True)
class _Hooks:
    record_link: RecordLink | None = None
    replay_advice: ReplayAdviser | None = None


_hooks: dict[str, _Hooks] = {}


def register(
    *, job_type: str, record_link: RecordLink | None = None, replay_advice: ReplayAdviser | None = None
) -> None:
    """Register a job type's admin hooks (again: replaces them, so a reloaded module does not stack them)."""
    _hooks[job_type] = _Hooks(record_link=record_link, replay_advice=replay_advice)


def record_link(*, job_type: str, job_id: str, payload: dict[str, Any]) -> AdminLink | None:
    """The admin page of the record this job works on, when its type says so."""
    hook = _hooks.get(job_type, _Hooks()).record_link
    if hook is None:
        return None
    try:
        return hook(job_id, payload)
    except Exception:
        logger.exception("record_link hook of %s failed for job %s", job_type, job_id)
        return None


def replay_advice(*, job_type: str, payloads: Sequence[dict[str, Any]]) -> ReplayAdvice | None:
    """What the type says about replaying jobs with these payloads (None: nothing to warn about)."""
    hook = _hooks.get(job_type, _Hooks()).replay_advice
    if hook is None or not payloads:
        return None
    try:
        return hook(payloads)
    except Exception:
        logger.exception("replay_advice hook of %s failed", job_type)
        return None
