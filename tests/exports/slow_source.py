"""A test export source that takes its time (named in EXPORTS_SOURCES by the end-to-end tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any


class SlowRows:
    name = "slow"
    title = "Slow rows (tests)"
    staff_only = False
    columns = (("n", "int"), ("label", "text"), ("at", "datetime"))
    filter_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rows": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 3000},
            "delay_ms": {"type": "number", "minimum": 0, "maximum": 100, "default": 2},
        },
    }

    @staticmethod
    def rows(*, user: Any, filters: dict) -> Iterator[tuple]:
        at = datetime(2026, 3, 1, tzinfo=UTC)
        for n in range(filters["rows"]):
            time.sleep(filters["delay_ms"] / 1000)
            yield n, f"row {n}" if n % 7 else f"=formula {n}", at

    @staticmethod
    def count(*, user: Any, filters: dict) -> int:
        return filters["rows"]
