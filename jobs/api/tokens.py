"""API tokens for server-side callers: created once in plaintext, stored as sha256 only.

A plain sha256 is enough (no slow password hash): tokens are 256 random bits, so there is
nothing to brute-force, and a fast hash keeps the per-request lookup a single indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, Q
from django.utils import timezone

from jobs.foundation.rowreader import column_name, row_reader, table_name
from jobs.models import ApiToken

TOKEN_PREFIX = "jpt_"
# How much of the plaintext is kept for display ("jpt_AbC123…"): enough to tell tokens apart, useless to an attacker.
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
# last_used_at is for operators ("is this token still in use?"), not an audit trail: one write a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(plaintext: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


SCOPES = tuple(ApiToken.Scope.values)


def default_token_lifetime() -> timedelta | None:
    """How long a new token lives unless told otherwise (JOBS_API_TOKEN_TTL_DAYS; 0: forever)."""
    days = getattr(settings, "JOBS_API_TOKEN_TTL_DAYS", 90)
    return timedelta(days=days) if days else None


def api_token_create(
    *, user: AbstractUser, name: str, scopes: Iterable[str] = ("read", "enqueue"),
    lifetime: timedelta | None | str = "default",
) -> tuple[ApiToken, str]:  # fmt: skip
    """Create a token for ``user`` with ``scopes`` (read, enqueue, ops), expiring after ``lifetime``
    (``"default"``: JOBS_API_TOKEN_TTL_DAYS; None: never). Returns the row and the plaintext, which
    is never stored: show it once."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name saying what it is for, e.g. 'storefront backend'")
    scopes = sorted(set(scopes))
    if not scopes or not set(scopes) <= set(SCOPES):
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    lifetime = default_token_lifetime() if isinstance(lifetime, str) else lifetime
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=cast(Any, user), name=name, prefix=plaintext[:DISPLAY_PREFIX_LENGTH], token_hash=token_hash(plaintext),
        scopes=scopes, expires_at=timezone.now() + lifetime if lifetime else None,
    )  # fmt: skip
    return token, plaintext


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke ``token`` for good; returns False if it already was. Requests using it are refused from now on."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now) == 1
    if revoked:
        token.revoked_at = now
    return revoked


def api_token_user(*, plaintext: str) -> AbstractUser | None:
    """The active user behind a live bearer token, or None."""
    token = api_token_live(plaintext=plaintext)
    return token.user if token is not None else None


def api_token_find(*, plaintext: str) -> ApiToken | None:
    """The token row for ``plaintext`` whatever its state (revoked, expired), or None when unknown.

    One query, on every API request: the token, its user, and (with Django's ModelBackend alone) the
    user's permissions, which ModelBackend would otherwise load with two more queries on the request's
    first ``has_perm``. Nothing is kept across requests: a revoked token, a deactivated user or a
    permission taken away acts on the next request.
    """
    if not plaintext.startswith(TOKEN_PREFIX) or not plaintext.isascii():
        return None  # not one of ours: no need to ask the database
    connection = connections[DEFAULT_DB_ALIAS]
    preload = _model_backend_only() and connection.vendor in ("postgresql", "sqlite")
    tokens, users = row_reader(ApiToken, connection), row_reader(get_user_model(), connection)
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection, with_permissions=preload),
                       [_NAME_SEPARATOR, token_hash(plaintext)] if preload else [token_hash(plaintext)])  # fmt: skip
        row = cursor.fetchone()
    if row is None:
        return None
    token = tokens.instance(row, connection)
    user = token.user = users.instance(row, connection, start=tokens.width)
    # ModelBackend keeps a user's permissions in _perm_cache for that user object's life (this request);
    # filled with what it would load, it asks nothing. A superuser's has_perm never asks it.
    if preload and not user.is_superuser:
        names = row[tokens.width + users.width] or ""
        cast(Any, user)._perm_cache = {name for name in names.split(_NAME_SEPARATOR) if name}
    return token


# Between permission names ("app_label.codename") in the aggregated column: a control character, never in one.
_NAME_SEPARATOR = "\x1f"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Backends whose permissions are ModelBackend's own (the settings' default throttles logins, nothing else).
_MODEL_PERMISSION_BACKENDS = {MODEL_BACKEND, "jobs.api.auth_backends.ThrottledModelBackend"}
_token_sql_by_vendor: dict[tuple[str, bool], str] = {}


def _model_backend_only() -> bool:
    backends = list(getattr(settings, "AUTHENTICATION_BACKENDS", [MODEL_BACKEND]))
    return len(backends) == 1 and backends[0] in _MODEL_PERMISSION_BACKENDS


def _token_sql(db: BaseDatabaseWrapper, *, with_permissions: bool) -> str:
    """SELECT token, user[, permission names] WHERE token_hash = %s (written once per backend)."""
    sql = _token_sql_by_vendor.get((db.vendor, with_permissions))
    if sql is None:
        user_model = get_user_model()
        token_table, user_table = table_name(db, ApiToken), table_name(db, user_model)
        tokens, users = row_reader(ApiToken, db), row_reader(user_model, db)
        permissions = f", ({_permission_names_sql(db)})" if with_permissions else ""
        sql = _token_sql_by_vendor[(db.vendor, with_permissions)] = (
            f"SELECT {tokens.columns}, {users.columns}{permissions} FROM {token_table} "
            f"INNER JOIN {user_table} ON {user_table}.{column_name(db, user_model, 'pk')} = "
            f"{token_table}.{column_name(db, ApiToken, 'user')} WHERE {token_table}.{column_name(db, ApiToken, 'token_hash')} = %s"
        )  # fmt: skip
    return sql


def _permission_names_sql(db: BaseDatabaseWrapper) -> str:
    """The token's user's own and groups' permission names joined by a separator (parameter), NULL when none:
    what ModelBackend.get_all_permissions returns for an active user who is not a superuser."""
    user_model = get_user_model()
    own, memberships = user_model.user_permissions.through, user_model.groups.through
    granted = Group.permissions.through
    token_user = f"{table_name(db, ApiToken)}.{column_name(db, ApiToken, 'user')}"
    joined = "GROUP_CONCAT" if db.vendor == "sqlite" else "STRING_AGG"
    return (
        f"SELECT {joined}(ct.{column_name(db, ContentType, 'app_label')} || '.' || p.{column_name(db, Permission, 'codename')}, %s) "
        f"FROM {table_name(db, Permission)} p INNER JOIN {table_name(db, ContentType)} ct "
        f"ON ct.{column_name(db, ContentType, 'pk')} = p.{column_name(db, Permission, 'content_type')} "
        f"WHERE p.{column_name(db, Permission, 'pk')} IN (SELECT {_link(db, own, Permission)} FROM {table_name(db, own)} "
        f"WHERE {_link(db, own, user_model)} = {token_user}) "
        f"OR p.{column_name(db, Permission, 'pk')} IN (SELECT g.{_link(db, granted, Permission)} FROM {table_name(db, granted)} g "
        f"INNER JOIN {table_name(db, memberships)} m ON m.{_link(db, memberships, Group)} = g.{_link(db, granted, Group)} "
        f"WHERE m.{_link(db, memberships, user_model)} = {token_user})"
    )  # fmt: skip


def _link(db: BaseDatabaseWrapper, through: type[Model], target: type[Model]) -> str:
    """The column of a many-to-many table pointing at ``target``."""
    return db.ops.quote_name(next(field.column for field in through._meta.fields if field.related_model is target))


def api_token_is_live(token: ApiToken, *, now: datetime | None = None) -> bool:
    """Not revoked, not expired, and its user still active."""
    now = now or timezone.now()
    return (token.revoked_at is None and token.user.is_active
            and (token.expires_at is None or token.expires_at > now))  # fmt: skip


def api_token_live(*, plaintext: str) -> ApiToken | None:
    """The live (not revoked, not expired, active user) token for ``plaintext``, or None.

    Touches last_used_at at most once a minute.
    """
    token = api_token_find(plaintext=plaintext)
    if token is None or not api_token_is_live(token):
        return None
    api_token_touch(token)
    return token


def api_token_touch(token: ApiToken) -> None:
    """Record that ``token`` was used now (at most one write a minute)."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so a burst of concurrent requests writes once rather than once each.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
