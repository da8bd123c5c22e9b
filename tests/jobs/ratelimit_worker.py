"""A separate OS process hammering one limiter (used by test_ratelimit)."""

import json
import sys
import time

import redis

from jobs.ratelimit import RateLimiter


def main(redis_url: str, limit: int, seconds: float, out_path: str) -> None:
    limiter = RateLimiter(name="hammer", limit=limit, period=1.0, client=redis.Redis.from_url(redis_url))
    grants: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        grant = limiter.try_acquire()
        if grant.granted:
            grants.append(grant.server_time)
        else:
            time.sleep(min(grant.wait_seconds, max(0.0, deadline - time.monotonic())))
    with open(out_path, "w") as out:
        json.dump(grants, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
