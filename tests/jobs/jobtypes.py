"""Job types used only by tests. Workers started by tests load this module (--include)."""

from __future__ import annotations

import time

from jobs.public import Backoff, JobContext, TransientJobError, job_enqueue, job_type


@job_type("tests.always_fails", max_attempts=3, backoff=Backoff(base_seconds=0.2, cap_seconds=1))
def always_fails(ctx: JobContext, payload: dict) -> None:
    raise TransientJobError(f"always fails (attempt {ctx.attempt})")


@job_type("tests.bug", max_attempts=5)
def bug(ctx: JobContext, payload: dict) -> None:
    # A ValueError is not declared retryable: the job fails at once.
    raise ValueError("a bug in the job: the same input will fail the same way")


@job_type("tests.connection_flaky", max_attempts=4, backoff=Backoff(base_seconds=0.2, cap_seconds=1))
def connection_flaky(ctx: JobContext, payload: dict) -> dict:
    if ctx.attempt <= payload.get("fail_first", 1):
        raise ConnectionError("downstream refused the connection")
    return {"ok": True}


@job_type("tests.until_cancelled", max_attempts=1)
def until_cancelled(ctx: JobContext, payload: dict) -> None:
    deadline = time.monotonic() + payload.get("max_seconds", 30)
    step = 0
    while time.monotonic() < deadline:
        step += 1
        ctx.progress(min(99, step), f"step {step}", force=True)
        time.sleep(0.1)
    raise AssertionError("never cancelled")


@job_type("tests.fan_out", max_attempts=1)
def fan_out(ctx: JobContext, payload: dict) -> dict:
    children = [
        job_enqueue(job_type="tests.record", payload={"index": index}).job.id for index in range(payload.get("n", 2))
    ]
    ctx.log.info("enqueued %d children", len(children))
    return {"children": children}


@job_type("tests.record", max_attempts=1)
def record(ctx: JobContext, payload: dict) -> dict:
    return {"correlation_id": ctx.correlation_id, "index": payload.get("index")}


@job_type("tests.noop", max_attempts=1)
def noop(ctx: JobContext, payload: dict) -> None:
    return None


@job_type("tests.chatty", max_attempts=1)
def chatty(ctx: JobContext, payload: dict) -> None:
    for index in range(payload.get("lines", 10)):
        ctx.log.info("line %d", index)


@job_type("tests.singleton", max_attempts=1, singleton=True)
def singleton(ctx: JobContext, payload: dict) -> dict:
    time.sleep(payload.get("seconds", 2))
    return {"ran": True}


@job_type("tests.limited", max_attempts=2)
def limited(ctx: JobContext, payload: dict) -> dict:
    from jobs.coordination.ratelimit import RateLimiter

    # One call per 3 s for everyone; a job that finds no slot within 0.1 s is postponed.
    RateLimiter(name="tests-downstream", limit=1, period=3).acquire(max_wait=0.1)
    return {"called_at_attempt": ctx.attempt}


# What the give-up hook of tests.gives_up was told, in order.
GIVE_UPS: list[tuple[dict, str, str]] = []


def _record_give_up(payload: dict, error_code: str, error_message: str) -> None:
    GIVE_UPS.append((payload, error_code, error_message))


@job_type("tests.gives_up", max_attempts=2, backoff=Backoff(base_seconds=5, cap_seconds=5), on_give_up=_record_give_up)
def gives_up(ctx: JobContext, payload: dict) -> None:
    raise TransientJobError(f"gives up eventually (attempt {ctx.attempt})")


@job_type("tests.counted", max_attempts=3)
def counted(ctx: JobContext, payload: dict) -> dict:
    """Counts its executions in Redis (outside the job tables), notes its process, then sleeps."""
    import os

    from jobs.foundation.redis import get_redis

    client = get_redis()
    client.incr(f"tests:runs:{ctx.job_id}")
    client.rpush(f"tests:pids:{ctx.job_id}", f"{ctx.attempt}:{os.getpid()}")
    time.sleep(payload.get("seconds", 0) if ctx.attempt == 1 else payload.get("later_seconds", 0))
    client.incr(f"tests:completed:{ctx.job_id}")
    return {"attempt": ctx.attempt}


def _count_running(name: str, key: str, seconds: float) -> dict:
    """Sleep ``seconds`` while counted as running in Redis (tests:<name>:running[:key]), keeping the highest count
    seen (tests:<name>:max[:key]): what really ran at once, outside the job tables a limit is decided on."""
    from jobs.foundation.redis import get_redis

    client, suffix = get_redis(), f":{key}" if key else ""
    running = client.incr(f"tests:{name}:running{suffix}")
    client.eval("if tonumber(redis.call('get', KEYS[1]) or '0') < tonumber(ARGV[1]) then "
                "redis.call('set', KEYS[1], ARGV[1]) end", 1, f"tests:{name}:max{suffix}", running)  # fmt: skip
    try:
        time.sleep(seconds)
    finally:
        client.decr(f"tests:{name}:running{suffix}")
    return {"running_with": running}


@job_type("tests.capped", max_attempts=1, concurrency=2)
def capped(ctx: JobContext, payload: dict) -> dict:
    return _count_running("capped", "", float(payload.get("seconds", 0.5)))


@job_type("tests.per_user", max_attempts=1, concurrency_key=lambda payload: payload["user"], concurrency_per_key=1)
def per_user(ctx: JobContext, payload: dict) -> dict:
    return _count_running("per_user", str(payload["user"]), float(payload.get("seconds", 0.5)))
