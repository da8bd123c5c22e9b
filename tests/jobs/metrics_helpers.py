"""Helpers for the metrics tests: scraping and parsing an exposition (and the dev stack's free_port)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from devtools.devstack import free_port

__all__ = ["free_port", "samples", "scrape", "value"]


def scrape(url: str, *, token: str | None = None, timeout: float = 5) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by (sample name, its labels)."""
    found: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))
