"""Drop the varchar_pattern_ops ("_like") indexes PostgreSQL got for jobs_job's id and replay_of.

Django adds one beside every indexed varchar column so that ``LIKE 'abc%'`` can use an
index. Nothing searches job ids by pattern (the admin and the API match them exactly), and
each of these indexes is written on every insert and on every state change that is not a
HOT update: two of eleven index writes per row, for nothing.
"""

from django.db import migrations

LIKE_INDEXED_FIELDS = ("id", "replay_of")


def like_index_names(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
        [table, "%varchar_pattern_ops%"],
    )
    return [row[0] for row in cursor.fetchall()]


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("jobs", "Job")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        for name in like_index_names(cursor, table):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def recreate_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    job = apps.get_model("jobs", "Job")
    for field_name in LIKE_INDEXED_FIELDS:
        statement = schema_editor._create_like_index_sql(job, job._meta.get_field(field_name))
        if statement is not None:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_declared_schedule_state"),
    ]

    operations = [
        migrations.RunPython(drop_like_indexes, recreate_like_indexes),
    ]
