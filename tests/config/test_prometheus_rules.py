"""The alert rules shipped in config/prometheus/, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.peers import require_executable

BASE_DIR = Path(__file__).resolve().parent.parent.parent
RULES_DIR = BASE_DIR / "config" / "prometheus"


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    path = require_executable("promtool", debian_package="prometheus")
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    document = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_catch_a_changed_threshold(tmp_path):
    """The unit tests bite: a backlog threshold moved from 300 s to 900 s fails them."""
    shutil.copy(RULES_DIR / "alerts_test.yml", tmp_path)
    changed = (
        (RULES_DIR / "alerts.yml")
        .read_text()
        .replace("(jobs_queue_oldest_due_age_seconds) > 300", "(jobs_queue_oldest_due_age_seconds) > 900")
    )
    (tmp_path / "alerts.yml").write_text(changed)
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "JobsQueueBacklog" in result.stdout + result.stderr


def test_every_issue_alert_exists_with_a_runbook_section_in_the_operations_runbook():
    readme = (BASE_DIR / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in readme.splitlines() if line.startswith("#")}  # fmt: skip
    names = {rule["alert"] for rule in rules()}
    assert names == {
        "JobsQueueBacklog", "JobsDeadLetterQueueNotEmpty", "JobsFailureRatioHigh", "JobsQueueWithoutConsumer",
        "JobsBeatNotFiring", "JobsCanaryStale", "JobsBrokerUnreachable", "JobsDatabaseUnreachable",
    }  # fmt: skip
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#"), url
        assert url.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {url} in docs/operations.md"
        assert rule["labels"]["severity"] in {"page", "ticket"}
