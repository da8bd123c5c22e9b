"""pg_trgm for the admin's job search (the next migration's index). PostgreSQL only; atomic, apart from the index
build, which must run outside a transaction. ``pg_trgm`` ships with PostgreSQL and is a trusted extension (13+):
the database's owner may create it without being a superuser."""

from django.db import migrations


def create_pg_trgm(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_audit_counted_events"),
    ]

    operations = [
        # Left in place on the way back: other tables may use it, and it costs nothing unused.
        migrations.RunPython(create_pg_trgm, migrations.RunPython.noop, elidable=False),
    ]
