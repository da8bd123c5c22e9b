"""The chaos suite at CI size: real worker processes, a Redis of its own, the benchmark's own database.

One run of ``python -m bench chaos --small`` (a few minutes), then one test per drill against
issue 14's "done when": nothing lost, nothing stuck after settling, no body run twice unless
every earlier run of it was killed mid-body, and work resuming by itself after the database drop.
The drills' workers hold 3 s attempt leases renewed every second, and the driver ticks the
reaper every second, so a worker in warm shutdown is watched by a busy reaper throughout.

It runs in both database modes: on the README's default (SQLite, a temporary file of the bench's
own) the bench runs every drill but the two that take the PostgreSQL server away, which skip here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.browser import ASYNC_UNSAFE
from tests.processes import BASE_DIR

pytestmark = [pytest.mark.worker, pytest.mark.chaos, pytest.mark.timeout(900)]


# The bench takes its database from DATABASE_URL (PostgreSQL), else a temporary SQLite file.
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
# The drills that act on the database server; on SQLite the bench skips them, and so do these tests.
POSTGRES_ONLY = {
    "PostgreSQL backends terminated": "pg_terminate_backend of every connection to the database: SQLite has no "
    "server and no backends to terminate (each process opens the file itself), so the drill cannot mean anything there",
    "PostgreSQL refusing connections": "the database refusing connections (ALLOW_CONNECTIONS false) while bodies "
    "run: SQLite has no server to refuse them (each process opens the file itself), so the drill cannot mean "
    "anything there",
}


def needs_postgres(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.skipif(not ON_POSTGRES, reason=POSTGRES_ONLY[name])] if name in POSTGRES_ONLY else []


@pytest.fixture(scope="module")
def drills(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("chaos") / "drills.json"
    env = {key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE", ASYNC_UNSAFE)}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "chaos", "--small", "--json", str(out)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    print(completed.stdout[-5000:])
    assert completed.returncode == 0 and out.exists(), completed.stdout[-3000:] + completed.stderr[-5000:]
    rows = {row["drill"]: row for row in json.loads(out.read_text())}
    # Every drill this mode can run did run: none may go missing from the table unnoticed.
    assert set(rows) == {name for name in DRILLS if ON_POSTGRES or name not in POSTGRES_ONLY}, sorted(rows)
    return rows


DRILLS = [
    "sigkill storm",
    "SIGTERM during long jobs",
    "Redis stopped at enqueue",
    "Redis restarted with persistence",
    "Redis restarted without persistence (wiped)",
    "PostgreSQL backends terminated",
    "PostgreSQL refusing connections",
    "duplicate deliveries",
]
EVERY_DRILL = [pytest.param(name, marks=needs_postgres(name)) for name in DRILLS]


@pytest.mark.parametrize("name", EVERY_DRILL)
def test_nothing_lost_nothing_stuck(drills, name):
    row = drills[name]
    assert row["settle_seconds"] is not None, row
    assert (row["lost"], row["stuck"]) == (0, 0), row
    assert row["succeeded"] + row["dead"] + row["failed"] == row["jobs"]


@pytest.mark.parametrize("name", EVERY_DRILL)
def test_no_body_runs_twice_unless_its_earlier_run_was_killed_mid_body(drills, name):
    row = drills[name]
    assert row["run_twice"] == row["run_twice_after_kill"], row


@pytest.mark.parametrize("name", EVERY_DRILL)
def test_every_drill_meets_the_done_when(drills, name):
    assert drills[name]["ok"], drills[name]


def test_a_deploy_never_runs_a_body_twice(drills):
    # SIGTERM to a worker running long jobs, the reaper ticking every second past the 3 s lease.
    row = drills["SIGTERM during long jobs"]
    assert (row["run_twice"], row["succeeded"]) == (0, row["jobs"]), row


@pytest.mark.skipif(not ON_POSTGRES, reason=POSTGRES_ONLY["PostgreSQL refusing connections"])
def test_a_body_that_finished_while_the_database_was_down_is_not_run_again(drills):
    # Its success write failed on every try; the reaper finished it from the completion recorded in Redis.
    row = drills["PostgreSQL refusing connections"]
    assert (row["run_twice"], row["succeeded"]) == (0, row["jobs"]), row
    assert row["details"]["finished_from_record"] >= 1, row  # the drill did put bodies in that spot


def test_duplicate_deliveries_run_each_body_once(drills):
    row = drills["duplicate deliveries"]
    assert (row["run_twice"], row["succeeded"]) == (0, row["jobs"])


@pytest.mark.parametrize("name", [pytest.param(name, marks=needs_postgres(name)) for name in POSTGRES_ONLY])
def test_work_resumes_by_itself_within_seconds_after_the_database_drop(drills, name):
    row = drills[name]
    assert row["details"]["resumed_after"] and max(row["details"]["resumed_after"]) < 10, row


def test_enqueue_stays_fast_while_redis_is_down(drills):
    # Five enqueues per transaction: one broker timeout at most (2 s), never one per enqueue.
    assert max(drills["Redis stopped at enqueue"]["details"]["commit_seconds"]) < 3
