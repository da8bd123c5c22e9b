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
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named {username!r}; create it first (manage.py createsuperuser)") from None
        token, plaintext = api_token_create(user=user, name=name)
        self.stdout.write(plaintext)
        self.stderr.write(f"token {token.prefix}… for {username} ({name}); it is shown only now, store it safely")
