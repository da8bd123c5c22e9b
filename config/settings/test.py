"""Test settings: real Redis and database, chosen by REDIS_URL / DATABASE_URL."""

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Worker subprocesses started by tests must see the same test database, so it
    # lives in a file rather than in memory.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test_db.sqlite3")}
