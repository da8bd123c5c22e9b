"""Create a bearer token for a server-side API caller (for example a Next.js backend)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. 'storefront backend'")

    def handle(self, *args, username: str, name: str, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}; create it first (manage.py createsuperuser)") from None
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive: its tokens would be refused")
        try:
            token, plaintext = api_token_create(user=user, name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # The token alone on stdout, so scripts can capture it; the notice goes to stderr.
        self.stdout.write(plaintext)
        self.stderr.write(f"token {token.prefix}… for {username} ({token.name}); it is shown only now, store it safely")
