"""Race tests: run several calls at the same moment, each on its own thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_at_once(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run every call on a thread of its own, all released together by a barrier, and return their results
    in call order. Each thread's database connections are closed when it ends (Django opens one per thread).
    The first error a call raised is raised here, once every thread has ended."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = call()
        except BaseException as error:  # raised on the test's thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), f"a call was still running after {timeout} s"
    if errors:
        raise errors[0]
    return results
