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
from django.db.models import Func, OuterRef, Q, Subquery, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from .models import ApiToken

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

    One query: the token, its user, and (with Django's ModelBackend alone) the user's permissions,
    which ModelBackend would otherwise load with two more queries on the request's first ``has_perm``.
    They are read with the token on every request, never kept across requests, so a permission taken
    away acts on the next request, as it does with ModelBackend's own per-request cache.
    """
    if not plaintext.startswith(TOKEN_PREFIX) or not plaintext.isascii():
        return None  # not one of ours: no need to ask the database
    tokens = ApiToken.objects.select_related("user").filter(token_hash=token_hash(plaintext))
    preload = _model_backend_only()
    if preload:
        tokens = tokens.annotate(user_permission_names=_permission_names())
    token = tokens.first()
    if token is not None and preload:
        _preload_permissions(token)
    return token


# Between permission names ("app_label.codename") in the aggregated string: a control character, never in one.
_NAME_SEPARATOR = "\x1f"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _model_backend_only() -> bool:
    return list(getattr(settings, "AUTHENTICATION_BACKENDS", [MODEL_BACKEND])) == [MODEL_BACKEND]


class _JoinedText(Func):
    """``string_agg`` (PostgreSQL) / ``group_concat`` (SQLite) of one text expression.

    A plain function to Django, so it adds no GROUP BY: used only as the whole select list of the
    scalar subquery below, where it aggregates every row into one.
    """

    function = "STRING_AGG"
    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, function="GROUP_CONCAT", **extra_context)


def _permission_names() -> Subquery:
    """The token's user's own and groups' permission names, joined by _NAME_SEPARATOR (NULL when none):
    what ModelBackend.get_all_permissions returns for an active user who is not a superuser."""
    user_id = OuterRef(OuterRef("user_id"))  # the token's, from inside the IN subqueries
    own = get_user_model().user_permissions.through.objects.filter(**{_user_column(): user_id})
    via_groups = Group.permissions.through.objects.filter(group__user=user_id)
    names = (
        Permission.objects.filter(Q(id__in=own.values("permission_id")) | Q(id__in=via_groups.values("permission_id")))
        .order_by()
        .values(names=_JoinedText(Concat("content_type__app_label", Value("."), "codename"), Value(_NAME_SEPARATOR)))
    )
    return Subquery(names, output_field=TextField())


def _user_column() -> str:
    # The user's column in the user-permission table is named after the user model (auth_user_user_permissions.user_id).
    through = get_user_model().user_permissions.through
    return next(field.name for field in through._meta.fields if field.related_model is get_user_model())


def _preload_permissions(token: ApiToken) -> None:
    # ModelBackend keeps a user's permissions in _perm_cache for that user object's life (this request);
    # filling it with what it would load saves its two queries. A superuser's has_perm never asks it.
    user = cast(Any, token.user)
    if not user.is_superuser:
        names = getattr(token, "user_permission_names", None) or ""
        user._perm_cache = {name for name in names.split(_NAME_SEPARATOR) if name}


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
