"""The chaos suite at CI size: real worker processes, a Redis of its own, the benchmark's own database.

One run of ``python -m bench chaos --small`` (a few minutes), then one test per drill against
issue 14's "done when": nothing lost, nothing stuck after settling, no body run twice unless
every earlier run of it was killed, and work resuming by itself after the database drop.
The SIGTERM drill's double-run check needs attempt leases (issue 14, item 1): it is marked
xfail until they land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.processes import BASE_DIR

pytestmark = [pytest.mark.worker, pytest.mark.chaos, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def drills(tmp_path_factory) -> dict[str, dict]:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the chaos drills run on PostgreSQL, as production does (set DATABASE_URL)")
    out = tmp_path_factory.mktemp("chaos") / "drills.json"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "chaos", "--small", "--json", str(out)],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    print(completed.stdout[-5000:])
    assert completed.returncode == 0 and out.exists(), completed.stdout[-3000:] + completed.stderr[-5000:]
    return {row["drill"]: row for row in json.loads(out.read_text())}


DRILLS = [
    "sigkill storm",
    "SIGTERM during long jobs",
    "Redis stopped at enqueue",
    "Redis restarted with persistence",
    "Redis restarted without persistence (wiped)",
    "PostgreSQL backends terminated",
    "duplicate deliveries",
]


@pytest.mark.parametrize("name", DRILLS)
def test_nothing_lost_nothing_stuck(drills, name):
    row = drills[name]
    assert row["settle_seconds"] is not None, row
    assert (row["lost"], row["stuck"]) == (0, 0), row
    assert row["succeeded"] + row["dead"] + row["failed"] == row["jobs"]


@pytest.mark.parametrize("name", [name for name in DRILLS if name != "SIGTERM during long jobs"])
def test_no_body_runs_twice_unless_its_earlier_run_was_killed(drills, name):
    row = drills[name]
    assert row["run_twice"] == row["run_twice_after_kill"], row


@pytest.mark.xfail(reason="needs attempt leases with heartbeats (issue 14, item 1): today the reaper rescues the "
                          "jobs of a worker in warm shutdown while they still run", strict=False)  # fmt: skip
def test_a_deploy_never_runs_a_body_twice(drills):
    row = drills["SIGTERM during long jobs"]
    assert row["run_twice"] == 0, row


def test_duplicate_deliveries_run_each_body_once(drills):
    row = drills["duplicate deliveries"]
    assert (row["run_twice"], row["succeeded"]) == (0, row["jobs"])


def test_work_resumes_by_itself_within_seconds_after_the_database_drop(drills):
    row = drills["PostgreSQL backends terminated"]
    assert row["details"]["resumed_after"] and max(row["details"]["resumed_after"]) < 10, row


def test_enqueue_stays_fast_while_redis_is_down(drills):
    # Five enqueues per transaction: one broker timeout at most (2 s), never one per enqueue.
    assert max(drills["Redis stopped at enqueue"]["details"]["commit_seconds"]) < 3
