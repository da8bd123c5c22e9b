"""API tokens for server-side callers: created once in plaintext, stored as sha256 only.

A plain sha256 is enough (no slow password hash): tokens are 256 random bits, so there is
nothing to brute-force, and a fast hash keeps the per-request lookup a single indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, cast

from django.contrib.auth.models import AbstractUser
from django.db.models import Q
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


def api_token_create(*, user: AbstractUser, name: str) -> tuple[ApiToken, str]:
    """Create a token for ``user``. Returns the row and the plaintext, which is never stored: show it once."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name saying what it is for, e.g. 'storefront backend'")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=cast(Any, user), name=name, prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
                                    token_hash=token_hash(plaintext))  # fmt: skip
    return token, plaintext


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke ``token`` for good; returns False if it already was. Requests using it are refused from now on."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now) == 1
    if revoked:
        token.revoked_at = now
    return revoked


def api_token_user(*, plaintext: str) -> AbstractUser | None:
    """The active user behind a live bearer token, or None. Touches last_used_at at most once a minute."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None  # not one of ours: no need to ask the database
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=token_hash(plaintext), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        # Conditional, so a burst of concurrent requests writes once rather than once each.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return token.user
