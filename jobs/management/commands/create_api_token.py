"""Create a bearer token for a server-side API caller (for example a Next.js backend)."""

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.api.tokens import SCOPES, api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. 'storefront backend'")
        parser.add_argument("--scope", action="append", choices=SCOPES, dest="scopes",
                            help="read, enqueue or ops; repeat for several (default: read and enqueue)")  # fmt: skip
        parser.add_argument("--expires-days", type=int, default=None,
                            help="days until the token expires (default: JOBS_API_TOKEN_TTL_DAYS; 0: never)")  # fmt: skip

    def handle(self, *args: str, username: str, name: str, scopes: list[str] | None = None,
               expires_days: int | None = None, **options: Any) -> None:  # fmt: skip
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}; create it first (manage.py createsuperuser)") from None
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive: its tokens would be refused")
        try:
            lifetime = "default" if expires_days is None else (timedelta(days=expires_days) if expires_days else None)
            token, plaintext = api_token_create(user=user, name=name, scopes=scopes or ("read", "enqueue"),
                                                lifetime=lifetime)  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # The token alone on stdout, so scripts can capture it; the notice goes to stderr.
        self.stdout.write(plaintext)
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
        self.stderr.write(f"token {token.prefix}… for {username} ({token.name}), scopes {', '.join(token.scopes)}, "
                          f"{expiry}; it is shown only now, store it safely")  # fmt: skip
